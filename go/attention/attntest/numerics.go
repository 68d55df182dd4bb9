package attntest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Numerics holds the numeric guarantees of the contract (package spec, "Numerics every
// executor keeps") as tests of one executor in one dtype. Run them from the executor's
// own suite.
type Numerics struct {
	Executor Attention
	DType    tensor.DType // the inputs' dtype; 0 means float32
	// Tol is the largest relative L2 difference from the reference allowed for O and each
	// gradient (2e-4 suits float32 executors that accumulate in float32).
	Tol float64
}

// Run runs every guarantee as a subtest: LargeLogits, NaNStaysInItsHead, FullyMaskedRows.
func (c Numerics) Run(t *testing.T) {
	if c.DType == 0 {
		c.DType = tensor.Float32
	}
	t.Run("LargeLogits", c.LargeLogits)
	t.Run("NaNStaysInItsHead", c.NaNStaysInItsHead)
	t.Run("FullyMaskedRows", c.FullyMaskedRows)
}

// Attention is what Numerics runs: any spec.Executor, or the engine.
type Attention interface {
	Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error)
	Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error)
}

// result is one forward and backward of an executor.
type result struct {
	o, l, dq, dk, dv []float64
}

func (c Numerics) run(t *testing.T, p *spec.Problem, dO *tensor.Tensor) result {
	t.Helper()
	ctx := context.Background()
	if x, ok := c.Executor.(spec.Executor); ok {
		require.NoError(t, x.Supports(p), "%s must support the problem", x.Name())
	}
	s, err := c.Executor.Forward(ctx, p, nil)
	require.NoError(t, err)
	g, err := c.Executor.Backward(ctx, p, s, dO, nil)
	require.NoError(t, err)
	return result{Values(t, s.O), Values(t, s.L), Values(t, g.DQ), Values(t, g.DK), Values(t, g.DV)}
}

// runPolluted runs forward, then backward unless the executor refuses the non-finite L
// of the polluted rows with a typed *spec.ArgError naming Saved.L (inputs outside the
// contract may be refused); it reports whether backward ran.
func (c Numerics) runPolluted(t *testing.T, p *spec.Problem, dO *tensor.Tensor) (result, bool) {
	t.Helper()
	ctx := context.Background()
	s, err := c.Executor.Forward(ctx, p, nil)
	require.NoError(t, err)
	r := result{o: Values(t, s.O), l: Values(t, s.L)}
	g, err := c.Executor.Backward(ctx, p, s, dO, nil)
	if err != nil {
		var ae *spec.ArgError
		require.ErrorAs(t, err, &ae, "a backward that refuses non-finite inputs says so with a typed error")
		assert.Equal(t, "Saved.L", ae.Arg)
		return r, false
	}
	r.dq, r.dk, r.dv = Values(t, g.DQ), Values(t, g.DK), Values(t, g.DV)
	return r, true
}

func reference(t *testing.T, p *spec.Problem, dO *tensor.Tensor) result {
	t.Helper()
	s, err := fallback.Forward(p)
	require.NoError(t, err)
	g, err := fallback.Backward(p, s, dO)
	require.NoError(t, err)
	return result{Values(t, s.O), Values(t, s.L), Values(t, g.DQ), Values(t, g.DK), Values(t, g.DV)}
}

// LargeLogits: logits up to ±1e4 after scaling (by the scale, and by an additive bias of
// ±1e4 on a random half of the keys) never overflow: every output is finite and within Tol
// of the reference, L within 1e-6 relative.
func (c Numerics) LargeLogits(t *testing.T) {
	sz := Sizes{B: 1, H: 2, Hkv: 1, N: 37, M: 45, D: 16}
	for _, mode := range []string{"scale", "bias", "scale and bias, causal"} {
		r := rand.New(rand.NewPCG(41, uint64(len(mode))))
		p := &spec.Problem{
			Q: Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D),
			K: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
			V: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
		}
		dO := Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D)
		if mode != "bias" {
			// The largest |q·k| of these inputs times the scale is 1e4.
			q, k := Values(t, p.Q), Values(t, p.K)
			most := 0.0
			for i := 0; i < sz.B*sz.H*sz.N; i++ {
				for j := 0; j < sz.M; j++ {
					dot := 0.0
					for d := 0; d < sz.D; d++ {
						dot += q[i*sz.D+d] * k[j*sz.D+d]
					}
					most = max(most, math.Abs(dot))
				}
			}
			p.Scale = 1e4 / most
		}
		if mode != "scale" {
			m := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, sz.H, sz.N, sz.M}, Bias: make([]float32, sz.H*sz.N*sz.M)}
			for i := range m.Bias {
				if r.IntN(2) == 0 {
					m.Bias[i] = float32(1e4 * (2*r.Float64() - 1))
				}
			}
			p.Mask = m
		}
		if mode == "scale and bias, causal" {
			p.Causal = spec.CausalBottomRight
		}
		got, want := c.run(t, p, dO), reference(t, p, dO)
		for _, x := range []struct {
			name      string
			got, want []float64
		}{{"O", got.o, want.o}, {"L", got.l, want.l}, {"dQ", got.dq, want.dq}, {"dK", got.dk, want.dk}, {"dV", got.dv, want.dv}} {
			for i, v := range x.got {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					require.Failf(t, "not finite", "%s: %s element %d is %v", mode, x.name, i, v)
				}
			}
		}
		assert.Less(t, RelL2(want.o, got.o), c.Tol, "%s: O against the reference (relative L2)", mode)
		assert.Less(t, RelL2(want.l, got.l), 1e-6, "%s: L against the reference (relative L2)", mode)
		for _, g := range GradErrors(p, dO, [3][]float64{want.dq, want.dk, want.dv}, [3][]float64{got.dq, got.dk, got.dv}) {
			assert.True(t, g.OK(c.Tol), "%s: %v against the reference, tol %g", mode, g, c.Tol)
		}
	}
}

// GradError is the difference of one gradient from the reference.
type GradError struct {
	Name  string  // "dQ", "dK" or "dV"
	Diff  float64 // ‖got − want‖ (L2 over the tensor)
	Want  float64 // ‖want‖
	Floor float64 // the error no executor rounding logits to float32 can avoid (see GradErrors)
}

// OK reports whether the difference is within tol relative to ‖want‖, or within the floor.
func (g GradError) OK(tol float64) bool { return g.Diff <= max(tol*g.Want, g.Floor) }

func (g GradError) String() string {
	return fmt.Sprintf("%s: ‖got − want‖ = %.3g, ‖want‖ = %.3g (relative %.3g), floor %.3g", g.Name, g.Diff, g.Want, g.Diff/g.Want, g.Floor)
}

// GradErrors measures dQ, dK and dV (in that order in want and got) against the reference.
// Where rows are nearly one-hot the true dQ and dK are tiny because their terms cancel, and
// an executor that rounds the logits s to float32 cannot do better than the size of those
// terms (scale·‖dO‖·max‖v‖·max‖k‖ for dQ, max‖q‖ for dK, ‖dO‖ for dV, each times the
// dropout factor 1/(1−p)) times the rounding of
// the largest logit, max|s|·2^-24, plus the rounding unit of the inputs' dtype (which
// enters through the saved O): that product is the floor. For logits of unit size it is
// far below tol·‖want‖, and OK is a plain relative L2 bound.
func GradErrors(p *spec.Problem, dO *tensor.Tensor, want, got [3][]float64) []GradError {
	d := p.Dims()
	vals := func(x *tensor.Tensor) []float64 { v, _ := x.ToFloat64s(); return v }
	s := p.ScaleValue()
	ndO, mq, mk, mv := norm(vals(dO)), maxRow(vals(p.Q), d.D), maxRow(vals(p.K), d.D), maxRow(vals(p.V), d.D)
	maxLogit := s * mq * mk
	if p.Softcap > 0 {
		maxLogit = min(maxLogit, p.Softcap)
	}
	if m := p.Mask; m != nil && m.Kind == spec.MaskAdditive {
		mb := 0.0
		for _, b := range m.Bias {
			if !math.IsInf(float64(b), -1) {
				mb = max(mb, math.Abs(float64(b)))
			}
		}
		maxLogit += mb
	}
	eps := map[tensor.DType]float64{tensor.Float16: 0x1p-11, tensor.BFloat16: 0x1p-8, tensor.Float32: 0x1p-24, tensor.Float64: 0x1p-53}[p.Q.DType()]
	u := maxLogit*0x1p-24 + eps
	r := 1 / (1 - p.Dropout.P) // kept probabilities are scaled by it
	terms := [3]float64{r * s * ndO * mv * mk, r * s * ndO * mv * mq, r * ndO}
	out := make([]GradError, 3)
	for i, name := range []string{"dQ", "dK", "dV"} {
		diff := make([]float64, len(got[i]))
		for k := range diff {
			diff[k] = got[i][k] - want[i][k]
		}
		out[i] = GradError{Name: name, Diff: norm(diff), Want: norm(want[i]), Floor: terms[i] * u}
	}
	return out
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// maxRow is the largest L2 norm of a row of d elements.
func maxRow(v []float64, d int) float64 {
	m := 0.0
	for i := 0; i+d <= len(v); i += d {
		m = max(m, norm(v[i:i+d]))
	}
	return m
}

// NaNStaysInItsHead: a NaN in one query row and an Inf in one key leave every batch and
// head that reads neither untouched, bit for bit.
func (c Numerics) NaNStaysInItsHead(t *testing.T) {
	sz := Sizes{B: 2, H: 4, Hkv: 2, N: 9, M: 11, D: 8}
	group := sz.H / sz.Hkv
	for _, tc := range []struct {
		name       string
		pollute    func(p *spec.Problem) error
		qHead, kvH [2]int // the polluted (batch, query head) and (batch, kv head); -1: none
	}{
		{"NaN in Q[1, 2, 4, 3]", func(p *spec.Problem) error { return p.Q.Set(math.NaN(), 1, 2, 4, 3) }, [2]int{1, 2}, [2]int{-1, -1}},
		{"+Inf in K[0, 1, 7, 0]", func(p *spec.Problem) error { return p.K.Set(math.Inf(1), 0, 1, 7, 0) }, [2]int{-1, -1}, [2]int{0, 1}},
		{"NaN in V[1, 0, 2, 5]", func(p *spec.Problem) error { return p.V.Set(math.NaN(), 1, 0, 2, 5) }, [2]int{-1, -1}, [2]int{1, 0}},
	} {
		mk := func() (*spec.Problem, *tensor.Tensor) {
			r := rand.New(rand.NewPCG(43, 2))
			p := &spec.Problem{
				Q: Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D),
				K: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
				V: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
			}
			p.Causal = spec.CausalTopLeft
			return p, Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D)
		}
		clean, dO := mk()
		dirty, _ := mk()
		require.NoError(t, tc.pollute(dirty))
		a := c.run(t, clean, dO)
		b, backward := c.runPolluted(t, dirty, dO)
		// A query head is touched if it is the polluted one, or reads the polluted kv head;
		// a kv head is touched if it is the polluted one, or is read by the polluted head.
		qTouched := func(bb, h int) bool {
			return (bb == tc.qHead[0] && h == tc.qHead[1]) || (bb == tc.kvH[0] && h/group == tc.kvH[1])
		}
		kvTouched := func(bb, kv int) bool {
			return (bb == tc.kvH[0] && kv == tc.kvH[1]) || (bb == tc.qHead[0] && kv == tc.qHead[1]/group)
		}
		same := func(name string, x, y []float64, heads, rows int, touched func(b, h int) bool) {
			per := len(x) / (sz.B * heads)
			for bb := 0; bb < sz.B; bb++ {
				for h := 0; h < heads; h++ {
					if touched(bb, h) {
						continue
					}
					lo := (bb*heads + h) * per
					for i := lo; i < lo+per; i++ {
						if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
							assert.Failf(t, "pollution spread", "%s: %s of batch %d head %d element %d is %v, %v without the pollution", tc.name, name, bb, h, i-lo, y[i], x[i])
							return
						}
					}
				}
			}
		}
		same("O", a.o, b.o, sz.H, sz.N, qTouched)
		same("L", a.l, b.l, sz.H, sz.N, qTouched)
		if !backward {
			continue
		}
		same("dQ", a.dq, b.dq, sz.H, sz.N, qTouched)
		same("dK", a.dk, b.dk, sz.Hkv, sz.M, kvTouched)
		same("dV", a.dv, b.dv, sz.Hkv, sz.M, kvTouched)
	}
}

// FullyMaskedRows: rows that see no key — by a bool mask, an all −Inf bias, a zero key
// length, or bottom-right causal with N > M — give O = 0 and dQ = 0 exactly, L = −Inf, and
// nothing anywhere is NaN.
func (c Numerics) FullyMaskedRows(t *testing.T) {
	sz := Sizes{B: 2, H: 2, Hkv: 1, N: 7, M: 5, D: 6}
	for _, tc := range []struct {
		name   string
		opts   func(r *rand.Rand) spec.Options
		hidden func(b, h, i int) bool
	}{
		{"bool mask rows 1 and 3", func(r *rand.Rand) spec.Options {
			return spec.Options{Mask: BoolMask(r, sz, 1, 1, 1, 1, 3)}
		}, func(b, h, i int) bool { return i == 1 || i == 3 }},
		{"additive −Inf row 0", func(r *rand.Rand) spec.Options {
			return spec.Options{Mask: BiasMask(r, sz, sz.B, sz.H, 0, 0)}
		}, func(b, h, i int) bool { return i == 0 }},
		{"zero key length in batch 1", func(*rand.Rand) spec.Options {
			return spec.Options{SeqLensK: []int{5, 0}}
		}, func(b, h, i int) bool { return b == 1 }},
		{"query rows past the length", func(*rand.Rand) spec.Options {
			return spec.Options{SeqLensQ: []int{4, 7}}
		}, func(b, h, i int) bool { return b == 0 && i >= 4 }},
		{"bottom-right causal, N > M", func(*rand.Rand) spec.Options {
			return spec.Options{Causal: spec.CausalBottomRight}
		}, func(b, h, i int) bool { return i < sz.N-sz.M }},
	} {
		r := rand.New(rand.NewPCG(47, 3))
		p := &spec.Problem{
			Q: Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D),
			K: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
			V: Tensor(t, r, c.DType, sz.B, sz.Hkv, sz.M, sz.D),
		}
		p.Options = tc.opts(r)
		dO := Tensor(t, r, c.DType, sz.B, sz.H, sz.N, sz.D)
		got := c.run(t, p, dO)
		for _, x := range [][]float64{got.o, got.l, got.dq, got.dk, got.dv} {
			for _, v := range x {
				require.False(t, math.IsNaN(v), "%s: NaN in the outputs", tc.name)
			}
		}
		rows := 0
		for b := 0; b < sz.B; b++ {
			for h := 0; h < sz.H; h++ {
				for i := 0; i < sz.N; i++ {
					if !tc.hidden(b, h, i) {
						continue
					}
					rows++
					r := (b*sz.H+h)*sz.N + i
					assert.True(t, math.IsInf(got.l[r], -1), "%s: L[%d %d %d] = %v, want −Inf", tc.name, b, h, i, got.l[r])
					for d := 0; d < sz.D; d++ {
						assert.Zero(t, got.o[r*sz.D+d], "%s: O[%d %d %d %d]", tc.name, b, h, i, d)
						assert.Zero(t, got.dq[r*sz.D+d], "%s: dQ[%d %d %d %d]", tc.name, b, h, i, d)
					}
				}
			}
		}
		require.NotZero(t, rows, tc.name)
	}
}
