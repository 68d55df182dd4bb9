package fallback_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// With the default step (1e-5) and floor (1e-3), central differences of the float64
// reference agree with its analytic gradients to 2e-7 on this table; 1e-6 leaves a 5×
// margin and is still far below any error of the math (a dropped factor, a missing
// tanh' term, a wrong head) — those show up at 1e-3 or more.
const gradTol = 1e-6

func TestNumericalGradient(t *testing.T) {
	// f(x) = Σ_i sin(x_i)·x_{i+1} + x_0³: ∂f/∂x_i = cos(x_i)·x_{i+1} + sin(x_{i−1}) (+ 3x_0²).
	x := []float64{0.3, -1.2, 2.5, 0.7, -0.1}
	orig := append([]float64(nil), x...)
	f := func() float64 {
		s := x[0] * x[0] * x[0]
		for i := 0; i+1 < len(x); i++ {
			s += math.Sin(x[i]) * x[i+1]
		}
		return s
	}
	want := make([]float64, len(x))
	for i := range x {
		if i+1 < len(x) {
			want[i] += math.Cos(x[i]) * x[i+1]
		}
		if i > 0 {
			want[i] += math.Sin(x[i-1])
		}
	}
	want[0] += 3 * x[0] * x[0]
	got := fallback.NumericalGradient(f, x, 1e-5)
	assert.InDeltaSlice(t, want, got, 1e-9)
	assert.Equal(t, orig, x, "x must get its exact values back")
}

func TestCompareGradients(t *testing.T) {
	cases := []struct {
		name              string
		analytic, numeric []float64
		floor             float64
		rel, abs          float64
		worst             int
	}{
		{"equal", []float64{1, -2}, []float64{1, -2}, 1e-3, 0, 0, 0},
		{"relative above the floor", []float64{1, 2}, []float64{1, 2.2}, 1e-3, 0.2 / 2.2, 0.2, 1},
		{"floor below it", []float64{1e-6, 0}, []float64{3e-6, 0}, 1e-3, 2e-3, 2e-6, 0},
		{"NaN is infinitely wrong", []float64{0, math.NaN()}, []float64{0, 1}, 1e-3, math.Inf(1), math.Inf(1), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := fallback.CompareGradients("dX", c.analytic, c.numeric, c.floor)
			assert.InDelta(t, c.rel, e.MaxRel, 1e-12)
			assert.InDelta(t, c.abs, e.MaxAbs, 1e-12)
			assert.Equal(t, c.worst, e.Worst)
			assert.Equal(t, "dX", e.Name)
		})
	}
}

// The reference's gradients on every option, held against central differences of its own
// forward pass.
func TestReferenceGradientsOnEveryOption(t *testing.T) {
	for k, pc := range optionCases() {
		t.Run(pc.Name, func(t *testing.T) {
			p, _ := buildProblem(t, pc, tensor.Float64, uint64(500+k))
			before := takeInputState(p)
			r, err := fallback.CheckAttentionGradients(p, int64(k), fallback.GradCheck{})
			require.NoError(t, err)
			assert.LessOrEqual(t, r.MaxRel(), gradTol, "%v", r)
			assert.Equal(t, before, takeInputState(p), "the check must not move the caller's inputs")
		})
	}
}

// wrongExecutor is the reference with one gradient made slightly wrong, to show that the
// checker notices.
type wrongExecutor struct {
	*fallback.Executor
	which string
}

func (w wrongExecutor) Backward(_ context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, _ *spec.Grads) (*spec.Grads, error) {
	g, err := w.Executor.Backward(context.Background(), p, s, dO, nil)
	if err != nil {
		return nil, err
	}
	x := map[string]*tensor.Tensor{"dQ": g.DQ, "dK": g.DK, "dV": g.DV}[w.which]
	v, err := x.Float64s()
	if err != nil {
		return nil, err
	}
	v[len(v)/2] += 1e-4 // far below what any test of values would see at a glance
	return g, nil
}

func TestGradientCheckCatchesWrongGradients(t *testing.T) {
	pc := optionCases()[len(optionCases())-1] // everything together
	for _, which := range []string{"dQ", "dK", "dV"} {
		t.Run(which, func(t *testing.T) {
			p, _ := buildProblem(t, pc, tensor.Float64, 1)
			r, err := fallback.CheckAttentionGradients(p, 3, fallback.GradCheck{Executor: wrongExecutor{fallback.NewExecutor(), which}})
			require.NoError(t, err)
			got := map[string]fallback.GradError{"dQ": r.DQ, "dK": r.DK, "dV": r.DV}
			assert.Greater(t, got[which].MaxRel, 10*gradTol, "%v", r)
			for name, e := range got {
				if name != which {
					assert.LessOrEqual(t, e.MaxRel, gradTol, "%v", e)
				}
			}
		})
	}
}

// A float32 problem can be checked too. The analytic side is then as exact as float32
// allows: backward recomputes P = exp(s − L) from the float32 L, so P is off by about
// 2^-24·|L| relative. A row with a single visible key, whose dQ is exactly 0, then gets
// dS = P·dP·(1 − P) ≈ 3e-8 instead of 0: 3e-5 against the 1e-3 floor. Hence 1e-4 here.
func TestGradientCheckOfFloat32Problem(t *testing.T) {
	pc := optionCases()[len(optionCases())-1]
	p, _ := buildProblem(t, pc, tensor.Float32, 2)
	r, err := fallback.CheckAttentionGradients(p, 4, fallback.GradCheck{Executor: fallback.NewExecutor()})
	require.NoError(t, err)
	assert.LessOrEqual(t, r.MaxRel(), 1e-4, "%v", r)
	assert.LessOrEqual(t, max(r.DQ.MaxAbs, r.DK.MaxAbs, r.DV.MaxAbs), 1e-6, "%v", r)
}

func TestGradientCheckRejectsBadProblems(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	p := &spec.Problem{Q: randTensor(t, r, tensor.Float64, 1, 1, 2, 2), K: randTensor(t, r, tensor.Float64, 1, 1, 2, 3), V: randTensor(t, r, tensor.Float64, 1, 1, 2, 3)}
	_, err := fallback.CheckAttentionGradients(p, 1, fallback.GradCheck{})
	assert.ErrorIs(t, err, spec.ErrInvalid)
}
