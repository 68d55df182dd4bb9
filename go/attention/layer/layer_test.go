package layer

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ref() Attention { return fallback.NewExecutor() }

func requireArgErr(t *testing.T, err error, arg string) {
	t.Helper()
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae, "want an *spec.ArgError for %s, got %v", arg, err)
	assert.Equal(t, arg, ae.Arg)
	assert.ErrorIs(t, err, spec.ErrInvalid)
}

func TestNewRejectsBadParams(t *testing.T) {
	ok := Params{Dim: 8, Heads: 4, KVHeads: 2}
	tests := []struct {
		name string
		edit func(*Params)
		arg  string
	}{
		{"zero dim", func(p *Params) { p.Dim = 0 }, "Params.Dim"},
		{"zero heads", func(p *Params) { p.Heads = 0 }, "Params.Heads"},
		{"dim not a multiple of heads", func(p *Params) { p.Dim = 10 }, "Params.Dim"},
		{"negative kv heads", func(p *Params) { p.KVHeads = -1 }, "Params.KVHeads"},
		{"kv heads do not divide heads", func(p *Params) { p.KVHeads = 3 }, "Params.KVHeads"},
		{"kv heads above heads", func(p *Params) { p.KVHeads = 8 }, "Params.KVHeads"},
		{"unknown causal", func(p *Params) { p.Causal = 7 }, "Params.Causal"},
		{"dropout one", func(p *Params) { p.Dropout = 1 }, "Params.Dropout"},
		{"dropout negative", func(p *Params) { p.Dropout = -0.1 }, "Params.Dropout"},
		{"float16", func(p *Params) { p.DType = tensor.Float16 }, "Params.DType"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			m, err := New(p, ref())
			assert.Nil(t, m)
			requireArgErr(t, err, tc.arg)
		})
	}
	_, err := New(ok, nil)
	requireArgErr(t, err, "attn")
}

func TestParametersAndDefaults(t *testing.T) {
	m, err := New(Params{Dim: 12, Heads: 6, KVHeads: 2, Bias: true, Seed: 1}, ref())
	require.NoError(t, err)
	assert.Equal(t, 2, m.HeadDim())
	assert.Equal(t, tensor.Float32, m.Params().DType)
	assert.True(t, m.Training())
	type want struct {
		name    string
		shape   []int
		noDecay bool
	}
	var got []want
	for _, p := range m.Parameters() {
		got = append(got, want{p.Name, p.Value.Shape(), p.NoDecay})
		assert.Equal(t, p.Value.Shape(), p.Grad.Shape())
		assert.Equal(t, make([]float64, p.Grad.Len()), attntest.Values(t, p.Grad), "gradients start at zero")
	}
	assert.Equal(t, []want{
		{"Wq", []int{12, 12}, false}, {"bq", []int{12}, true},
		{"Wk", []int{12, 4}, false}, {"bk", []int{4}, true},
		{"Wv", []int{12, 4}, false}, {"bv", []int{4}, true},
		{"Wo", []int{12, 12}, false}, {"bo", []int{12}, true},
	}, got)

	m2, err := New(Params{Dim: 12, Heads: 6}, ref())
	require.NoError(t, err)
	assert.Equal(t, 6, m2.Params().KVHeads, "KVHeads 0 means Heads")
	assert.Len(t, m2.Parameters(), 4, "no biases without Bias")
	// The seed decides the weights: same seed, same weights; weights bounded by 1/sqrt(fan_in).
	m3, err := New(Params{Dim: 12, Heads: 6}, ref())
	require.NoError(t, err)
	w2, w3 := attntest.Values(t, m2.Parameters()[0].Value), attntest.Values(t, m3.Parameters()[0].Value)
	assert.Equal(t, w2, w3)
	for _, w := range w2 {
		assert.LessOrEqual(t, w*w, 1.0/12)
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	m, err := New(Params{Dim: 8, Heads: 2}, ref())
	require.NoError(t, err)
	mk := func(dt tensor.DType, shape ...int) *tensor.Tensor {
		x, err := tensor.New(dt, shape...)
		require.NoError(t, err)
		return x
	}
	good := mk(tensor.Float32, 2, 3, 8)
	tests := []struct {
		name    string
		xq, xkv *tensor.Tensor
		cross   bool
		arg     string
	}{
		{"nil", nil, nil, false, "x"},
		{"rank 2", mk(tensor.Float32, 3, 8), nil, false, "x"},
		{"rank 4", mk(tensor.Float32, 1, 2, 3, 8), nil, false, "x"},
		{"wrong width", mk(tensor.Float32, 2, 3, 6), nil, false, "x"},
		{"empty sequence", mk(tensor.Float32, 2, 0, 8), nil, false, "x"},
		{"float64 into float32 layer", mk(tensor.Float64, 2, 3, 8), nil, false, "x"},
		{"cross nil xq", nil, good, true, "xq"},
		{"cross nil xkv", good, nil, true, "xkv"},
		{"cross wrong width", good, mk(tensor.Float32, 2, 5, 4), true, "xkv"},
		{"cross batch mismatch", good, mk(tensor.Float32, 3, 5, 8), true, "xkv"},
		{"cross dtype", good, mk(tensor.BFloat16, 2, 5, 8), true, "xkv"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := m.DropoutOffset()
			var y *tensor.Tensor
			var s *Saved
			if tc.cross {
				y, s, err = m.ForwardCross(bg, tc.xq, tc.xkv)
			} else {
				y, s, err = m.Forward(bg, tc.xq)
			}
			assert.Nil(t, y)
			assert.Nil(t, s)
			requireArgErr(t, err, tc.arg)
			assert.Equal(t, off, m.DropoutOffset(), "a rejected call does not advance the dropout offset")
		})
	}
}

func TestBackwardRejectsBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	m, err := New(Params{Dim: 8, Heads: 2}, ref())
	require.NoError(t, err)
	other, err := New(Params{Dim: 8, Heads: 2}, ref())
	require.NoError(t, err)
	x := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 8)
	kv := attntest.Tensor(t, rng, tensor.Float32, 2, 4, 8)
	_, self, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, cross, err := m.ForwardCross(bg, x, kv)
	require.NoError(t, err)
	_, foreign, err := other.Forward(bg, x)
	require.NoError(t, err)
	dy := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 8)
	wrongShape := attntest.Tensor(t, rng, tensor.Float32, 2, 4, 8)
	wrongType := attntest.Tensor(t, rng, tensor.Float64, 2, 3, 8)

	tests := []struct {
		name  string
		s     *Saved
		dy    *tensor.Tensor
		cross bool
		arg   string
	}{
		{"nil saved", nil, dy, false, "saved"},
		{"another layer's saved", foreign, dy, false, "saved"},
		{"cross saved into Backward", cross, dy, false, "saved"},
		{"self saved into BackwardCross", self, dy, true, "saved"},
		{"nil dy", self, nil, false, "dy"},
		{"dy shape", self, wrongShape, false, "dy"},
		{"dy dtype", self, wrongType, false, "dy"},
		{"cross dy shape", cross, wrongShape, true, "dy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cross {
				a, b, err := m.BackwardCross(bg, tc.s, tc.dy)
				assert.Nil(t, a)
				assert.Nil(t, b)
				requireArgErr(t, err, tc.arg)
			} else {
				a, err := m.Backward(bg, tc.s, tc.dy)
				assert.Nil(t, a)
				requireArgErr(t, err, tc.arg)
			}
			for _, p := range m.Parameters() {
				assert.Equal(t, make([]float64, p.Grad.Len()), attntest.Values(t, p.Grad), "a rejected backward adds no gradient")
			}
		})
	}
}

// Inputs are never modified, and a strided input gives the same results as its
// contiguous copy.
func TestInputsUnchangedAndStridesAccepted(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	p := Params{Dim: 8, Heads: 4, KVHeads: 2, Bias: true, Dropout: 0.2, Seed: 9}
	m, err := New(p, ref())
	require.NoError(t, err)
	// xt is (B, T, C) viewed through a transpose of a (T, B, C) tensor: not contiguous.
	base := attntest.Tensor(t, rng, tensor.Float32, 5, 2, 8)
	xt, err := base.Transpose(0, 1)
	require.NoError(t, err)
	require.False(t, xt.IsContiguous())
	xc, err := xt.Clone()
	require.NoError(t, err)
	dyBase := attntest.Tensor(t, rng, tensor.Float32, 5, 2, 8)
	dyt, err := dyBase.Transpose(0, 1)
	require.NoError(t, err)
	dyc, err := dyt.Clone()
	require.NoError(t, err)
	before, dyBefore := attntest.Values(t, base), attntest.Values(t, dyBase)

	m.SetDropoutOffset(0)
	yt, st, err := m.Forward(bg, xt)
	require.NoError(t, err)
	dxt, err := m.Backward(bg, st, dyt)
	require.NoError(t, err)
	gradT := attntest.Values(t, m.Parameters()[0].Grad)
	m.ZeroGrad()
	m.SetDropoutOffset(0)
	yc, sc, err := m.Forward(bg, xc)
	require.NoError(t, err)
	dxc, err := m.Backward(bg, sc, dyc)
	require.NoError(t, err)

	assert.Equal(t, before, attntest.Values(t, base), "x modified")
	assert.Equal(t, dyBefore, attntest.Values(t, dyBase), "dy modified")
	assert.Equal(t, attntest.Values(t, yc), attntest.Values(t, yt))
	assert.Equal(t, attntest.Values(t, dxc), attntest.Values(t, dxt))
	assert.Equal(t, attntest.Values(t, m.Parameters()[0].Grad), gradT)
}

func TestBackwardAccumulates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	m, err := New(Params{Dim: 8, Heads: 2, Bias: true, DType: tensor.Float64}, ref())
	require.NoError(t, err)
	x := attntest.Tensor(t, rng, tensor.Float64, 1, 4, 8)
	dy := attntest.Tensor(t, rng, tensor.Float64, 1, 4, 8)
	_, s, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, err = m.Backward(bg, s, dy)
	require.NoError(t, err)
	once := map[string][]float64{}
	for _, p := range m.Parameters() {
		once[p.Name] = attntest.Values(t, p.Grad)
	}
	_, err = m.Backward(bg, s, dy)
	requireArgErr(t, err, "saved") // consumed: its buffers went back to the layer
	_, s, err = m.Forward(bg, x)
	require.NoError(t, err)
	_, err = m.Backward(bg, s, dy)
	require.NoError(t, err)
	for _, p := range m.Parameters() {
		twice := attntest.Values(t, p.Grad)
		for i, g := range once[p.Name] {
			assert.InDelta(t, 2*g, twice[i], 1e-12, p.Name)
		}
	}
	m.ZeroGrad()
	for _, p := range m.Parameters() {
		assert.Equal(t, make([]float64, p.Grad.Len()), attntest.Values(t, p.Grad))
	}
}

func TestDropoutOffsetAndEvalMode(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	p := Params{Dim: 8, Heads: 2, Dropout: 0.5, Seed: 3}
	m, err := New(p, ref())
	require.NoError(t, err)
	noDrop := p
	noDrop.Dropout = 0
	plain, err := New(noDrop, ref()) // same seed: same weights, no dropout
	require.NoError(t, err)
	x := attntest.Tensor(t, rng, tensor.Float32, 2, 6, 8)

	y0, s0, err := m.Forward(bg, x)
	require.NoError(t, err)
	y1, s1, err := m.Forward(bg, x)
	require.NoError(t, err)
	assert.Equal(t, uint64(0), s0.Problem.Dropout.Offset)
	assert.Equal(t, uint64(1), s1.Problem.Dropout.Offset)
	assert.Equal(t, uint64(3), s0.Problem.Dropout.Seed)
	assert.Equal(t, uint64(2), m.DropoutOffset())
	assert.NotEqual(t, attntest.Values(t, y0), attntest.Values(t, y1), "a new offset draws a new mask")

	m.SetDropoutOffset(0)
	again, _, err := m.Forward(bg, x)
	require.NoError(t, err)
	assert.Equal(t, attntest.Values(t, y0), attntest.Values(t, again), "the same offset repeats the mask")

	m.Train(false)
	ye, se, err := m.Forward(bg, x)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), m.DropoutOffset(), "eval forwards do not advance the offset")
	assert.Zero(t, se.Problem.Dropout.P)
	yp, _, err := plain.Forward(bg, x)
	require.NoError(t, err)
	assert.Equal(t, attntest.Values(t, yp), attntest.Values(t, ye), "eval mode is the layer without dropout")
}

// failing is an Attention that fails or returns malformed results, to show the layer
// reports them as errors and never panics.
type failing struct {
	err     error
	badSave bool
}

func (f failing) Forward(_ context.Context, p *spec.Problem, _ *spec.Saved) (*spec.Saved, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.badSave {
		o, _ := tensor.New(tensor.Float32, 1, 1, 1, 1)
		return &spec.Saved{O: o}, nil
	}
	return fallback.Forward(p)
}

func (f failing) Backward(context.Context, *spec.Problem, *spec.Saved, *tensor.Tensor, *spec.Grads) (*spec.Grads, error) {
	return &spec.Grads{}, nil
}

func TestAttentionFailuresAreErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	x := attntest.Tensor(t, rng, tensor.Float32, 1, 3, 4)
	boom := errors.New("boom")
	m, err := New(Params{Dim: 4, Heads: 2}, failing{err: boom})
	require.NoError(t, err)
	_, _, err = m.Forward(bg, x)
	assert.ErrorIs(t, err, boom)

	m, err = New(Params{Dim: 4, Heads: 2}, failing{badSave: true})
	require.NoError(t, err)
	_, _, err = m.Forward(bg, x)
	assert.ErrorContains(t, err, "attention output O")

	m, err = New(Params{Dim: 4, Heads: 2}, failing{})
	require.NoError(t, err)
	_, s, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, err = m.Backward(bg, s, x)
	assert.ErrorContains(t, err, "dQ is missing")
}

// Through the Engine, the layer hands over contiguous inputs in the executor's layout:
// nothing needs copying, and the call is counted.
func TestThroughEngine(t *testing.T) {
	e, err := attention.NewEngine(attention.Params{})
	require.NoError(t, err)
	defer func() { assert.NoError(t, e.Close()) }()
	m, err := New(Params{Dim: 8, Heads: 4, KVHeads: 2, Causal: spec.CausalTopLeft, Bias: true}, e)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(8, 8))
	x := attntest.Tensor(t, rng, tensor.Float32, 2, 5, 8)
	y, s, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, err = m.Backward(bg, s, y)
	require.NoError(t, err)
	st := e.Stats()
	var calls int64
	for _, c := range st.Calls {
		calls += c
	}
	assert.Equal(t, int64(2), calls, "one forward and one backward")
	assert.Zero(t, st.Copies)
}

var bg = context.Background()
