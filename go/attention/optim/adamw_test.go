package optim

import (
	"errors"
	"math"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func param(t *testing.T, dt tensor.DType, name string, val, grad []float64) Param {
	t.Helper()
	v, err := tensor.FromFloat64s(dt, val, len(val))
	require.NoError(t, err)
	g, err := tensor.FromFloat64s(dt, grad, len(grad))
	require.NoError(t, err)
	return Param{Name: name, Value: v, Grad: g}
}

func values(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

func setGrad(t *testing.T, p Param, g []float64) {
	t.Helper()
	for i, x := range g {
		require.NoError(t, p.Grad.Set(x, i))
	}
}

func TestNewRejectsBadHyperparameters(t *testing.T) {
	ok := DefaultAdamW(1e-3)
	tests := []struct {
		name string
		edit func(*AdamWParams)
		arg  string
	}{
		{"zero lr", func(p *AdamWParams) { p.LR = 0 }, "AdamWParams.LR"},
		{"negative lr", func(p *AdamWParams) { p.LR = -1 }, "AdamWParams.LR"},
		{"nan lr", func(p *AdamWParams) { p.LR = math.NaN() }, "AdamWParams.LR"},
		{"inf lr", func(p *AdamWParams) { p.LR = math.Inf(1) }, "AdamWParams.LR"},
		{"beta1 one", func(p *AdamWParams) { p.Beta1 = 1 }, "AdamWParams.Beta1"},
		{"beta1 negative", func(p *AdamWParams) { p.Beta1 = -0.1 }, "AdamWParams.Beta1"},
		{"beta2 one", func(p *AdamWParams) { p.Beta2 = 1 }, "AdamWParams.Beta2"},
		{"beta2 nan", func(p *AdamWParams) { p.Beta2 = math.NaN() }, "AdamWParams.Beta2"},
		{"eps zero", func(p *AdamWParams) { p.Eps = 0 }, "AdamWParams.Eps"},
		{"weight decay negative", func(p *AdamWParams) { p.WeightDecay = -1e-3 }, "AdamWParams.WeightDecay"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			a, err := New(p)
			assert.Nil(t, a)
			var ae *spec.ArgError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.arg, ae.Arg)
			assert.ErrorIs(t, err, spec.ErrInvalid)
		})
	}
	_, err := New(AdamWParams{LR: 1, Beta1: 0, Beta2: 0, Eps: 1e-12}) // edges that are allowed
	assert.NoError(t, err)
}

// Two steps of AdamW worked by hand, written out as arithmetic so a reader can follow
// them: lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
func TestStepMatchesHandComputation(t *testing.T) {
	const lr, eps = 0.1, 1e-8
	// Step 1: θ = [1, -2], g = [0.5, -0.1].
	//   decay:   θ·(1 − 0.1·0.01) = [0.999, -1.998]
	//   m = 0.1·g = [0.05, -0.01];   m̂ = m / (1 − 0.9)   = [0.5, -0.1]
	//   v = 0.001·g² = [2.5e-4, 1e-5]; v̂ = v / (1 − 0.999) = [0.25, 0.01]
	step1 := []float64{
		0.999 - lr*0.5/(math.Sqrt(0.25)+eps),
		-1.998 - lr*(-0.1)/(math.Sqrt(0.01)+eps),
	}
	// Step 2: g = [0.1, 0.3].
	//   m = 0.9·m + 0.1·g = [0.055, 0.021];  m̂ = m / (1 − 0.81)
	//   v = 0.999·v + 0.001·g² = [2.4975e-4 + 1e-5, 9.99e-6 + 9e-5]; v̂ = v / (1 − 0.998001)
	step2 := []float64{
		step1[0]*0.999 - lr*(0.055/0.19)/(math.Sqrt((2.4975e-4+1e-5)/0.001999)+eps),
		step1[1]*0.999 - lr*(0.021/0.19)/(math.Sqrt((9.99e-6+9e-5)/0.001999)+eps),
	}
	for _, tc := range []struct {
		dt  tensor.DType
		tol float64 // float32 storage rounds θ after every step: a few ulps of |θ| ≤ 2
	}{{tensor.Float64, 1e-12}, {tensor.Float32, 5e-7}} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			a, err := New(AdamWParams{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: eps, WeightDecay: 0.01})
			require.NoError(t, err)
			p := param(t, tc.dt, "w", []float64{1, -2}, []float64{0.5, -0.1})
			ps := []Param{p}
			require.NoError(t, a.Step(ps))
			assert.InDeltaSlice(t, step1, values(t, p.Value), tc.tol)
			assert.Equal(t, []float64{float64(float32(0.5)), float64(float32(-0.1))}, float32s(values(t, p.Grad)), "Step must not touch gradients")
			setGrad(t, p, []float64{0.1, 0.3})
			require.NoError(t, a.Step(ps))
			assert.InDeltaSlice(t, step2, values(t, p.Value), tc.tol)
			assert.Equal(t, 2, a.Steps(p.Value))
		})
	}
}

// float32s rounds to float32 so float32 and float64 tensors compare alike.
func float32s(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(float32(v))
	}
	return out
}

// With a zero gradient the moments stay zero, so the only change is the decay
// θ ← θ·(1 − lr·λ); NoDecay parameters do not move at all.
func TestWeightDecayIsDecoupled(t *testing.T) {
	a, err := New(AdamWParams{LR: 0.5, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.2})
	require.NoError(t, err)
	w := param(t, tensor.Float64, "w", []float64{3, -4}, []float64{0, 0})
	b := param(t, tensor.Float64, "b", []float64{3, -4}, []float64{0, 0})
	b.NoDecay = true
	require.NoError(t, a.Step([]Param{w, b}))
	assert.Equal(t, []float64{3 * 0.9, -4 * 0.9}, values(t, w.Value))
	assert.Equal(t, []float64{3, -4}, values(t, b.Value))
}

// A constant gradient g gives m̂ = g and v̂ = g² at every step, so each step moves θ by
// −lr·g/(|g|+ε) ≈ −lr·sign(g) — Adam's scale invariance.
func TestConstantGradientMovesByLR(t *testing.T) {
	a, err := New(AdamWParams{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-12})
	require.NoError(t, err)
	p := param(t, tensor.Float64, "w", []float64{0, 0, 0}, []float64{1e-3, -7, 250})
	for range 10 {
		require.NoError(t, a.Step([]Param{p}))
	}
	assert.InDeltaSlice(t, []float64{-0.1, 0.1, -0.1}, values(t, p.Value), 1e-8)
}

func TestStateIsPerTensor(t *testing.T) {
	a, err := New(DefaultAdamW(0.1))
	require.NoError(t, err)
	p := param(t, tensor.Float64, "p", []float64{1}, []float64{1})
	q := param(t, tensor.Float64, "q", []float64{1}, []float64{1})
	require.NoError(t, a.Step([]Param{p}))
	require.NoError(t, a.Step([]Param{p, q}))
	assert.Equal(t, 2, a.Steps(p.Value))
	assert.Equal(t, 1, a.Steps(q.Value))
	// q's first step equals p's first step: fresh moments and bias correction at t = 1.
	fresh := param(t, tensor.Float64, "f", []float64{1}, []float64{1})
	b, err := New(DefaultAdamW(0.1))
	require.NoError(t, err)
	require.NoError(t, b.Step([]Param{fresh}))
	assert.Equal(t, values(t, fresh.Value), values(t, q.Value))
}

func TestStepRejectsBadParamsWithoutChangingAny(t *testing.T) {
	good := func() Param { return param(t, tensor.Float32, "good", []float64{1, 2}, []float64{1, 1}) }
	f16, err := tensor.New(tensor.Float16, 2)
	require.NoError(t, err)
	wide, err := tensor.New(tensor.Float32, 2, 2)
	require.NoError(t, err)
	strided, err := wide.Transpose(0, 1)
	require.NoError(t, err)
	other, err := tensor.New(tensor.Float32, 3)
	require.NoError(t, err)
	tests := []struct {
		name string
		bad  func(first, fresh Param) Param
		arg  string
	}{
		{"nil value", func(_, f Param) Param { return Param{Name: "x", Grad: f.Grad} }, "params[1](x).Value"},
		{"nil grad", func(_, f Param) Param { return Param{Name: "x", Value: f.Value} }, "params[1](x).Grad"},
		{"float16", func(_, _ Param) Param { return Param{Name: "x", Value: f16, Grad: f16} }, "params[1](x).Value"},
		{"not contiguous", func(_, _ Param) Param { return Param{Name: "x", Value: strided, Grad: strided} }, "params[1](x).Value"},
		{"grad shape", func(_, f Param) Param { return Param{Name: "x", Value: f.Value, Grad: other} }, "params[1](x).Grad"},
		{"grad aliases value", func(_, f Param) Param { return Param{Name: "x", Value: f.Value, Grad: f.Value} }, "params[1](x).Grad"},
		{"listed twice", func(first, _ Param) Param { return first }, "params[1](good).Value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(DefaultAdamW(0.1))
			require.NoError(t, err)
			g := good()
			err = a.Step([]Param{g, tc.bad(g, good())})
			var ae *spec.ArgError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.arg, ae.Arg)
			assert.Equal(t, []float64{1, 2}, values(t, g.Value), "no parameter may change when Step fails")
			assert.Equal(t, 0, a.Steps(g.Value))
		})
	}
}

func TestZeroGrad(t *testing.T) {
	p := param(t, tensor.Float32, "a", []float64{1, 2}, []float64{3, 4})
	q := param(t, tensor.Float64, "b", []float64{5}, []float64{6})
	n, err := GradNorm([]Param{p, q})
	require.NoError(t, err)
	assert.InDelta(t, math.Sqrt(9+16+36), n, 1e-12)
	require.NoError(t, ZeroGrad([]Param{p, q}))
	assert.Equal(t, []float64{0, 0}, values(t, p.Grad))
	assert.Equal(t, []float64{0}, values(t, q.Grad))
	assert.Equal(t, []float64{1, 2}, values(t, p.Value))
	err = ZeroGrad([]Param{p, {Name: "nil"}})
	assert.True(t, errors.Is(err, spec.ErrInvalid))
}

func TestSetLR(t *testing.T) {
	a, err := New(DefaultAdamW(0.1))
	require.NoError(t, err)
	require.NoError(t, a.SetLR(0.5))
	assert.Equal(t, 0.5, a.Params().LR)
	assert.ErrorIs(t, a.SetLR(0), spec.ErrInvalid)
	assert.Equal(t, 0.5, a.Params().LR)
}
