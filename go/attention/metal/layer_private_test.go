package metal

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// privateAttention is the layer's Attention over an engine, with the attention inputs
// the layer hands it (Q, K, V, dO) moved into private Metal memory first, as a user who
// keeps them on the GPU would have them: the layer's training step then runs with
// private tensors end to end through the engine and the executor.
type privateAttention struct {
	eng  *attention.Engine
	priv *allocator.MetalStrategy
}

func (a privateAttention) place(t *tensor.Tensor) (*tensor.Tensor, error) {
	return allocator.Place(a.priv, t)
}

func (a privateAttention) problem(p *spec.Problem) (*spec.Problem, error) {
	q := *p
	var err error
	for _, x := range []**tensor.Tensor{&q.Q, &q.K, &q.V} {
		if *x, err = a.place(*x); err != nil {
			return nil, err
		}
	}
	return &q, nil
}

func (a privateAttention) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	q, err := a.problem(p)
	if err != nil {
		return nil, err
	}
	return a.eng.Forward(ctx, q, into)
}

func (a privateAttention) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	q, err := a.problem(p)
	if err != nil {
		return nil, err
	}
	d, err := a.place(dO)
	if err != nil {
		return nil, err
	}
	return a.eng.Backward(ctx, q, s, d, into)
}

func newPrivateAttention(t *testing.T, e *Executor) privateAttention {
	t.Helper()
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	priv, err := allocator.NewMetalStrategy(e.Device(), metalrt.Private)
	require.NoError(t, err)
	return privateAttention{eng: eng, priv: priv}
}

// On the fake device: the layer's step runs on the GPU path with Q, K, V and dO in
// private memory, bound where they live — the executor uploads only the saved O and L
// the layer keeps in host buffers.
func TestLayerStepWithPrivateTensors(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	a := newPrivateAttention(t, e)
	mha, err := layer.New(layer.Params{Dim: 32, Heads: 4, KVHeads: 2, Seed: 5}, a)
	require.NoError(t, err)
	x := attntest.Tensor(t, randFor(5), tensor.Float32, 2, 8, 32)
	y, saved, err := mha.Forward(context.Background(), x)
	require.NoError(t, err)
	_, err = mha.Backward(context.Background(), saved, attntest.Tensor(t, randFor(6), tensor.Float32, y.Shape()...))
	require.NoError(t, err)
	st := a.eng.Stats()
	assert.Equal(t, int64(2), st.Calls["metal"])
	assert.Equal(t, int64(2), st.CopiesByKind[copyUpload].Count, "only Saved.O and Saved.L")
	assert.Equal(t, int64(0), st.CopiesByKind[allocator.CopyStageOut].Count, "nothing read back through staging")
	q := bindingOf(t, dev, 0, mslplan.BufQ)
	assert.Equal(t, metalrt.Private, q.buf.Mode(), "the kernel read Q from private memory")
}
