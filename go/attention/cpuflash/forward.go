package cpuflash

import (
	"math"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// fwdScratch is one worker's memory for the forward pass (and the dQ pass, which walks
// the same tiles). Nothing in it is N×M: it is sized by the blocks and D.
type fwdScratch struct {
	qT   []float32 // (D, br)  Q of the query block, transposed
	doT  []float32 // (D, br)  dO of the query block, transposed (dQ pass)
	s    []float32 // (bc, br) logits, then P, transposed: s[c·br + r]
	dp   []float32 // (bc, br) dP, then dS, transposed (dQ pass)
	u    []float32 // (bc, br) tanh of the capped logit (softcap only)
	z    []float32 // (bc, br) dropout factors (dropout only)
	o    []float32 // (br, dp) O accumulator (dQ accumulator in the dQ pass)
	kBuf []float32 // (bc, dp) K rows of the key tile (block)
	vBuf []float32 // (bc, dp) V rows of the key tile (block)
	tmp  []float32 // (D) one converted row

	m2, l, mx, lsum, bsub []float32   // (br) per query row: max (base 2), sum, tile max, tile sum, exp2 offset
	corr                  []float32   // (br) per query row: rescale factor of the accumulators
	dvec                  []float32   // (br) D_i = dO_i·O_i (dQ pass)
	chunks                [][]float32 // (chunks, br, dp) dQ accumulator per chunk of key blocks (dQ pass)
	lo, hi                []int       // (br) visible key range per query row
}

func (x *plan) newFwdScratch(backward bool) *fwdScratch {
	br, bc, d, dp := x.br, x.bc, x.d.D, x.dp
	w := &fwdScratch{
		qT:   make([]float32, d*br),
		s:    make([]float32, bc*br),
		o:    make([]float32, br*dp),
		kBuf: make([]float32, roundUp(bc, mr)*dp),
		vBuf: make([]float32, roundUp(bc, mr)*dp),
		tmp:  make([]float32, d),
		m2:   make([]float32, br),
		l:    make([]float32, br),
		mx:   make([]float32, br),
		lsum: make([]float32, br),
		bsub: make([]float32, br),
		corr: make([]float32, br),
		lo:   make([]int, br),
		hi:   make([]int, br),
	}
	if backward {
		w.doT = make([]float32, d*br)
		w.dp = make([]float32, bc*br)
		w.dvec = make([]float32, br)
		for range x.nChunks() {
			w.chunks = append(w.chunks, make([]float32, br*dp))
		}
	}
	if x.softcap > 0 {
		w.u = make([]float32, bc*br)
	}
	if x.drop {
		w.z = make([]float32, bc*br)
	}
	return w
}

// queryTasks lists the (b, h, query block) tasks that have valid rows, costed by the
// number of keys their rows can see.
func (x *plan) queryTasks() []task {
	d := x.d
	lo, hi := make([]int, x.br), make([]int, x.br)
	var tasks []task
	for b := 0; b < d.B; b++ {
		nq := x.p.LensQ(b)
		for i0 := 0; i0 < nq; i0 += x.br {
			rn := min(x.br, nq-i0)
			kLo, kHi := x.keyRanges(b, i0, rn, lo, hi)
			cost := 1 + rn*(kHi-kLo)
			for h := 0; h < d.H; h++ {
				tasks = append(tasks, task{b: b, h: h, blk: i0 / x.br, cost: cost})
			}
		}
	}
	return tasks
}

// forward computes O (B, H, N, D) and L (B, H, N). Rows past a batch's query length
// and rows with no visible key keep O = 0 and L = −Inf.
func (x *plan) forward() (*spec.Saved, error) {
	d := x.d
	o, err := newDst(x.dt, d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, err
	}
	lt, err := tensor.New(tensor.Float32, d.B, d.H, d.N)
	if err != nil {
		return nil, err
	}
	lse, err := lt.Float32s() // (B, H, N)
	if err != nil {
		return nil, err
	}
	for i := range lse {
		lse[i] = negInf()
	}
	err = run(x.e, x.queryTasks(), func() *fwdScratch { return x.newFwdScratch(false) },
		func(w *fwdScratch, t task) { x.forwardBlock(w, t.b, t.h, t.blk*x.br, &o, lse) })
	if err != nil {
		return nil, err
	}
	return &spec.Saved{O: o.t, L: lt}, nil
}

// forwardBlock computes rows [i0, i0+rn) of O and L for head h of batch b: one pass over
// the visible key blocks with the online softmax, in base 2.
func (x *plan) forwardBlock(w *fwdScratch, b, h, i0 int, o *dst, lse []float32) {
	d, br, dp := x.d, x.br, x.dp
	rn := min(br, x.p.LensQ(b)-i0)
	m2, l := w.m2[:br], w.l[:br] // (br)
	acc := w.o[:br*dp]           // (br, dp)
	for r := range m2 {
		m2[r], l[r] = negInf(), 0
	}
	clear(acc)
	kLo, kHi := x.keyRanges(b, i0, rn, w.lo, w.hi)
	if kLo < kHi {
		x.q.rowsT(w.qT, br, x.q.off(b, h, i0), rn, w.tmp) // (D, br)
		for ja := kLo; ja < kHi; {
			jz := min((ja/x.bc+1)*x.bc, kHi)
			x.forwardTile(w, b, h, i0, rn, ja, jz-ja)
			ja = jz
		}
	}
	// O_i = acc_i · Z-scale / l_i and L_i = ln 2 · (m2_i + log2 l_i); a row that saw no
	// key keeps O_i = 0 and L_i = −Inf.
	row := (b*d.H+h)*d.N + i0
	f := w.lsum[:rn] // (rn) row factors
	for r := 0; r < rn; r++ {
		f[r] = 0
		if l[r] == 0 {
			continue
		}
		f[r] = 1 / l[r]
		if x.drop {
			f[r] = x.dscale / l[r]
		}
		lse[row+r] = float32(math.Ln2 * (float64(m2[r]) + math.Log2(float64(l[r]))))
	}
	x.kn.ScaleRows(acc, rn, dp, dp, f)
	o.putRows(row*d.D, rn, d.D, acc, dp)
}

// tileCols is the number of columns of a transposed tile to compute for rn query rows:
// rn rounded up so that both the GEMM that writes the tile (columns in 16s) and the one
// that reads it back (rows in 6s) stay within computed values.
func tileCols(rn int) int { return roundUp(roundUp(rn, mr), nr) }

// forwardTile folds keys [ja, ja+jn) of kv head KVHead(h) into the accumulators of the
// query block: the llm.c-style sequence, shapes on the right.
func (x *plan) forwardTile(w *fwdScratch, b, h, i0, rn, ja, jn int) {
	d, br, dp, kn := x.d, x.br, x.dp, x.kn
	g := d.KVHead(h)
	jn6 := roundUp(jn, mr)
	cols := tileCols(rn) // query columns worth computing (a short last block needs fewer)
	lo, hi := w.lo, w.hi

	// Sᵀ = K·Qᵀ                                                      (jn, br)
	kt := x.k.block(b, g, ja, jn, dp, w.kBuf) // (jn6, dp)
	sT := w.s[:jn6*br]
	kn.GEMM(jn6, cols, d.D, kt, dp, 1, w.qT, br, sT, br, false)
	t := tile{x: sT, sr: 1, sc: br}
	if !x.plain {
		x.logits(t, w.u, b, h, i0, rn, ja, jn, lo, hi) // base-2 logits, −Inf where hidden
	} else if !full(lo, hi, rn, ja, ja+jn) {
		mask(t, rn, ja, jn, lo, hi)
	}

	// m2_new = max(m2, expA · max_c Sᵀ[c, ·]); rescale l and the O rows by 2^(m2 − m2_new)
	mx := w.mx[:br] // (br)
	for r := range mx {
		mx[r] = negInf()
	}
	kn.ColMax(mx, sT, jn, cols, br)
	m2, l, bsub, corr := w.m2, w.l, w.bsub[:br], w.corr[:rn]
	inf := float32(math.Inf(1))
	rescale := false
	for r := 0; r < br; r++ {
		if r >= rn {
			bsub[r] = inf // padding rows: exp2(· − Inf) = 0
			continue
		}
		corr[r] = 1
		mnew := max(m2[r], x.expA*mx[r])
		if math.IsInf(float64(mnew), -1) {
			bsub[r] = inf // nothing visible yet
			continue
		}
		bsub[r] = mnew
		if mnew != m2[r] {
			corr[r] = float32(math.Exp2(float64(m2[r]) - float64(mnew))) // 0 when m2 = −Inf
			l[r] *= corr[r]
			m2[r] = mnew
			rescale = true
		}
	}
	if rescale {
		kn.ScaleRows(w.o, rn, dp, dp, corr) // (rn, dp)
	}

	// P = 2^(expA·Sᵀ − m2_new), in place; l += Σ_c P[c, ·]                (jn, br)
	lsum := w.lsum[:br]
	clear(lsum)
	kn.ExpCols(sT, jn, cols, br, x.expA, bsub, lsum)
	for r := 0; r < rn; r++ {
		l[r] += lsum[r]
	}

	// P' = P ∘ Z (the 1/(1 − p) is applied with 1/l at the end)
	if x.drop {
		z := tile{x: w.z, sr: 1, sc: br}
		x.dropout(z, b, h, i0, rn, ja, jn, 1)
		for c := 0; c < jn; c++ {
			for r := 0; r < rn; r++ {
				sT[c*br+r] *= w.z[c*br+r]
			}
		}
	}

	// O += P'·V                                                       (br, dp)
	vt := x.v.block(b, g, ja, jn, dp, w.vBuf) // (jn6, dp)
	kn.GEMM(roundUp(rn, mr), dp, jn, sT, 1, br, vt, dp, w.o, dp, true)
}
