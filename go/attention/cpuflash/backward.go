package cpuflash

import (
	"math"
	"sync"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// bwd is the state one backward call shares between its passes (read-only once built).
type bwd struct {
	o, do src       // saved O and dO: (B, H, N, D)
	dvec  []float32 // (B, H, N) D_i = dO_i·O_i
	l2    []float32 // (B, H, N) (L_i − off_i)·log2(e); +Inf for a row with no visible key
	off   []float64 // (B, H, N) row offsets of the logits (rowOffsets; non-plain path only)
}

// backwardBytes is the memory a backward call allocates: new gradient tensors (none for
// destinations written in place), copies of non-contiguous inputs, L read as float64,
// the per-row state, one scratch per worker and the fused schedule's partial dQ buffers.
func (x *plan) backwardBytes(s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) int64 {
	d, gt := x.d, x.p.GradDTypeValue()
	rows := spec.MulBytes(d.B, d.H, d.N)
	w := int64(x.e.workers(d.B * d.H * ((d.N + x.br - 1) / x.br)))
	scratch := max(x.fwdScratchBytes(true), x.kvScratchBytes())
	need := spec.AddBytes(
		outBytes(into.DQ, gt, d.B, d.H, d.N, d.D),
		outBytes(into.DK, gt, d.B, d.Hkv, d.M, d.D),
		outBytes(into.DV, gt, d.B, d.Hkv, d.M, d.D),
		copyBytes(x.p.Q, x.p.K, x.p.V, s.O, dO),
		spec.MulBytes(int(rows), 8+4+4+8),
		spec.MulBytes(int(scratch), int(w)))
	if x.fusedBackward() {
		bufs := min(d.B*d.Hkv, int(w)+1) * x.nChunks()
		need = spec.AddBytes(need, spec.MulBytes(bufs, x.dqBuf(), 4))
	}
	return need
}

// backward computes dQ, dK and dV over the worker pool without a shared accumulator:
//
//	pre:   D_i = dO_i·O_i, L2_i = log2(e)·L_i                   per (b, h)
//	dK/dV: one task per (b, kv head, key block), over the group's heads and query blocks
//	dQ:    one task per (b, h, query block), over key blocks
//
// Both gradient passes recompute P = 2^(logit − L2) and dS = P ∘ (dP' − D) from the saved
// L: 7 tile products where the FLOP count assumes 5. When there are enough tasks to keep
// every worker busy, fusedBlock instead runs dK/dV and dQ together, one task per (b, kv
// head, chunk of key blocks), each chunk summing its part of dQ in its own buffer: 5
// products. The key blocks of a batch are cut into chunks of equal work (chunkBounds),
// and both schedules sum dQ chunk by chunk and then add the chunk sums in chunk order. So
// both visit the same tiles and sum every output element in the same order with the same
// operations: they give the same bits, and the choice may depend on the number of workers.
func (x *plan) backward(so *tensor.Tensor, lse *lseSrc, dO *tensor.Tensor, into *spec.Grads) (g, rest *spec.Grads, err error) {
	d := x.d
	st := &bwd{}
	if st.o, err = newSrc("Saved.O", so, d.H, d.N, d.D); err != nil {
		return nil, nil, err
	}
	if st.do, err = newSrc("dO", dO, d.H, d.N, d.D); err != nil {
		return nil, nil, err
	}
	gt := x.p.GradDTypeValue()
	dq, err := newDst(into.DQ, gt, d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, nil, err
	}
	dk, err := newDst(into.DK, gt, d.B, d.Hkv, d.M, d.D)
	if err != nil {
		return nil, nil, err
	}
	dv, err := newDst(into.DV, gt, d.B, d.Hkv, d.M, d.D)
	if err != nil {
		return nil, nil, err
	}
	rows := d.B * d.H * d.N
	st.dvec = x.e.cache.get(rows)
	st.l2 = x.e.cache.get(rows)
	defer x.e.cache.put(st.dvec)
	defer x.e.cache.put(st.l2)
	if !x.plain {
		st.off = make([]float64, rows)
	}

	// The chunks of each batch's key blocks, computed once for every task to read.
	x.bounds = make([][]int, d.B)
	for b := range x.bounds {
		x.bounds[b] = x.chunkBounds(b)
	}
	var pre []task
	for b := 0; b < d.B; b++ {
		for h := 0; h < d.H; h++ {
			pre = append(pre, task{b: b, h: h, cost: x.p.LensQ(b)})
		}
	}
	err = run(x.ctx, x.e, pre, func() []float32 { return make([]float32, 3*d.D) }, nil,
		func(w []float32, t task) { x.preprocess(st, w, t.b, t.h, lse) })
	if err != nil {
		return nil, nil, err
	}
	if x.fusedBackward() {
		// One task per (b, kv head, chunk of key blocks): dK, dV and a partial dQ.
		sums := &dqSums{x: x, dq: &dq, parts: map[[2]int][][]float32{}}
		defer sums.release()
		var tasks []task
		for b := 0; b < d.B; b++ {
			bounds, costs := x.bounds[b], x.keyBlockCosts(b)
			for g := 0; g < d.Hkv; g++ {
				for k := 0; k+1 < len(bounds); k++ {
					cost := 1
					for _, c := range costs[bounds[k]:bounds[k+1]] {
						cost += c
					}
					tasks = append(tasks, task{b: b, h: g, blk: k, cost: cost})
				}
			}
		}
		err = run(x.ctx, x.e, tasks, x.newKVScratch, x.freeKVScratch,
			func(w *kvScratch, t task) { x.fusedBlock(st, w, sums, t.b, t.h, t.blk, &dk, &dv) })
	} else {
		err = run(x.ctx, x.e, x.keyTasks(), x.newKVScratch, x.freeKVScratch,
			func(w *kvScratch, t task) { x.dkdvBlock(st, w, t.b, t.h, t.blk*x.bc, &dk, &dv, nil) })
		if err == nil {
			err = run(x.ctx, x.e, x.queryTasks(), func() *fwdScratch { return x.newFwdScratch(true) }, x.freeFwdScratch,
				func(w *fwdScratch, t task) { x.dqBlock(st, w, t.b, t.h, t.blk*x.br, &dq) })
		}
	}
	if err != nil {
		return nil, nil, err
	}
	rest = &spec.Grads{}
	if !dq.inPlace {
		rest.DQ = into.DQ
	}
	if !dk.inPlace {
		rest.DK = into.DK
	}
	if !dv.inPlace {
		rest.DV = into.DV
	}
	return &spec.Grads{DQ: dq.t, DK: dk.t, DV: dv.t}, rest, nil
}

// preprocess fills D_i = dO_i·O_i (accumulated in float64), the row offsets and L2_i =
// (L_i − off_i)·log2(e) (in float64, then rounded) for the rows of (b, h). Rows past the
// query length, or whose L is −Inf, get L2 = +Inf so that every P recomputed for them is 0.
func (x *plan) preprocess(st *bwd, w []float32, b, h int, lse *lseSrc) {
	d := x.d
	nq := x.p.LensQ(b)
	row := (b*d.H + h) * d.N
	ov, dov := w[:d.D], w[d.D:2*d.D]
	inf := float32(math.Inf(1))
	var lo, hi [1]int
	for i := 0; i < d.N; i++ {
		li := lse.at(row + i)
		if i >= nq || math.IsInf(li, -1) {
			st.dvec[row+i], st.l2[row+i] = 0, inf
			continue
		}
		if st.off != nil {
			lo[0], hi[0] = x.p.KeyRange(b, i)
			x.rowOffsets(st.off[row+i:row+i+1], b, h, i, 1, lo[:], hi[:])
			if off := st.off[row+i]; off != 0 && math.Abs(li) > relLimit {
				// L is too large for float64 to hold what the row's logits add to the
				// offset (|L| > 2^32 leaves under 2^-20 of resolution): recompute it
				// relative to the offset from the row itself.
				li = x.rowLSE(b, h, i, lo[0], hi[0], off, w[:d.D], w[2*d.D:3*d.D])
			} else {
				li -= off
			}
		}
		off := (row + i) * d.D
		st.o.row(ov, off)
		st.do.row(dov, off)
		s := 0.0
		for c, v := range ov {
			s += float64(v) * float64(dov[c])
		}
		st.dvec[row+i] = float32(s)
		st.l2[row+i] = float32(li * math.Log2E)
	}
}

// relLimit is the magnitude of L above which the backward recomputes a biased row's
// logsumexp relative to its offset instead of subtracting the offset from L.
const relLimit = 1 << 32

// rowLSE returns ln Σ_j exp(s_j − off) over the visible keys j ∈ [lo, hi) of row i of
// (b, h), in float64, where s_j is the row's logit as logits computes it; −Inf for a row
// with no visible key. qv and kv are scratch rows of D elements.
func (x *plan) rowLSE(b, h, i, lo, hi int, off float64, qv, kv []float32) float64 {
	g := x.d.KVHead(h)
	x.q.row(qv, x.q.off(b, h, i))
	at := x.p.Mask.Index(b, h, i, 0)
	m := math.Inf(-1)
	var vals []float64
	for j := lo; j < hi; j++ {
		if x.keep != nil && !x.keep[at+j] {
			continue
		}
		v := 0.0
		if x.bias != nil {
			bj := float64(x.bias[at+j])
			if math.IsInf(bj, -1) {
				continue
			}
			v = bj - off
		}
		x.k.row(kv, x.k.off(b, g, j))
		dot := 0.0
		for c, qc := range qv {
			dot += float64(qc) * float64(kv[c])
		}
		z := x.scale64 * dot
		if x.softcap > 0 {
			z = x.softcap * math.Tanh(z/x.softcap)
		}
		v += z
		vals = append(vals, v)
		m = max(m, v)
	}
	if math.IsInf(m, -1) {
		return m
	}
	sum := 0.0
	for _, v := range vals {
		sum += math.Exp(v - m)
	}
	return m + math.Log(sum)
}

// kvScratch is one worker's memory for the dK/dV pass, carved from one cached buffer.
type kvScratch struct {
	kT, vT []float32 // (D, bc) K and V of the key block, transposed
	s      []float32 // (br, bc) logits, then P, then P'
	dp     []float32 // (br, bc) dP, then dS
	u      []float32 // (br, bc) tanh of the capped logit (softcap only)
	z      []float32 // (br, bc) dropout factors (dropout only)
	dk, dv []float32 // (bc, dp) accumulators
	qBuf   []float32 // (br, dp) Q rows of the query tile (block)
	doBuf  []float32 // (br, dp) dO rows of the query tile (block)
	kBuf   []float32 // (bc, dp) K rows of the key block, for dQ += dS·K (fused only)
	tmp    []float32 // (D)
	lo, hi []int     // (br)
	qlo    []int     // (br) band of the tile per query row (queryBand)
	qhi    []int
	klo    []int // (bc) band of the tile per key row (keyBand)
	khi    []int
	band   bool      // the current tile is banded
	dq     []float32 // (group, dqRows, dp) partial dQ of the group's heads (fused only)
	buf    []float32 // the cached buffer the float32 parts live in
}

func (x *plan) kvScratchLen() int {
	br, bc, d, dp := x.br, x.bc, x.d.D, x.dp
	n := 2*d*bc + 2*br*bc + 3*bc*dp + 2*br*dp + d
	if x.softcap > 0 {
		n += br * bc
	}
	if x.drop {
		n += br * bc
	}
	return n
}

func (x *plan) kvScratchBytes() int64 {
	return spec.AddBytes(spec.MulBytes(x.kvScratchLen(), 4), spec.MulBytes(x.br, 32), spec.MulBytes(x.bc, 16))
}

func (x *plan) newKVScratch() *kvScratch {
	br, bc, d, dp := x.br, x.bc, x.d.D, x.dp
	buf := x.e.cache.get(x.kvScratchLen())
	clear(buf)
	sl := &slab{buf: buf}
	w := &kvScratch{
		buf:   buf,
		kT:    sl.take(d * bc),
		vT:    sl.take(d * bc),
		s:     sl.take(br * bc),
		dp:    sl.take(br * bc),
		dk:    sl.take(bc * dp),
		dv:    sl.take(bc * dp),
		qBuf:  sl.take(br * dp),
		doBuf: sl.take(br * dp),
		kBuf:  sl.take(bc * dp),
		tmp:   sl.take(d),
		lo:    make([]int, br),
		hi:    make([]int, br),
		qlo:   make([]int, br),
		qhi:   make([]int, br),
		klo:   make([]int, bc),
		khi:   make([]int, bc),
	}
	if x.softcap > 0 {
		w.u = sl.take(br * bc)
	}
	if x.drop {
		w.z = sl.take(br * bc)
	}
	return w
}

func (x *plan) freeKVScratch(w *kvScratch) { x.e.cache.put(w.buf) }

// dqRows is the row count of one head's dQ buffer: N rounded up to whole query blocks,
// so a GEMM over the last block's padded rows stays inside it.
func (x *plan) dqRows() int { return roundUp(x.d.N, x.br) }

// dqBuf is the size of one partial dQ buffer: the dQ rows of the query heads of one kv
// group.
func (x *plan) dqBuf() int { return x.d.Group() * x.dqRows() * x.dp }

// fusedBackward chooses fusedBlock: enough tasks for the workers (at least two each, so
// the costliest-first order can balance them) and partial dQ buffers of at most 64 MiB
// per (b, kv head).
func (x *plan) fusedBackward() bool {
	switch x.e.strategy {
	case strategyTwoPass:
		return false
	case strategyFused:
		return true
	}
	d := x.d
	tasks := d.B * d.Hkv * x.nChunks()
	return tasks >= 2*x.e.workers(tasks) && x.nChunks()*x.dqBuf()*4 <= 64<<20
}

// nChunks is the number of chunks the key blocks of each batch are cut into: enough for
// about 16 fused tasks when there are few (b, kv head) pairs, at most 4, at least two key
// blocks each, and the partial dQ buffers of one pair within 64 MiB. It depends on the
// problem only, never on the workers.
func (x *plan) nChunks() int {
	d := x.d
	c := 1
	for c < 4 && d.B*d.Hkv*c < 16 {
		c *= 2
	}
	for c > 1 && ((d.M+x.bc-1)/x.bc < 2*c || c*x.dqBuf()*4 > 64<<20) {
		c /= 2
	}
	return c
}

// keyBlockCosts returns, for each key block of batch b, the number of query rows that can
// see it times its width: the work of the block.
func (x *plan) keyBlockCosts(b int) []int {
	lo, hi := make([]int, x.br), make([]int, x.br)
	nk, nq := x.p.LensK(b), x.p.LensQ(b)
	type span struct{ lo, hi, rows int }
	var spans []span
	for i0 := 0; i0 < nq; i0 += x.br {
		rn := min(x.br, nq-i0)
		kLo, kHi := x.keyRanges(b, i0, rn, lo, hi)
		spans = append(spans, span{kLo, kHi, rn})
	}
	var costs []int
	for j0 := 0; j0 < nk; j0 += x.bc {
		j1 := min(j0+x.bc, nk)
		cost := 0
		for _, s := range spans {
			if s.lo < j1 && s.hi > j0 {
				cost += s.rows * (j1 - j0)
			}
		}
		costs = append(costs, cost)
	}
	return costs
}

// chunkBounds cuts the key blocks of batch b into nChunks runs of about equal work
// (keyBlockCosts) and returns the nChunks+1 boundaries in key-block indices; runs may be
// empty.
func (x *plan) chunkBounds(b int) []int {
	costs := x.keyBlockCosts(b)
	c := x.nChunks()
	total := 0
	for _, v := range costs {
		total += v
	}
	bounds := make([]int, 0, c+1)
	bounds = append(bounds, 0)
	acc, j := 0, 0
	for k := 1; k < c; k++ {
		for j < len(costs) && acc*c < k*total {
			acc += costs[j]
			j++
		}
		bounds = append(bounds, j)
	}
	return append(bounds, len(costs))
}

// chunkOf returns the chunk of key block jb given the bounds.
func chunkOf(bounds []int, jb int) int {
	k := 0
	for k+2 < len(bounds) && jb >= bounds[k+1] {
		k++
	}
	return k
}

// fusedBlock computes dK and dV of kv head g of batch b for the key blocks of chunk k,
// and that chunk's part of dQ for the group's query heads: the tiles, order and
// operations of dkdvBlock and dqBlock together. The partial dQ goes to sums.
func (x *plan) fusedBlock(st *bwd, w *kvScratch, sums *dqSums, b, g, k int, dk, dv *dst) {
	bounds := x.bounds[b]
	w.dq = sums.buffer()
	for jb := bounds[k]; jb < bounds[k+1]; jb++ {
		if x.ctx.Err() != nil {
			return // the pool reports the cancellation
		}
		x.dkdvBlock(st, w, b, g, jb*x.bc, dk, dv, w.dq)
	}
	sums.add(b, g, k, len(bounds)-1, w.dq)
	w.dq = nil
}

// dqSums collects the partial dQ of each chunk of the fused schedule and, once a (b, kv
// head) has all of them, adds them in chunk order and writes dQ. Buffers are reused.
type dqSums struct {
	x     *plan
	dq    *dst
	mu    sync.Mutex
	parts map[[2]int][][]float32 // (b, kv head) → partial per chunk, nil until done
	free  [][]float32
}

// buffer returns a zeroed partial dQ buffer.
func (s *dqSums) buffer() []float32 {
	s.mu.Lock()
	var buf []float32
	if n := len(s.free); n > 0 {
		buf, s.free = s.free[n-1], s.free[:n-1]
	}
	s.mu.Unlock()
	if buf == nil {
		buf = s.x.e.cache.get(s.x.dqBuf())
	}
	clear(buf)
	return buf
}

// release hands every buffer back to the executor's cache once the call is done.
func (s *dqSums) release() {
	for _, b := range s.free {
		s.x.e.cache.put(b)
	}
	for _, p := range s.parts {
		for _, b := range p {
			if b != nil {
				s.x.e.cache.put(b)
			}
		}
	}
	s.free, s.parts = nil, nil
}

// add files chunk k's partial dQ of (b, g); the call that completes the set sums it.
func (s *dqSums) add(b, g, k, chunks int, buf []float32) {
	key := [2]int{b, g}
	s.mu.Lock()
	p := s.parts[key]
	if p == nil {
		p = make([][]float32, chunks)
		s.parts[key] = p
	}
	p[k] = buf
	done := true
	for _, q := range p {
		done = done && q != nil
	}
	if done {
		delete(s.parts, key)
	}
	s.mu.Unlock()
	if !done {
		return
	}
	x, d := s.x, s.x.d
	sum := p[0]
	for _, q := range p[1:] {
		addChunk(sum, q)
	}
	nq, grp, rows, dp := x.p.LensQ(b), d.Group(), x.dqRows(), x.dp
	for k := 0; k < grp; k++ {
		h := g*grp + k
		s.dq.putRows(((b*d.H+h)*d.N)*d.D, nq, d.D, sum[k*rows*dp:], dp)
	}
	s.mu.Lock()
	s.free = append(s.free, p...)
	s.mu.Unlock()
}

// addChunk adds one chunk's dQ sum into the running one: dst += src, element by element
// (the same operation in both schedules).
func addChunk(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// keyTasks lists the (b, kv head, key block) tasks with valid keys, costed by the number
// of query rows that can see the block.
func (x *plan) keyTasks() []task {
	d := x.d
	var tasks []task
	for b := 0; b < d.B; b++ {
		for jb, cost := range x.keyBlockCosts(b) {
			for g := 0; g < d.Hkv; g++ {
				tasks = append(tasks, task{b: b, h: g, blk: jb, cost: (1 + cost) * d.Group()})
			}
		}
	}
	return tasks
}

// dkdvBlock computes rows [j0, j0+bc) of dK and dV for kv head g of batch b, summing over
// the query heads of the group and their query blocks in a fixed order. With dq (the
// fused path) it also adds each tile's dS·K to the group's dQ accumulators.
func (x *plan) dkdvBlock(st *bwd, w *kvScratch, b, g, j0 int, dk, dv *dst, dq []float32) {
	d, br, bc, dp := x.d, x.br, x.bc, x.dp
	nq := x.p.LensQ(b)
	jn := min(bc, x.p.LensK(b)-j0)
	jz := j0 + jn
	jn16, jn6 := roundUp(jn, nr), roundUp(jn, mr)
	x.k.rowsT(x.kn, w.kT, bc, x.k.off(b, g, j0), jn, w.tmp) // (D, bc)
	x.v.rowsT(x.kn, w.vT, bc, x.v.off(b, g, j0), jn, w.tmp) // (D, bc)
	clear(w.dk)
	clear(w.dv)
	grp := d.Group()
	var kt []float32
	if dq != nil {
		kt = x.k.block(b, g, j0, jn, dp, w.kBuf) // (jn6, dp) K for dQ += dS·K
	}
	for h := g * grp; h < (g+1)*grp; h++ {
		for i0 := 0; i0 < nq; i0 += br {
			rn := min(br, nq-i0)
			kLo, kHi := x.keyRanges(b, i0, rn, w.lo, w.hi)
			if kLo >= jz || kHi <= j0 {
				continue
			}
			if x.ctx.Err() != nil {
				return // the pool reports the cancellation
			}
			x.dkdvTile(st, w, b, h, g, i0, rn, j0, jn, jn16, jn6)
			if dq != nil {
				// dQ += dS·K                                          (rn, dp)
				at := ((h-g*grp)*x.dqRows() + i0) * dp
				if w.band { // as dqTile: each query row sums only over the keys it sees
					x.kn.GEMMBandK(roundUp(rn, mr), dp, jn, w.dp, bc, 1, kt, dp, dq[at:], dp, w.qlo, w.qhi)
				} else {
					x.kn.GEMM(roundUp(rn, mr), dp, jn, w.dp, bc, 1, kt, dp, dq[at:], dp, true)
				}
			}
		}
	}
	row := (b*d.Hkv + g) * d.M
	dk.putRows((row+j0)*d.D, jn, d.D, w.dk, dp)
	dv.putRows((row+j0)*d.D, jn, d.D, w.dv, dp)
}

// dkdvTile adds the contribution of query rows [i0, i0+rn) of head h to dK and dV of the
// key block. It inverts forwardTile step by step, row-major (sc = 1).
func (x *plan) dkdvTile(st *bwd, w *kvScratch, b, h, g, i0, rn, j0, jn, jn16, jn6 int) {
	d, bc, dp, kn := x.d, x.bc, x.dp, x.kn
	rn6 := roundUp(rn, mr)
	row := (b*d.H+h)*d.N + i0

	// S = Q·Kᵀ, dP' = dO·Vᵀ                                           (rn, jn)
	qt := x.q.block(b, h, i0, rn, dp, w.qBuf)     // (rn6, dp)
	dot := st.do.block(b, h, i0, rn, dp, w.doBuf) // (rn6, dp)
	// On a tile the diagonal crosses only the band of visible pairs is computed (mask or
	// logits sets the rest of S to −Inf; the rest of dP' is set to 0).
	s := w.s[:rn6*bc]
	dp2 := w.dp[:rn6*bc]
	part := !full(w.lo, w.hi, rn, j0, j0+jn16)
	w.band = part && monotone(w.lo, w.hi, rn)
	if w.band {
		queryBand(w.qlo, w.qhi, w.lo, w.hi, rn, rn6, j0, jn16)
		keyBand(w.klo, w.khi, w.lo, w.hi, rn, j0, jn, jn6)
		kn.GEMMBandCols(rn6, jn16, d.D, qt, dp, 1, w.kT, bc, s, bc, w.qlo, w.qhi, false)
		kn.GEMMBandCols(rn6, jn16, d.D, dot, dp, 1, w.vT, bc, dp2, bc, w.qlo, w.qhi, true)
	} else {
		kn.GEMM(rn6, jn16, d.D, qt, dp, 1, w.kT, bc, s, bc, false)
		kn.GEMM(rn6, jn16, d.D, dot, dp, 1, w.vT, bc, dp2, bc, false)
	}
	t := tile{x: s, sr: bc, sc: 1}
	if !x.plain {
		x.logits(t, w.u, b, h, i0, rn, j0, jn16, w.lo, w.hi, x.offRows(st, b, h, i0, rn))
	} else if part {
		mask(t, rn, j0, jn16, w.lo, w.hi)
	}

	// P = 2^(expA·S − L2)                         (forward: P = 2^(expA·S − m2) / l)
	kn.ExpRows(s, rn, jn16, bc, x.expA, st.l2[row:row+rn])
	// O = P'·V with P' = P ∘ Z/(1−p)  ⇒  dP = dP' ∘ Z/(1−p)
	if x.drop {
		x.dropout(tile{x: w.z, sr: bc, sc: 1}, b, h, i0, rn, j0, jn16, x.dscale)
		for e := range dp2[:rn*bc] {
			dp2[e] *= w.z[e]
		}
	}
	// P = softmax(S)  ⇒  dS = P ∘ (dP − D); times d(logit)/d(q·k) = scale (· (1 − u²))
	kn.DSRows(dp2, s, dp2, rn, jn16, bc, st.dvec[row:row+rn], x.scale)
	if x.softcap > 0 {
		for r := 0; r < rn; r++ {
			for c := 0; c < jn; c++ {
				u := w.u[r*bc+c]
				dp2[r*bc+c] *= 1 - u*u
			}
		}
	}
	if x.drop {
		for e := range s[:rn*bc] {
			s[e] *= w.z[e] // P'
		}
	}

	// dV += P'ᵀ·dO, dK += dSᵀ·Q                                        (jn, dp)
	if w.band { // each key row sums only over the query rows that see it
		kn.GEMMBandK(jn6, dp, rn, s, 1, bc, dot, dp, w.dv, dp, w.klo, w.khi)
		kn.GEMMBandK(jn6, dp, rn, dp2, 1, bc, qt, dp, w.dk, dp, w.klo, w.khi)
	} else {
		kn.GEMM(jn6, dp, rn, s, 1, bc, dot, dp, w.dv, dp, true)
		kn.GEMM(jn6, dp, rn, dp2, 1, bc, qt, dp, w.dk, dp, true)
	}
}

// dqBlock computes rows [i0, i0+rn) of dQ for head h of batch b over the visible key
// blocks, transposed like forwardBlock. It sums the tiles of each chunk of key blocks in
// its own accumulator and adds those in chunk order, as the fused schedule does.
func (x *plan) dqBlock(st *bwd, w *fwdScratch, b, h, i0 int, dq *dst) {
	d, br, dp := x.d, x.br, x.dp
	rn := min(br, x.p.LensQ(b)-i0)
	kLo, kHi := x.keyRanges(b, i0, rn, w.lo, w.hi)
	if kLo >= kHi {
		return // no visible key: dQ rows stay 0
	}
	row := (b*d.H+h)*d.N + i0
	inf := float32(math.Inf(1))
	for r := 0; r < br; r++ {
		if r < rn {
			w.bsub[r], w.dvec[r] = st.l2[row+r], st.dvec[row+r]
		} else {
			w.bsub[r], w.dvec[r] = inf, 0
		}
	}
	x.q.rowsT(x.kn, w.qT, br, x.q.off(b, h, i0), rn, w.tmp)      // (D, br)
	st.do.rowsT(x.kn, w.doT, br, st.do.off(b, h, i0), rn, w.tmp) // (D, br)
	bounds := x.bounds[b]
	accs := w.chunks[:len(bounds)-1] // (chunks, br, dp)
	for _, a := range accs {
		clear(a)
	}
	// Whole key blocks [j0, j0+bc) cut only at the key length, as dkdvBlock sees them, so
	// that both backward schedules sum the same tiles.
	nk := x.p.LensK(b)
	for jb := kLo / x.bc; jb*x.bc < kHi; jb++ {
		j0 := jb * x.bc
		if x.ctx.Err() != nil {
			return // the pool reports the cancellation
		}
		x.dqTile(st, w, accs[chunkOf(bounds, jb)], b, h, i0, rn, j0, min(x.bc, nk-j0))
	}
	sum := accs[0]
	for _, a := range accs[1:] {
		addChunk(sum, a)
	}
	dq.putRows(row*d.D, rn, d.D, sum, dp)
}

// offRows returns the row offsets of rows [i0, i0+rn) of (b, h), or nil on the plain path.
func (x *plan) offRows(st *bwd, b, h, i0, rn int) []float64 {
	if st.off == nil {
		return nil
	}
	row := (b*x.d.H+h)*x.d.N + i0
	return st.off[row : row+rn]
}

// dqTile adds the contribution of keys [ja, ja+jn) to the dQ rows of the query block.
func (x *plan) dqTile(st *bwd, w *fwdScratch, acc []float32, b, h, i0, rn, ja, jn int) {
	d, br, dp, kn := x.d, x.br, x.dp, x.kn
	g := d.KVHead(h)
	jn6 := roundUp(jn, mr)

	// Sᵀ = K·Qᵀ, dP'ᵀ = V·dOᵀ                                         (jn, br)
	kt := x.k.block(b, g, ja, jn, dp, w.kBuf) // (jn6, dp)
	vt := x.v.block(b, g, ja, jn, dp, w.vBuf) // (jn6, dp)
	sT := w.s[:jn6*br]
	cols := tileCols(rn)
	dpT := w.dp[:jn6*br]
	part := !full(w.lo, w.hi, rn, ja, ja+jn)
	band := part && monotone(w.lo, w.hi, rn)
	if band { // the band of visible pairs only, as forwardTile
		keyBand(w.blo, w.bhi, w.lo, w.hi, rn, ja, jn, jn6)
		kn.GEMMBandCols(jn6, cols, d.D, kt, dp, 1, w.qT, br, sT, br, w.blo, w.bhi, false)
		kn.GEMMBandCols(jn6, cols, d.D, vt, dp, 1, w.doT, br, dpT, br, w.blo, w.bhi, true)
	} else {
		kn.GEMM(jn6, cols, d.D, kt, dp, 1, w.qT, br, sT, br, false)
		kn.GEMM(jn6, cols, d.D, vt, dp, 1, w.doT, br, dpT, br, false)
	}
	t := tile{x: sT, sr: 1, sc: br}
	if !x.plain {
		x.logits(t, w.u, b, h, i0, rn, ja, jn, w.lo, w.hi, x.offRows(st, b, h, i0, rn))
	} else if part {
		mask(t, rn, ja, jn, w.lo, w.hi)
	}

	// P = 2^(expA·Sᵀ − L2)
	kn.ExpCols(sT, jn, cols, br, x.expA, w.bsub, nil)
	// dP = dP' ∘ Z/(1−p); dS = P ∘ (dP − D) · scale (· (1 − u²))
	if x.drop {
		x.dropout(tile{x: w.z, sr: 1, sc: br}, b, h, i0, rn, ja, jn, x.dscale)
		for c := 0; c < jn; c++ {
			for r := 0; r < rn; r++ {
				dpT[c*br+r] *= w.z[c*br+r]
			}
		}
	}
	kn.DSCols(dpT, sT, dpT, jn, cols, br, w.dvec, x.scale)
	if x.softcap > 0 {
		for c := 0; c < jn; c++ {
			for r := 0; r < rn; r++ {
				u := w.u[c*br+r]
				dpT[c*br+r] *= 1 - u*u
			}
		}
	}

	// dQ += dS·K                                                      (br, dp)
	if band { // each query row sums only over the keys it sees (as the fused dkdvBlock)
		queryBand(w.blo, w.bhi, w.lo, w.hi, rn, roundUp(rn, mr), ja, jn)
		kn.GEMMBandK(roundUp(rn, mr), dp, jn, dpT, 1, br, kt, dp, acc, dp, w.blo, w.bhi)
	} else {
		kn.GEMM(roundUp(rn, mr), dp, jn, dpT, 1, br, kt, dp, acc, dp, true)
	}
}
