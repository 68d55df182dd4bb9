package cpuflash

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Tolerances, relative L2 against the float64 reference run on the same input values.
const (
	tolOut32  = 1e-5 // O and L from float32 inputs
	tolGrad32 = 1e-4 // dQ, dK, dV from float32 inputs
	tolF16    = 3e-3 // every output from float16 inputs (outputs rounded to float16)
	tolBF16   = 2e-2 // every output from bfloat16 inputs (outputs rounded to bfloat16)
)

// headDims are the head sizes every random suite covers: tiny, odd, the tile width and
// its multiples, and sizes just off them.
var headDims = []int{1, 3, 16, 59, 64, 111, 128, 256}

// coverage counts how many random problems exercised each option.
type coverage map[string]int

// randomCase draws one problem: dimensions with N and M rarely multiples of the tiles, GQA
// and MQA groupings, and each option of the contract with a fair chance, including rows
// with no visible key.
func randomCase(t testing.TB, rng *rand.Rand, dt tensor.DType, d int, cov coverage) (*spec.Problem, *tensor.Tensor) {
	t.Helper()
	maxLen := 150
	if d >= 128 {
		maxLen = 90
	}
	if raceEnabled {
		maxLen = min(maxLen, 64)
		if d >= 128 {
			maxLen = 40
		}
	}
	B := 1 + rng.IntN(2)
	Hkv := 1 + rng.IntN(2)
	H := Hkv * (1 + rng.IntN(3))
	N, M := 1+rng.IntN(maxLen), 1+rng.IntN(maxLen)
	if rng.IntN(8) == 0 {
		N = 1 // single-query decoding
	}
	sigma := 1.0
	if rng.IntN(3) == 0 {
		sigma = 3 // sharper softmax
	}
	p := &spec.Problem{
		Q: scaledTensor(t, attntest.Tensor(t, rng, dt, B, H, N, d), sigma),
		K: attntest.Tensor(t, rng, dt, B, Hkv, M, d),
		V: attntest.Tensor(t, rng, dt, B, Hkv, M, d),
	}
	if H > Hkv {
		cov["gqa"]++
		if Hkv == 1 {
			cov["mqa"]++
		}
	}
	o := &p.Options
	if rng.IntN(4) == 0 {
		o.Scale = 0.05 + rng.Float64()
		cov["scale"]++
	}
	o.Causal = spec.Causal(rng.IntN(3))
	cov["causal="+o.Causal.String()]++
	if rng.IntN(3) == 0 {
		bound := func() int {
			if rng.IntN(3) == 0 {
				return spec.WindowUnbounded
			}
			return rng.IntN(max(N, M))
		}
		o.Window = &spec.Window{Left: bound(), Right: bound()}
		cov["window"]++
	}
	switch rng.IntN(4) {
	case 1:
		o.Mask = boolMask(rng, B, H, N, M)
		cov["mask=bool"]++
	case 2:
		o.Mask = additiveMask(rng, B, H, N, M)
		cov["mask=additive"]++
	}
	if o.Mask != nil && (o.Mask.Shape[0] == 1 && B > 1 || o.Mask.Shape[1] == 1 && H > 1) {
		cov["mask broadcast"]++
	}
	if rng.IntN(4) == 0 {
		o.Softcap = 0.5 + 10*rng.Float64()
		cov["softcap"]++
	}
	if rng.IntN(4) == 0 {
		o.Dropout = spec.Dropout{P: 0.05 + 0.6*rng.Float64(), Seed: rng.Uint64(), Offset: rng.Uint64N(1 << 40)}
		cov["dropout"]++
	}
	if rng.IntN(4) == 0 {
		o.SeqLensQ, o.SeqLensK = make([]int, B), make([]int, B)
		for b := range B {
			o.SeqLensQ[b], o.SeqLensK[b] = rng.IntN(N+1), rng.IntN(M+1)
		}
		cov["varlen"]++
	}
	require.NoError(t, spec.Validate(p))
	for b := range B {
		for h := range H {
			for i := range N {
				if !rowSeesAKey(p, b, h, i) {
					cov["rows with no visible key"]++
					return p, attntest.Tensor(t, rng, dt, B, H, N, d)
				}
			}
		}
	}
	return p, attntest.Tensor(t, rng, dt, B, H, N, d)
}

func rowSeesAKey(p *spec.Problem, b, h, i int) bool {
	for j := 0; j < p.K.Dim(2); j++ {
		if p.Visible(b, h, i, j) && !(p.Mask != nil && p.Mask.Kind == spec.MaskAdditive && math.IsInf(p.Bias(b, h, i, j), -1)) {
			return true
		}
	}
	return false
}

// maskShape picks a broadcast shape [1 or B, 1 or H, N, M].
func maskShape(rng *rand.Rand, B, H, N, M int) [4]int {
	s := [4]int{1, 1, N, M}
	if rng.IntN(2) == 0 {
		s[0] = B
	}
	if rng.IntN(2) == 0 {
		s[1] = H
	}
	return s
}

// boolMask keeps 80 % of the elements and hides whole rows now and then.
func boolMask(rng *rand.Rand, B, H, N, M int) *spec.Mask {
	s := maskShape(rng, B, H, N, M)
	keep := make([]bool, s[0]*s[1]*N*M)
	for r := 0; r < len(keep)/M; r++ {
		hide := rng.IntN(10) == 0
		for j := 0; j < M; j++ {
			keep[r*M+j] = !hide && rng.IntN(5) != 0
		}
	}
	return &spec.Mask{Kind: spec.MaskBool, Shape: s, Keep: keep}
}

// additiveMask adds N(0, 1) biases, −Inf for 10 % of the elements and for whole rows now
// and then.
func additiveMask(rng *rand.Rand, B, H, N, M int) *spec.Mask {
	s := maskShape(rng, B, H, N, M)
	bias := make([]float32, s[0]*s[1]*N*M)
	for r := 0; r < len(bias)/M; r++ {
		hide := rng.IntN(10) == 0
		for j := 0; j < M; j++ {
			switch {
			case hide || rng.IntN(10) == 0:
				bias[r*M+j] = float32(math.Inf(-1))
			default:
				bias[r*M+j] = float32(rng.NormFloat64())
			}
		}
	}
	return &spec.Mask{Kind: spec.MaskAdditive, Shape: s, Bias: bias}
}

// snapshot copies the bytes of tensors, to prove inputs unchanged.
func snapshot(ts ...*tensor.Tensor) [][]byte {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = append([]byte(nil), t.Storage().Bytes()...)
	}
	return out
}

// errs are the relative L2 errors of one forward + backward against the reference.
type errs struct{ O, L, DQ, DK, DV float64 }

func (e errs) max(r errs) errs {
	return errs{max(e.O, r.O), max(e.L, r.L), max(e.DQ, r.DQ), max(e.DK, r.DK), max(e.DV, r.DV)}
}

func (e errs) String() string {
	return fmt.Sprintf("O %.1e L %.1e dQ %.1e dK %.1e dV %.1e", e.O, e.L, e.DQ, e.DK, e.DV)
}

// compare runs e and the reference on p and dO (the reference on the same values in
// float64) and returns the errors. It checks what holds at any tolerance: no error, the
// shapes and dtypes of the outputs, −Inf in L exactly where the reference has it, no NaN,
// unchanged inputs.
func compare(t *testing.T, e *Executor, p *spec.Problem, dO *tensor.Tensor) errs {
	t.Helper()
	before := snapshot(p.Q, p.K, p.V, dO)
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	p64 := problem64(t, p)
	rs, err := fallback.Forward(p64)
	require.NoError(t, err)
	savedBefore := snapshot(s.O, s.L)
	g, err := e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	rg, err := fallback.Backward(p64, rs, to64(t, dO))
	require.NoError(t, err)

	dt := p.Q.DType()
	for name, x := range map[string]*tensor.Tensor{"O": s.O, "dQ": g.DQ, "dK": g.DK, "dV": g.DV} {
		require.Equal(t, dt, x.DType(), name)
		require.True(t, x.IsContiguous(), name)
	}
	require.Equal(t, tensor.Float64, s.L.DType(), "L is float64 unless a float32 destination is given")
	require.Equal(t, p.Q.Shape(), s.O.Shape())
	require.Equal(t, p.K.Shape(), g.DK.Shape())

	var r errs
	var ok [5]bool
	r.O, ok[0] = relL2(attntest.Values(t, s.O), attntest.Values(t, rs.O))
	r.L, ok[1] = relL2(attntest.Values(t, s.L), attntest.Values(t, rs.L))
	// dQ and dK vanish analytically when every row sees at most one key (M = 1, a
	// zero-width window, a single causal query): dS = P ∘ (dP − D) is then exactly 0 and a
	// relative error is meaningless. Their denominator is therefore floored at 1 % of the
	// size the gradient has when it does not vanish (gradMagnitude).
	r.DQ, ok[2] = relL2Floor(attntest.Values(t, g.DQ), attntest.Values(t, rg.DQ), 1e-2*gradMagnitude(t, p, dO, p.K))
	r.DK, ok[3] = relL2Floor(attntest.Values(t, g.DK), attntest.Values(t, rg.DK), 1e-2*gradMagnitude(t, p, dO, p.Q))
	r.DV, ok[4] = relL2(attntest.Values(t, g.DV), attntest.Values(t, rg.DV))
	assert.Equal(t, [5]bool{true, true, true, true, true}, ok, "no NaN, and infinities (−Inf in L) exactly where the reference has them")
	assert.Equal(t, before, snapshot(p.Q, p.K, p.V, dO), "inputs unchanged")
	assert.Equal(t, savedBefore, snapshot(s.O, s.L), "saved state unchanged by Backward")
	return r
}

// gradMagnitude is the natural size of dQ (other = K) or dK (other = Q): dQ = scale·dS·K
// with dS ~ dP = dO·Vᵀ, so ‖dQ‖ ~ scale · ‖dO‖ · (√D·rms V) · (√D·rms K). Float32
// rounding in dP − D is relative to this size, not to ‖dQ‖.
func gradMagnitude(t *testing.T, p *spec.Problem, dO, other *tensor.Tensor) float64 {
	rms := func(x *tensor.Tensor) float64 {
		s := 0.0
		v := attntest.Values(t, x)
		for _, e := range v {
			s += e * e
		}
		return math.Sqrt(s / float64(len(v)))
	}
	d := float64(p.Q.Dim(3))
	return p.ScaleValue() * rms(dO) * math.Sqrt(float64(dO.Len())) * d * rms(p.V) * rms(other)
}

func assertWithin(t *testing.T, r errs, out, grad float64, what string) {
	t.Helper()
	assert.LessOrEqual(t, r.O, out, "O: %s", what)
	assert.LessOrEqual(t, r.L, out, "L: %s", what)
	assert.LessOrEqual(t, r.DQ, grad, "dQ: %s", what)
	assert.LessOrEqual(t, r.DK, grad, "dK: %s", what)
	assert.LessOrEqual(t, r.DV, grad, "dV: %s", what)
}

func describe(p *spec.Problem) string {
	d := p.Dims()
	o := p.Options
	s := fmt.Sprintf("B%d H%d Hkv%d N%d M%d D%d causal=%v", d.B, d.H, d.Hkv, d.N, d.M, d.D, o.Causal)
	if o.Scale != 0 {
		s += fmt.Sprintf(" scale=%.3g", o.Scale)
	}
	if w := o.Window; w != nil {
		s += fmt.Sprintf(" window=(%d,%d)", w.Left, w.Right)
	}
	if m := o.Mask; m != nil {
		s += fmt.Sprintf(" mask=%d%v", m.Kind, m.Shape[:2])
	}
	if o.Softcap > 0 {
		s += fmt.Sprintf(" softcap=%.3g", o.Softcap)
	}
	if o.Dropout.P > 0 {
		s += fmt.Sprintf(" dropout=%.2f", o.Dropout.P)
	}
	if o.SeqLensQ != nil {
		s += fmt.Sprintf(" lensQ=%v lensK=%v", o.SeqLensQ, o.SeqLensK)
	}
	return s
}

// TestMatchesReference holds the executor against the reference on 208 random float32
// problems (26 per head size), with 48-row blocks so that most problems span several
// blocks in both directions and few lengths are multiples of them.
func TestMatchesReference(t *testing.T) {
	const perDim = 26
	rng := rand.New(rand.NewPCG(20261125, 1))
	e := New(Params{BlockQ: 48, BlockK: 48})
	cov := coverage{}
	worst := errs{}
	n := 0
	for _, d := range headDims {
		for i := 0; i < perDim; i++ {
			p, dO := randomCase(t, rng, tensor.Float32, d, cov)
			t.Run(fmt.Sprintf("D%d/%d", d, i), func(t *testing.T) {
				r := compare(t, e, p, dO)
				assertWithin(t, r, tolOut32, tolGrad32, describe(p))
				worst = worst.max(r)
			})
			n++
		}
	}
	t.Logf("%d problems (%s kernels), worst relative L2: %v; coverage %v", n, e.Kernels(), worst, cov)
	assert.GreaterOrEqual(t, n, 200)
	for _, k := range []string{"gqa", "mqa", "scale", "causal=none", "causal=top-left", "causal=bottom-right", "window",
		"mask=bool", "mask=additive", "mask broadcast", "softcap", "dropout", "varlen", "rows with no visible key"} {
		assert.GreaterOrEqual(t, cov[k], 10, "problems covering %s", k)
	}
}

// TestDefaultBlocksMatchReference runs the production block sizes on problems longer
// than one block.
func TestDefaultBlocksMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	e := New(Params{})
	cov := coverage{}
	for i, d := range []int{16, 64, 111, 128, 256} {
		p, dO := randomCase(t, rng, tensor.Float32, d, cov)
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			r := compare(t, e, p, dO)
			assertWithin(t, r, tolOut32, tolGrad32, describe(p))
		})
	}
	// One problem of several default blocks in both directions.
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 230, 64),
		K: attntest.Tensor(t, rng, tensor.Float32, 1, 1, 250, 64),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, 1, 250, 64),
	}
	p.Causal = spec.CausalBottomRight
	r := compare(t, e, p, attntest.Tensor(t, rng, tensor.Float32, 1, 2, 230, 64))
	assertWithin(t, r, tolOut32, tolGrad32, describe(p))
}

// TestEveryKernelSetMatchesReference runs each kernel set this CPU runs (AVX-512, AVX2 +
// FMA, NEON, and the pure Go that other architectures run) on random problems, each set
// forced through Params.Kernels. On an amd64 CPU without AVX-512 that set is not listed
// and TestAVX512IsUsedWhereAvailable says so.
func TestEveryKernelSetMatchesReference(t *testing.T) {
	for _, name := range KernelSets() {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 9))
			e := New(Params{BlockQ: 48, BlockK: 48, Kernels: name})
			require.Equal(t, name, e.Kernels())
			cov := coverage{}
			for _, d := range headDims {
				for i := 0; i < 4; i++ {
					p, dO := randomCase(t, rng, tensor.Float32, d, cov)
					t.Run(fmt.Sprintf("D%d/%d", d, i), func(t *testing.T) {
						r := compare(t, e, p, dO)
						assertWithin(t, r, tolOut32, tolGrad32, describe(p))
					})
				}
			}
		})
	}
}

// TestPortableIsGo: Portable is Kernels = "go".
func TestPortableIsGo(t *testing.T) {
	assert.Equal(t, "go", New(Params{Portable: true}).Kernels())
	assert.Equal(t, "go", New(Params{Kernels: "go"}).Kernels())
}

// TestUnavailableKernelSetDeclines: a set this CPU does not run makes the executor decline
// with ErrUnsupported, naming the sets it does run.
func TestUnavailableKernelSetDeclines(t *testing.T) {
	e := New(Params{Kernels: "sse9"})
	p := &spec.Problem{Q: attntest.Tensor(t, rand.New(rand.NewPCG(1, 2)), tensor.Float32, 1, 1, 4, 8)}
	p.K, p.V = p.Q, p.Q
	err := e.Supports(p)
	require.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), `"sse9"`)
	_, err = e.Forward(context.Background(), p, nil)
	require.ErrorIs(t, err, spec.ErrUnsupported)
}

// TestHalfPrecisionMatchesReference runs float16 and bfloat16 inputs against the
// reference on the same (rounded) values. The outputs come back rounded to the input
// dtype, which bounds the agreement: float16 keeps 11 significant bits, bfloat16 8.
func TestHalfPrecisionMatchesReference(t *testing.T) {
	for _, c := range []struct {
		dt  tensor.DType
		tol float64
	}{{tensor.Float16, tolF16}, {tensor.BFloat16, tolBF16}} {
		rng := rand.New(rand.NewPCG(11, uint64(c.dt)))
		e := New(Params{BlockQ: 48, BlockK: 48})
		cov := coverage{}
		var worst errs
		for _, d := range headDims {
			for i := 0; i < 3; i++ {
				p, dO := randomCase(t, rng, c.dt, d, cov)
				t.Run(fmt.Sprintf("%v/D%d/%d", c.dt, d, i), func(t *testing.T) {
					r := compare(t, e, p, dO)
					assertWithin(t, r, c.tol, c.tol, describe(p))
					worst = worst.max(r)
				})
			}
		}
		t.Logf("%v: %d problems, worst relative L2: %v", c.dt, 3*len(headDims), worst)
	}
}

// TestBitwiseAcrossWorkers: the same inputs give the same bits for 1, 2 and 8 workers,
// set both through Params.Workers and through GOMAXPROCS.
func TestBitwiseAcrossWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	cov := coverage{}
	for i := 0; i < 6; i++ {
		p, dO := randomCase(t, rng, tensor.Float32, []int{16, 59, 64, 128}[i%4], cov)
		if i == 0 { // and one large enough for many tasks per worker
			p = &spec.Problem{
				Q:       attntest.Tensor(t, rng, tensor.Float32, 2, 4, 200, 64),
				K:       attntest.Tensor(t, rng, tensor.Float32, 2, 2, 170, 64),
				V:       attntest.Tensor(t, rng, tensor.Float32, 2, 2, 170, 64),
				Options: spec.Options{Causal: spec.CausalTopLeft, Dropout: spec.Dropout{P: 0.2, Seed: 9}},
			}
			dO = attntest.Tensor(t, rng, tensor.Float32, 2, 4, 200, 64)
		}
		t.Run(describe(p), func(t *testing.T) {
			var want [][]byte
			run := func(name string, e *Executor) {
				s, err := e.Forward(context.Background(), p, nil)
				require.NoError(t, err)
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				require.NoError(t, err)
				got := snapshot(s.O, s.L, g.DQ, g.DK, g.DV)
				if want == nil {
					want = got
					return
				}
				assert.Equal(t, want, got, "outputs with %s differ from Workers = 1", name)
			}
			for _, kset := range KernelSets() {
				want = nil // bitwise within a kernel set, not across sets
				for _, w := range []int{1, 2, 8} {
					run(fmt.Sprintf("%s, Workers = %d", kset, w), New(Params{Workers: w, BlockQ: 48, BlockK: 48, Kernels: kset}))
				}
				for _, procs := range []int{1, 2, 8} {
					old := runtime.GOMAXPROCS(procs)
					run(fmt.Sprintf("%s, GOMAXPROCS = %d", kset, procs), New(Params{BlockQ: 48, BlockK: 48, Kernels: kset}))
					runtime.GOMAXPROCS(old)
				}
			}
		})
	}
}

// TestBackwardStrategiesAgreeBitwise: the fused backward (one task per (b, kv head)) and
// the two-pass backward (dK/dV per key block, then dQ per query block) give the same bits,
// which is what lets the executor choose between them by the number of workers.
func TestBackwardStrategiesAgreeBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	cov := coverage{}
	for i := 0; i < 24; i++ {
		p, dO := randomCase(t, rng, tensor.Float32, []int{3, 16, 59, 64, 111, 128}[i%6], cov)
		if i%5 == 4 {
			p.Q, p.K, p.V, dO = to16(t, p.Q), to16(t, p.K), to16(t, p.V), to16(t, dO)
		}
		t.Run(describe(p), func(t *testing.T) {
			var got [2][][]byte
			for k, st := range []backwardStrategy{strategyTwoPass, strategyFused} {
				e := New(Params{BlockQ: 48, BlockK: 48})
				e.strategy = st
				s, err := e.Forward(context.Background(), p, nil)
				require.NoError(t, err)
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				require.NoError(t, err)
				got[k] = snapshot(g.DQ, g.DK, g.DV)
			}
			assert.Equal(t, got[0], got[1])
		})
	}
	assert.Positive(t, cov["dropout"]+cov["softcap"]+cov["mask=bool"]+cov["mask=additive"])
}

// TestChunkedBackward: with few (batch, kv head) pairs the fused backward cuts each
// pair's key blocks into chunks of equal work, sums dQ per chunk and adds the chunk sums in
// order; the two-pass schedule sums the same way. Problems long enough for 2 and 4 chunks,
// with uneven work per key block (causal, windows, lengths), match the reference and give
// the same bits on both schedules.
func TestChunkedBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	n, m := 200, 420
	if raceEnabled {
		n, m = 100, 400
	}
	for _, c := range []struct {
		name         string
		B, H, Hkv, D int
		opts         spec.Options
		chunks       int
	}{
		{"MHA causal", 1, 2, 2, 16, spec.Options{Causal: spec.CausalTopLeft}, 4},
		{"GQA bottom-right window dropout", 1, 4, 2, 24, spec.Options{Causal: spec.CausalBottomRight, Window: &spec.Window{Left: 130, Right: 0}, Dropout: spec.Dropout{P: 0.2, Seed: 5}}, 4},
		{"MQA lengths", 2, 3, 1, 16, spec.Options{SeqLensQ: []int{n, n / 3}, SeqLensK: []int{m / 2, m}}, 4},
		{"eight pairs", 2, 4, 4, 8, spec.Options{}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &spec.Problem{
				Q:       attntest.Tensor(t, rng, tensor.Float32, c.B, c.H, n, c.D),
				K:       attntest.Tensor(t, rng, tensor.Float32, c.B, c.Hkv, m, c.D),
				V:       attntest.Tensor(t, rng, tensor.Float32, c.B, c.Hkv, m, c.D),
				Options: c.opts,
			}
			dO := attntest.Tensor(t, rng, tensor.Float32, c.B, c.H, n, c.D)
			var got [2][][]byte
			for k, st := range []backwardStrategy{strategyTwoPass, strategyFused} {
				e := New(Params{BlockQ: 48, BlockK: 48})
				e.strategy = st
				x, err := newPlan(context.Background(), e, p)
				require.NoError(t, err)
				require.Equal(t, c.chunks, x.nChunks())
				r := compare(t, e, p, dO)
				assertWithin(t, r, tolOut32, tolGrad32, c.name)
				s, err := e.Forward(context.Background(), p, nil)
				require.NoError(t, err)
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				require.NoError(t, err)
				got[k] = snapshot(g.DQ, g.DK, g.DV)
			}
			assert.Equal(t, got[0], got[1], "two-pass and fused schedules")
		})
	}
}

func to16(t *testing.T, x *tensor.Tensor) *tensor.Tensor {
	y, err := x.Convert(tensor.Float16)
	require.NoError(t, err)
	return y
}

// TestRowsWithoutVisibleKeys: a row that sees no key — past its batch's length, hidden
// by the bool mask, −Inf in every additive bias, or cut off by a window — has O = 0,
// L = −Inf and zero gradients, and nothing is NaN.
func TestRowsWithoutVisibleKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const B, H, N, M, D = 2, 2, 60, 70, 16
	hidden := func(p *spec.Problem, b, h, i int) bool { return !rowSeesAKey(p, b, h, i) }
	keep := make([]bool, N*M)
	bias := make([]float32, N*M)
	for i := 0; i < N; i++ {
		for j := 0; j < M; j++ {
			keep[i*M+j] = i%3 != 0
			bias[i*M+j] = float32(rng.NormFloat64())
			if i%4 == 0 {
				bias[i*M+j] = float32(math.Inf(-1))
			}
		}
	}
	for _, c := range []struct {
		name string
		opts spec.Options
	}{
		{"lengths", spec.Options{SeqLensQ: []int{0, 41}, SeqLensK: []int{70, 0}}},
		{"bool mask", spec.Options{Mask: &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{1, 1, N, M}, Keep: keep}}},
		{"additive mask", spec.Options{Mask: &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, N, M}, Bias: bias}}},
		{"window past the keys", spec.Options{Causal: spec.CausalBottomRight, Window: &spec.Window{Left: 0, Right: 0}, SeqLensK: []int{30, 70}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &spec.Problem{
				Q:       attntest.Tensor(t, rng, tensor.Float32, B, H, N, D),
				K:       attntest.Tensor(t, rng, tensor.Float32, B, H, M, D),
				V:       attntest.Tensor(t, rng, tensor.Float32, B, H, M, D),
				Options: c.opts,
			}
			dO := attntest.Tensor(t, rng, tensor.Float32, B, H, N, D)
			e := New(Params{BlockQ: 48, BlockK: 48})
			s, err := e.Forward(context.Background(), p, nil)
			require.NoError(t, err)
			g, err := e.Backward(context.Background(), p, s, dO, nil)
			require.NoError(t, err)
			o, l, dq := attntest.Values(t, s.O), attntest.Values(t, s.L), attntest.Values(t, g.DQ)
			count := 0
			for b := 0; b < B; b++ {
				for h := 0; h < H; h++ {
					for i := 0; i < N; i++ {
						row := (b*H+h)*N + i
						if !hidden(p, b, h, i) {
							assert.False(t, math.IsInf(l[row], 0), "L[%d] finite for a row that sees a key", row)
							continue
						}
						count++
						assert.True(t, math.IsInf(l[row], -1), "L[%d] = %v, want −Inf", row, l[row])
						for c := 0; c < D; c++ {
							assert.Zero(t, o[row*D+c], "O[%d, %d]", row, c)
							assert.Zero(t, dq[row*D+c], "dQ[%d, %d]", row, c)
						}
					}
				}
			}
			assert.Positive(t, count, "the case hides some rows")
			r := compare(t, e, p, dO)
			assertWithin(t, r, tolOut32, tolGrad32, c.name)
		})
	}
}
