package optim

import (
	"math"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGradNormAndClip(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64} {
		a := param(t, dt, "a", []float64{1, 2}, []float64{3, 0})
		b := param(t, dt, "b", []float64{1}, []float64{4})
		ps := []Param{a, b}
		n, err := GradNorm(ps)
		require.NoError(t, err)
		assert.InDelta(t, 5, n, 1e-12)

		n, err = ClipGradNorm(ps, 10) // under the limit: unchanged
		require.NoError(t, err)
		assert.InDelta(t, 5, n, 1e-12)
		assert.Equal(t, []float64{3, 0}, values(t, a.Grad))

		n, err = ClipGradNorm(ps, 1) // scaled by 1/5
		require.NoError(t, err)
		assert.InDelta(t, 5, n, 1e-12, "the norm before clipping")
		assert.InDeltaSlice(t, []float64{0.6, 0}, values(t, a.Grad), 1e-7)
		assert.InDeltaSlice(t, []float64{0.8}, values(t, b.Grad), 1e-7)
		n, err = GradNorm(ps)
		require.NoError(t, err)
		assert.InDelta(t, 1, n, 1e-6)
	}
	// Large finite gradients do not overflow the sum of squares.
	big := param(t, tensor.Float64, "big", []float64{0, 0}, []float64{3e200, 4e200})
	n, err := GradNorm([]Param{big})
	require.NoError(t, err)
	assert.InEpsilon(t, 5e200, n, 1e-12)

	_, err = ClipGradNorm([]Param{big}, 0)
	requireArg(t, err, "maxNorm")
	_, err = ClipGradNorm([]Param{big}, math.NaN())
	requireArg(t, err, "maxNorm")
}

// A NaN or ±Inf gradient: the norm says so, ClipGradNorm and CheckFinite name the element
// and change nothing, and an AdamW with RefuseNonFinite refuses the step.
func TestNonFiniteGradients(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		a := param(t, tensor.Float32, "a", []float64{1, 2, 3}, []float64{0.5, 0.5, 0.5})
		b := param(t, tensor.Float32, "b", []float64{4, 5}, []float64{1, bad})
		ps := []Param{a, b}
		n, err := GradNorm(ps)
		require.NoError(t, err)
		if math.IsNaN(bad) {
			assert.True(t, math.IsNaN(n))
		} else {
			assert.True(t, math.IsInf(n, 1))
		}
		n2, err := ClipGradNorm(ps, 1)
		assert.ErrorIs(t, err, ErrNonFinite)
		var nf *NonFiniteError
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, "b", nf.Param)
		assert.Equal(t, 1, nf.Index)
		assert.Equal(t, math.IsNaN(n), math.IsNaN(n2))
		assert.Equal(t, []float64{0.5, 0.5, 0.5}, values(t, a.Grad), "nothing clipped")
		assert.ErrorIs(t, CheckFinite(ps), ErrNonFinite)

		hp := DefaultAdamW(0.1)
		hp.RefuseNonFinite = true
		opt, err := New(hp)
		require.NoError(t, err)
		err = opt.Step(ps)
		require.ErrorAs(t, err, &nf)
		assert.Equal(t, []float64{1, 2, 3}, values(t, a.Value), "no parameter moved")
		assert.Equal(t, []float64{4, 5}, values(t, b.Value))
		assert.Zero(t, opt.Steps(a.Value), "no state was created")

		plain, err := New(DefaultAdamW(0.1)) // PyTorch's behaviour: applied
		require.NoError(t, err)
		require.NoError(t, plain.Step(ps))
		assert.True(t, math.IsNaN(values(t, b.Value)[1]))
	}
	ok := param(t, tensor.Float64, "ok", []float64{1}, []float64{2})
	assert.NoError(t, CheckFinite([]Param{ok}))
}

// State and SetState carry an optimizer over a checkpoint: a fresh AdamW given the state
// takes the same next step, bit for bit.
func TestStateRoundTrip(t *testing.T) {
	a := param(t, tensor.Float32, "a", []float64{1, -2, 3}, []float64{0.1, 0.2, -0.3})
	b := param(t, tensor.Float32, "b", []float64{1, -2, 3}, []float64{0.1, 0.2, -0.3})
	o1, err := New(DefaultAdamW(0.01))
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, o1.Step([]Param{a}))
	}
	for range 3 {
		require.NoError(t, o1.Step([]Param{b}))
	}
	st, ok := o1.State(b.Value)
	require.True(t, ok)
	assert.Equal(t, 3, st.Step)
	o2, err := New(DefaultAdamW(0.01))
	require.NoError(t, err)
	require.NoError(t, o2.SetState(b.Value, st))
	st.M[0] = 99 // SetState copied
	setGrad(t, a, []float64{0.4, -0.1, 0.2})
	setGrad(t, b, []float64{0.4, -0.1, 0.2})
	require.NoError(t, o1.Step([]Param{a}))
	require.NoError(t, o2.Step([]Param{b}))
	assert.Equal(t, values(t, a.Value), values(t, b.Value))

	_, ok = o2.State(param(t, tensor.Float32, "c", []float64{1}, []float64{1}).Value)
	assert.False(t, ok)
	requireArg(t, o2.SetState(b.Value, State{Step: 0, M: make([]float64, 3), V: make([]float64, 3)}), "State.Step")
	requireArg(t, o2.SetState(b.Value, State{Step: 1, M: make([]float64, 2), V: make([]float64, 3)}), "State.M")
	requireArg(t, o2.SetState(b.Value, State{Step: 1, M: make([]float64, 3), V: []float64{0, -1, 0}}), "State.V")
	requireArg(t, o2.SetState(b.Value, State{Step: 1, M: []float64{0, math.NaN(), 0}, V: make([]float64, 3)}), "State.M")
	requireArg(t, o2.SetState(nil, State{}), "value")
}

func requireArg(t *testing.T, err error, arg string) {
	t.Helper()
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae, "want an *spec.ArgError for %s, got %v", arg, err)
	assert.Equal(t, arg, ae.Arg)
}
