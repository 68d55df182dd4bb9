package cpuflash

import (
	"math"

	"github.com/orchard-ml/orchard/go/attention/spec"
)

// fwdScratch is one worker's memory for the forward pass (and the dQ pass, which walks
// the same tiles). Nothing in it is N×M: it is sized by the blocks and D. The float32
// parts are carved from one buffer of the executor's cache (buf).
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
	off                   []float64   // (br) row offsets of the logits (rowOffsets)
	lo, hi                []int       // (br) visible key range per query row
	loMax, hiMin          int         // over the block's rows: every row sees [loMax, hiMin)
	mono                  bool        // lo and hi never decrease over the block's rows (monotone)
	blo, bhi              []int       // (max(br, bc)) band of the current tile's product

	buf []float32 // the cached buffer the float32 parts live in
}

// fwdScratchLen is the number of float32 elements of one fwdScratch.
func (x *plan) fwdScratchLen(backward bool) int {
	br, bc, d, dp := x.br, x.bc, x.d.D, x.dp
	n := d*br + bc*br + br*dp + 2*roundUp(bc, mr)*dp + d + 6*br
	if backward {
		n += d*br + bc*br + br + x.nChunks()*br*dp
	}
	if x.softcap > 0 {
		n += bc * br
	}
	if x.drop {
		n += bc * br
	}
	return n
}

// fwdScratchBytes is the memory of one fwdScratch, for the budget.
func (x *plan) fwdScratchBytes(backward bool) int64 {
	return spec.AddBytes(spec.MulBytes(x.fwdScratchLen(backward), 4), spec.MulBytes(x.br, 8+8+8), spec.MulBytes(max(x.br, x.bc), 16))
}

func (x *plan) newFwdScratch(backward bool) *fwdScratch {
	br, bc, d, dp := x.br, x.bc, x.d.D, x.dp
	buf := x.e.cache.get(x.fwdScratchLen(backward))
	clear(buf)
	sl := &slab{buf: buf}
	w := &fwdScratch{
		buf:  buf,
		qT:   sl.take(d * br),
		s:    sl.take(bc * br),
		o:    sl.take(br * dp),
		kBuf: sl.take(roundUp(bc, mr) * dp),
		vBuf: sl.take(roundUp(bc, mr) * dp),
		tmp:  sl.take(d),
		m2:   sl.take(br),
		l:    sl.take(br),
		mx:   sl.take(br),
		lsum: sl.take(br),
		bsub: sl.take(br),
		corr: sl.take(br),
		off:  make([]float64, br),
		lo:   make([]int, br),
		hi:   make([]int, br),
		blo:  make([]int, max(br, bc)),
		bhi:  make([]int, max(br, bc)),
	}
	if backward {
		w.doT = sl.take(d * br)
		w.dp = sl.take(bc * br)
		w.dvec = sl.take(br)
		for range x.nChunks() {
			w.chunks = append(w.chunks, sl.take(br*dp))
		}
	}
	if x.softcap > 0 {
		w.u = sl.take(bc * br)
	}
	if x.drop {
		w.z = sl.take(bc * br)
	}
	return w
}

func (x *plan) freeFwdScratch(w *fwdScratch) { x.e.cache.put(w.buf) }

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

// forward computes O (B, H, N, D) into o and L (B, H, N) into lse. Rows past a batch's
// query length and rows with no visible key get O = 0 and L = −Inf.
func (x *plan) forward(o *dst, lse *lseDst) error {
	lse.fill(math.Inf(-1))
	return run(x.ctx, x.e, x.queryTasks(), func() *fwdScratch { return x.newFwdScratch(false) }, x.freeFwdScratch,
		func(w *fwdScratch, t task) { x.forwardBlock(w, t.b, t.h, t.blk*x.br, o, lse) })
}

// forwardBlock computes rows [i0, i0+rn) of O and L for head h of batch b: one pass over
// the visible key blocks with the online softmax, in base 2.
func (x *plan) forwardBlock(w *fwdScratch, b, h, i0 int, o *dst, lse *lseDst) {
	d, br, dp := x.d, x.br, x.dp
	rn := min(br, x.p.LensQ(b)-i0)
	m2, l := w.m2[:br], w.l[:br] // (br)
	acc := w.o[:br*dp]           // (br, dp)
	for r := range m2 {
		m2[r], l[r] = negInf(), 0
	}
	clear(acc)
	kLo, kHi := x.keyRanges(b, i0, rn, w.lo, w.hi)
	w.loMax, w.hiMin, w.mono = math.MinInt, math.MaxInt, monotone(w.lo, w.hi, rn)
	for r := 0; r < rn; r++ {
		w.loMax, w.hiMin = max(w.loMax, w.lo[r]), min(w.hiMin, w.hi[r])
	}
	if kLo < kHi {
		if !x.plain {
			x.rowOffsets(w.off, b, h, i0, rn, w.lo, w.hi)
		}
		x.q.rowsT(x.kn, w.qT, br, x.q.off(b, h, i0), rn, w.tmp) // (D, br)
		for ja := kLo; ja < kHi; {
			if x.ctx.Err() != nil {
				return // the pool reports the cancellation; outputs are not returned
			}
			jz := min((ja/x.bc+1)*x.bc, kHi)
			x.forwardTile(w, b, h, i0, rn, ja, jz-ja)
			ja = jz
		}
	}
	// O_i = acc_i · Z-scale / l_i and L_i = off_i + ln 2 · (m2_i + log2 l_i), in float64;
	// a row that saw no key keeps O_i = 0 and L_i = −Inf.
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
		v := math.Ln2 * (float64(m2[r]) + math.Log2(float64(l[r])))
		if !x.plain {
			v += w.off[r]
		}
		lse.set(row+r, v)
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
	// On a tile the diagonal crosses (causal, windows, lengths) only the band of visible
	// (key, query) pairs is computed; mask or logits sets the rest to −Inf.
	kt := x.k.block(b, g, ja, jn, dp, w.kBuf) // (jn6, dp)
	sT := w.s[:jn6*br]
	part := w.loMax > ja || w.hiMin < ja+jn // !full(lo, hi, rn, ja, ja+jn)
	band := part && w.mono
	if band {
		keyBand(w.blo, w.bhi, lo, hi, rn, ja, jn, jn6)
		kn.GEMMBandCols(jn6, cols, d.D, kt, dp, 1, w.qT, br, sT, br, w.blo, w.bhi, false)
	} else {
		kn.GEMM(jn6, cols, d.D, kt, dp, 1, w.qT, br, sT, br, false)
	}
	t := tile{x: sT, sr: 1, sc: br}
	if !x.plain {
		x.logits(t, w.u, b, h, i0, rn, ja, jn, lo, hi, w.off) // base-2 logits, −Inf where hidden
	} else if part {
		mask(t, rn, ja, jn, lo, hi)
	}

	// m2_new = max(m2, expA · max_c Sᵀ[c, ·]); rescale l and the O rows by 2^(m2 − m2_new)
	mx := w.mx[:br] // (br)
	for r := range mx {
		mx[r] = negInf()
	}
	kn.ColMax(mx, sT, jn, cols, br)
	m2, l, bsub, corr := w.m2[:br], w.l, w.bsub[:br], w.corr[:br]
	inf := float32(math.Inf(1))
	rescale := false
	for r := 0; r < br; r++ {
		if r >= rn {
			bsub[r] = inf // padding rows: exp2(· − Inf) = 0
			continue
		}
		mnew := max(m2[r], x.expA*mx[r])
		if math.IsInf(float64(mnew), -1) {
			bsub[r] = inf // nothing visible yet
			continue
		}
		bsub[r] = mnew
		rescale = rescale || mnew != m2[r]
	}
	if rescale {
		// corr = 2^(m2 − m2_new) with the exp2 kernel of P: 1 exactly where the maximum
		// held (2^0), 0 where m2 = −Inf or nothing is visible yet (bsub = +Inf; l and the
		// O row are still 0 there). m2 − m2_new is exact in float32 where it is small
		// (Sterbenz), the only place corr's rounding matters.
		copy(corr, m2)
		kn.ExpCols(corr, 1, br, br, 1, bsub, nil)
		for r := 0; r < rn; r++ {
			if !math.IsInf(float64(bsub[r]), 1) {
				l[r] *= corr[r]
				m2[r] = bsub[r]
			}
		}
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
	if band {                                 // each query row sums only over the keys it sees
		queryBand(w.blo, w.bhi, lo, hi, rn, roundUp(rn, mr), ja, jn)
		kn.GEMMBandK(roundUp(rn, mr), dp, jn, sT, 1, br, vt, dp, w.o, dp, w.blo, w.bhi)
	} else {
		kn.GEMM(roundUp(rn, mr), dp, jn, sT, 1, br, vt, dp, w.o, dp, true)
	}
}
