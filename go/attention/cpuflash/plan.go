package cpuflash

import (
	"context"
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// plan is one call decoded for the tile loops: sizes, input views and the options in the
// form the loops use them.
type plan struct {
	ctx context.Context
	e   *Executor
	kn  *kernels
	p   *spec.Problem
	d   spec.Dims
	dt  tensor.DType

	q, k, v src
	br, bc  int // query block, key block: multiples of blockUnit
	dp      int // D rounded up to nr: row stride of tiles that are GEMM outputs over D

	scale   float32 // softmax scale, as the backward multiplies dS by it
	scale64 float64
	// Logits enter exp2 as expA·x. On the plain path (no softcap, no mask) x is the raw
	// q·k and expA = scale·log2(e); otherwise the tile is first turned into base-2 logits
	// t = log2(e)·clamp(cap(scale·q·k) + bias − off_i) and expA = 1, where off_i is the
	// row's offset (rowOffset) and the clamp is ±logitLimit.
	plain   bool
	expA    float32
	softcap float64
	keep    []bool    // bool mask, or nil
	bias    []float32 // additive mask, or nil

	bounds [][]int // per batch, the chunk boundaries of the key blocks (backward; chunkBounds)

	drop   bool
	stream philox.Stream
	dscale float32 // 1/(1 − p)
}

func newPlan(ctx context.Context, e *Executor, p *spec.Problem) (*plan, error) {
	d := p.Dims()
	x := &plan{ctx: ctx, e: e, kn: e.kn, p: p, d: d, dt: p.Q.DType(), dp: roundUp(d.D, nr)}
	x.br, x.bc = e.Blocks(d.D)
	sc := p.ScaleValue()
	x.scale, x.scale64 = float32(sc), sc
	x.softcap = p.Softcap
	if m := p.Mask; m != nil {
		if m.Kind == spec.MaskBool {
			x.keep = m.Keep
		} else {
			x.bias = m.Bias
		}
	}
	// The plain path multiplies raw float32 q·k by expA in float32: only for scales whose
	// products stay far from overflow (|q·k| up to 2^64 at scale·log2(e) ≤ 2^32).
	x.plain = x.softcap == 0 && p.Mask == nil && sc*math.Log2E <= 1<<32
	x.expA = 1
	if x.plain {
		x.expA = float32(sc * math.Log2E)
	}
	if p.Dropout.P > 0 {
		x.drop = true
		x.stream = p.DropoutStream()
		x.dscale = float32(philox.Scale(p.Dropout.P))
	}
	return x, nil
}

// load reads Q, K and V (copying the non-contiguous ones; inputBytes counted that).
func (x *plan) load() error {
	d, p := x.d, x.p
	var err error
	if x.q, err = newSrc("Q", p.Q, d.H, d.N, d.D); err != nil {
		return err
	}
	if x.k, err = newSrc("K", p.K, d.Hkv, d.M, d.D); err != nil {
		return err
	}
	x.v, err = newSrc("V", p.V, d.Hkv, d.M, d.D)
	return err
}

// copyBytes is what reading ts costs beyond the inputs: a contiguous copy of each that is
// not contiguous.
func copyBytes(ts ...*tensor.Tensor) int64 {
	var n int64
	for _, t := range ts {
		if !t.IsContiguous() {
			n = spec.AddBytes(n, spec.MulBytes(t.Len(), t.DType().Size()))
		}
	}
	return n
}

// outBytes is the memory of a new output of dtype dt and shape, or 0 when into takes it
// in place.
func outBytes(into *tensor.Tensor, dt tensor.DType, shape ...int) int64 {
	if inPlace(into, dt) {
		return 0
	}
	return spec.MulBytes(append(shape, dt.Size())...)
}

// src is a contiguous [B, heads, rows, D] input read as float32, whatever its dtype.
type src struct {
	dt    tensor.DType
	f32   []float32
	u16   []uint16
	heads int
	rows  int
	d     int
}

func newSrc(name string, t *tensor.Tensor, heads, rows, d int) (src, error) {
	c, _, err := t.Contiguous()
	if err != nil {
		return src{}, fmt.Errorf("cpuflash: reading %s: %w", name, err)
	}
	s := src{dt: c.DType(), heads: heads, rows: rows, d: d}
	if s.dt == tensor.Float32 {
		s.f32, err = c.Float32s()
	} else {
		s.u16, err = c.Uint16s()
	}
	if err != nil {
		return src{}, fmt.Errorf("cpuflash: reading %s: %w", name, err)
	}
	return s, nil
}

// off is the element offset of row r of head h of batch b.
func (s *src) off(b, h, r int) int { return ((b*s.heads+h)*s.rows + r) * s.d }

// row converts one row of D elements at element offset off into dst[:D].
func (s *src) row(dst []float32, off int) {
	dst = dst[:s.d]
	switch s.dt {
	case tensor.Float32:
		copy(dst, s.f32[off:off+s.d])
	case tensor.Float16:
		for i, h := range s.u16[off : off+s.d] {
			dst[i] = tensor.Float16ToFloat32(h)
		}
	default: // bfloat16
		for i, h := range s.u16[off : off+s.d] {
			dst[i] = tensor.BFloat16ToFloat32(h)
		}
	}
}

// rowsTo copies n rows from element offset off into dst with row stride ld ≥ D, as
// float32, with columns D..ld−1 zeroed.
func (s *src) rowsTo(dst []float32, ld, off, n int) {
	for r := 0; r < n; r++ {
		dr := dst[r*ld : (r+1)*ld]
		s.row(dr, off+r*s.d)
		clear(dr[s.d:])
	}
}

// rowsT copies n rows from element offset off transposed: dst[c·ld + r] = row r, column
// c, for c < D; columns r in [n, ld) are zeroed.
func (s *src) rowsT(kn *kernels, dst []float32, ld, off, n int, tmp []float32) {
	r := 0
	if s.dt == tensor.Float32 {
		d := s.d
		if kn.transpose16 != nil && d%16 == 0 { // 16×16 blocks in registers
			for ; r+16 <= n; r += 16 {
				for c := 0; c < d; c += 16 {
					kn.Transpose16(dst[c*ld+r:], ld, s.f32[off+r*d+c:], d)
				}
			}
		}
		// Four rows at a time from the input itself: each column gets 4 consecutive
		// elements per pass, with one bounds check per group.
		for ; r+4 <= n; r += 4 {
			in := s.f32[off+r*d : off+(r+4)*d]
			r0, r1, r2, r3 := in[:d], in[d:2*d], in[2*d:3*d], in[3*d:4*d]
			for c := range r0 {
				o := dst[c*ld+r : c*ld+r+4]
				o[0], o[1], o[2], o[3] = r0[c], r1[c], r2[c], r3[c]
			}
		}
	}
	tmp = tmp[:s.d]
	for ; r < n; r++ {
		s.row(tmp, off+r*s.d)
		for c, v := range tmp {
			dst[c*ld+r] = v
		}
	}
	for c := 0; c < s.d; c++ {
		clear(dst[c*ld+n : (c+1)*ld])
	}
}

// block copies n rows of (b, h) from row r0 into buf as float32 with row stride dp,
// zeroing columns D..dp−1 and rows n..roundUp(n, mr)−1, and returns
// buf[:roundUp(n, mr)·dp]. The copy serves as a GEMM's A operand (rs = dp, over D) and as
// its B operand (ldb = dp, over dp). Float32 rows that already have that layout are
// returned in place instead: on AVX-512 (Zen 5) reading them directly measured 5–15 %
// faster than copying them once per query block (docs/PERFORMANCE.md), where on the AVX2
// machine of the first measurements the copy had paid for itself.
func (s *src) block(b, h, r0, n, dp int, buf []float32) []float32 {
	n6 := roundUp(n, mr)
	if s.dt == tensor.Float32 && dp == s.d && n == n6 {
		// Already in the layout the copy would make (float32, no column or row padding):
		// the rows themselves, which are bitwise what the copy would hold.
		at := s.off(b, h, r0)
		return s.f32[at : at+n*dp : at+n*dp]
	}
	buf = buf[:n6*dp]
	s.rowsTo(buf, dp, s.off(b, h, r0), n)
	clear(buf[n*dp:])
	return buf
}

// dst is a contiguous [B, heads, rows, D] output in its dtype: the caller's destination
// when it can be written in place, a new tensor otherwise.
type dst struct {
	t       *tensor.Tensor
	f32     []float32
	u16     []uint16
	inPlace bool // t is the caller's destination
}

// inPlace reports whether a caller's destination can be written directly: contiguous,
// host-visible storage of the output's dtype (spec.ValidateSavedInto/ValidateGradsInto
// checked shape, dtype and overlaps).
func inPlace(into *tensor.Tensor, dt tensor.DType) bool {
	return into != nil && into.DType() == dt && into.IsContiguous() &&
		into.Storage().Kind().HostVisible() && into.Storage().Bytes() != nil
}

// newDst returns into, cleared, when it can be written in place, and a new tensor
// otherwise (the caller then copies the result into into).
func newDst(into *tensor.Tensor, dt tensor.DType, shape ...int) (dst, error) {
	t := into
	var err error
	if !inPlace(into, dt) {
		if t, err = tensor.New(dt, shape...); err != nil {
			return dst{}, fmt.Errorf("cpuflash: allocating output %v: %w", shape, err)
		}
	}
	o := dst{t: t, inPlace: t == into}
	if dt == tensor.Float32 {
		o.f32, err = t.Float32s()
		if o.inPlace {
			clear(o.f32)
		}
	} else {
		o.u16, err = t.Uint16s()
		if o.inPlace {
			clear(o.u16)
		}
	}
	if err != nil {
		return dst{}, fmt.Errorf("cpuflash: output %v: %w", shape, err)
	}
	return o, nil
}

// lseDst is the logsumexp output L (B, H, N): float64 unless the caller's destination is
// float32.
type lseDst struct {
	t       *tensor.Tensor
	f32     []float32
	f64     []float64
	inPlace bool
}

func newLseDst(into *tensor.Tensor, shape ...int) (lseDst, error) {
	dt := tensor.Float64
	if into != nil && into.DType() == tensor.Float32 {
		dt = tensor.Float32
	}
	t := into
	var err error
	if !inPlace(into, dt) {
		if t, err = tensor.New(dt, shape...); err != nil {
			return lseDst{}, fmt.Errorf("cpuflash: allocating L %v: %w", shape, err)
		}
	}
	o := lseDst{t: t, inPlace: t == into}
	if dt == tensor.Float32 {
		o.f32, err = t.Float32s()
	} else {
		o.f64, err = t.Float64s()
	}
	if err != nil {
		return lseDst{}, fmt.Errorf("cpuflash: L %v: %w", shape, err)
	}
	return o, nil
}

// lseSrc reads a saved L (B, H, N) of either dtype: in place when it is contiguous, from
// a float64 copy otherwise.
type lseSrc struct {
	f32 []float32
	f64 []float64
	n   int
}

func newLseSrc(t *tensor.Tensor) (lseSrc, error) {
	var l lseSrc
	var err error
	switch {
	case t.IsContiguous() && t.DType() == tensor.Float32:
		l.f32, err = t.Float32s()
	case t.IsContiguous() && t.DType() == tensor.Float64:
		l.f64, err = t.Float64s()
	default:
		l.f64, err = t.ToFloat64s()
	}
	l.n = t.Len()
	return l, err
}

func (l *lseSrc) at(i int) float64 {
	if l.f64 != nil {
		return l.f64[i]
	}
	return float64(l.f32[i])
}

func (l *lseDst) fill(v float64) {
	for i := range l.f32 {
		l.f32[i] = float32(v)
	}
	for i := range l.f64 {
		l.f64[i] = v
	}
}

func (l *lseDst) set(i int, v float64) {
	if l.f64 != nil {
		l.f64[i] = v
	} else {
		l.f32[i] = float32(v)
	}
}

// putRows writes n rows of d elements from buf (row stride ld) at element offset off.
func (o *dst) putRows(off, n, d int, buf []float32, ld int) {
	dt := o.t.DType()
	if n <= 0 {
		return
	}
	for r := 0; r < n; r++ {
		row := buf[r*ld : r*ld+d]
		at := off + r*d
		switch dt {
		case tensor.Float32:
			copy(o.f32[at:at+d], row)
		case tensor.Float16:
			out := o.u16[at : at+d]
			for i, v := range row {
				out[i] = tensor.Float32ToFloat16(v)
			}
		default:
			out := o.u16[at : at+d]
			for i, v := range row {
				out[i] = tensor.Float32ToBFloat16(v)
			}
		}
	}
}

// keyRanges fills lo[r], hi[r] with the keys visible to rows i0+r (r < n) of batch b
// (lengths, causal masking, window) and returns their union [kLo, kHi), empty when
// kLo ≥ kHi.
func (x *plan) keyRanges(b, i0, n int, lo, hi []int) (kLo, kHi int) {
	kLo, kHi = math.MaxInt, 0
	for r := 0; r < n; r++ {
		l, h := x.p.KeyRange(b, i0+r)
		lo[r], hi[r] = l, h
		if l < h {
			kLo, kHi = min(kLo, l), max(kHi, h)
		}
	}
	if kLo >= kHi {
		return 0, 0
	}
	return kLo, kHi
}

// full reports whether every row r < n sees every key of [j0, j1).
func full(lo, hi []int, n, j0, j1 int) bool {
	for r := 0; r < n; r++ {
		if lo[r] > j0 || hi[r] < j1 {
			return false
		}
	}
	return true
}

// tile addresses element (r, c) — query row i0+r, key column j0+c — of a logit tile at
// x[r·sr + c·sc]. The forward and dQ passes keep tiles transposed (sr = 1), the dK/dV pass
// row-major (sc = 1).
type tile struct {
	x      []float32
	sr, sc int
}

func (t tile) at(r, c int) int { return r*t.sr + c*t.sc }

// negInf is −Inf as a float32.
func negInf() float32 { return float32(math.Inf(-1)) }

// mask sets the elements of rows r < rows, columns c < cols outside [lo[r], hi[r]) to
// −Inf (the plain path's only masking).
func mask(t tile, rows, j0, cols int, lo, hi []int) {
	if t.sr == 1 && monotone(lo, hi, rows) {
		maskTransposed(t, rows, j0, cols, lo, hi)
		return
	}
	for r := 0; r < rows; r++ {
		a := min(max(lo[r]-j0, 0), cols)
		z := min(max(hi[r]-j0, a), cols)
		if t.sc == 1 { // a row-major tile: two runs
			row := t.x[r*t.sr : r*t.sr+cols]
			fillNegInf(row[:a])
			fillNegInf(row[z:])
			continue
		}
		for c := 0; c < a; c++ {
			t.x[t.at(r, c)] = negInf()
		}
		for c := z; c < cols; c++ {
			t.x[t.at(r, c)] = negInf()
		}
	}
}

// monotone reports whether lo and hi never decrease over the first n rows. They do not
// for lengths, causal masking and windows, whose ranges follow the diagonal.
func monotone(lo, hi []int, n int) bool {
	for r := 1; r < n; r++ {
		if lo[r] < lo[r-1] || hi[r] < hi[r-1] {
			return false
		}
	}
	return true
}

// queryBand sets blo, bhi for tile rows r < rows that are query rows (r < rn valid, the
// rest padding): the visible key columns [lo[r] − j0, hi[r] − j0) clamped to [0, cols),
// empty for padding rows. GEMMBandCols and GEMMBandK take them.
func queryBand(blo, bhi, lo, hi []int, rn, rows, j0, cols int) {
	for r := 0; r < rows; r++ {
		if r >= rn {
			blo[r], bhi[r] = 0, 0
			continue
		}
		blo[r], bhi[r] = min(max(lo[r]-j0, 0), cols), min(max(hi[r]-j0, 0), cols)
	}
}

// keyBand sets blo, bhi for tile rows c < rows that are keys j0+c (c < jn valid, the rest
// padding): the query rows [ra, rb) that see the key, for monotone ranges (see
// maskTransposed), empty for padding rows.
func keyBand(blo, bhi, lo, hi []int, rn, j0, jn, rows int) {
	ra, rb := 0, 0
	for c := 0; c < rows; c++ {
		if c >= jn {
			blo[c], bhi[c] = 0, 0
			continue
		}
		j := j0 + c
		for ra < rn && hi[ra] <= j {
			ra++
		}
		for rb < rn && lo[rb] <= j {
			rb++
		}
		blo[c], bhi[c] = ra, rb
	}
}

// maskTransposed is mask for a transposed tile (sr = 1) with monotone ranges: the query
// rows that see key j0+c are one interval [ra, rb), so each key's tile row gets two
// contiguous runs of −Inf.
func maskTransposed(t tile, rows, j0, cols int, lo, hi []int) {
	ra, rb := 0, 0
	for c := 0; c < cols; c++ {
		j := j0 + c
		for ra < rows && hi[ra] <= j {
			ra++
		}
		for rb < rows && lo[rb] <= j {
			rb++
		}
		row := t.x[c*t.sc : c*t.sc+rows]
		z := max(rb, ra)
		fillNegInf(row[:ra])
		fillNegInf(row[z:])
	}
}

// negInfs is a run of −Inf for fillNegInf to copy from.
var negInfs = func() []float32 {
	v := make([]float32, 256)
	for i := range v {
		v[i] = negInf()
	}
	return v
}()

// fillNegInf sets every element of x to −Inf (by copies, which the runtime vectorizes).
func fillNegInf(x []float32) {
	for len(x) > 0 {
		x = x[copy(x, negInfs):]
	}
}

// logitLimit bounds the natural-log logit (after the row offset) before the log2(e)
// scaling, so that every base-2 logit and every difference of two stays finite in float32
// (2·log2(e)·2^126 < MaxFloat32): a finite bias such as −MaxFloat32 stays visible (W1, D5).
const logitLimit = 0x1p126

// rowOffsets sets off[r] for rows i0+r (r < rows) of (b, h): the largest finite bias of
// the row over its visible keys [lo[r], hi[r]), or 0 without an additive mask or a finite
// bias. Logits are stored relative to it, so a large constant bias on a row (padding such
// as −1e9 or −MaxFloat32) costs no float32 precision: the forward keeps the row's softmax
// exact to float32 and writes L = off + ln 2·(m2 + log2 l) in float64, and the backward
// subtracts off from L in float64 before rounding, so P = 2^(t − L2) is as accurate as
// the forward's (D6). It depends on the row only, so every pass computes the same value.
func (x *plan) rowOffsets(off []float64, b, h, i0, rows int, lo, hi []int) {
	for r := 0; r < rows; r++ {
		off[r] = 0
		if x.bias == nil || lo[r] >= hi[r] {
			continue
		}
		at := x.p.Mask.Index(b, h, i0+r, 0)
		m := math.Inf(-1)
		for _, v := range x.bias[at+lo[r] : at+hi[r]] {
			if f := float64(v); f > m && !math.IsInf(f, 0) {
				m = f
			}
		}
		if !math.IsInf(m, -1) {
			off[r] = m
		}
	}
}

// logits turns raw q·k values of rows r < rows, columns c < cols into base-2 logits in
// the order of the contract — scale, softcap, bias, visibility — for the non-plain path,
// relative to the row offsets off (rowOffsets) and clamped to ±logitLimit, in float64.
// With a softcap it keeps tanh(scale·q·k / cap) in u (same layout) for the backward.
func (x *plan) logits(t tile, u []float32, b, h, i0, rows, j0, cols int, lo, hi []int, off []float64) {
	m := x.p.Mask
	sc := x.scale64
	for r := 0; r < rows; r++ {
		i := i0 + r
		var keep []bool
		var bias []float32
		if m != nil {
			at := m.Index(b, h, i, 0)
			if x.keep != nil {
				keep = x.keep[at : at+x.d.M]
			} else {
				bias = x.bias[at : at+x.d.M]
			}
		}
		for c := 0; c < cols; c++ {
			j, e := j0+c, t.at(r, c)
			if j < lo[r] || j >= hi[r] || (keep != nil && !keep[j]) {
				t.x[e] = negInf()
				continue
			}
			s := sc * float64(t.x[e]) // s = scale · q·k
			if x.softcap > 0 {
				th := math.Tanh(s / x.softcap)
				u[e] = float32(th)
				s = x.softcap * th // s = c · tanh(s / c)
			}
			if bias != nil {
				// s = s + bias − off: the offset comes off the bias first (exact in float64
				// for float32 operands of like size), so −MaxFloat32 + q·k keeps its q·k.
				bj := float64(bias[j])
				if math.IsInf(bj, -1) { // a −Inf bias hides the key
					t.x[e] = negInf()
					continue
				}
				s += bj - off[r]
			}
			s = min(max(s, -logitLimit), logitLimit) // finite in float32 after the log2(e)
			t.x[e] = float32(s * math.Log2E)
		}
	}
}

// dropout fills z (layout of t) for rows r < rows, columns c < cols with `kept` where
// package philox keeps the element of (b, h, i0+r, j0+c), and 0 where it drops it.
func (x *plan) dropout(z tile, b, h, i0, rows, j0, cols int, kept float32) {
	for r := 0; r < rows; r++ {
		row := philox.Row(b, h, i0+r, x.d.H, x.d.N)
		var w [4]uint32
		for c := 0; c < cols; c++ {
			j := j0 + c
			if c == 0 || j&3 == 0 {
				w = x.stream.Words(row, j)
			}
			v := float32(0)
			if w[j&3] >= x.stream.Threshold {
				v = kept
			}
			z.x[z.at(r, c)] = v
		}
	}
}
