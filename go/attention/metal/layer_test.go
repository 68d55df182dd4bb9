package metal

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// One training step of the layer through the engine with the (fake) Metal executor:
// forward and backward run on the GPU path, and the copies are the ones
// docs/ARCHITECTURE.md lists — host Q, K, V (and dO, O, L) uploaded, each result copied
// once into the layer's host destination — and nothing else. The fake's results are
// byte patterns, so only the plumbing is checked here; executor_darwin_test.go checks
// the numbers on a GPU.
func TestLayerTrainingStepCopies(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true, Logger: quiet})
	require.NoError(t, err)
	defer eng.Close()
	mha, err := layer.New(layer.Params{Dim: 32, Heads: 4, KVHeads: 2, Seed: 3}, eng)
	require.NoError(t, err)
	x := attntest.Tensor(t, randFor(3), tensor.Float32, 2, 8, 32)
	y, saved, err := mha.Forward(context.Background(), x)
	require.NoError(t, err)
	dy := attntest.Tensor(t, randFor(4), tensor.Float32, y.Shape()...)
	_, err = mha.Backward(context.Background(), saved, dy)
	require.NoError(t, err)
	opt, err := optim.New(optim.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	require.NoError(t, err)
	require.NoError(t, opt.Step(mha.Parameters()))

	st := eng.Stats()
	assert.Equal(t, int64(2), st.Calls["metal"], "forward and backward on the GPU path")
	assert.Empty(t, st.Fallbacks)
	const b, h, hkv, n, d = 2, 4, 2, 8, 8
	q, kv := int64(b*h*n*d*4), int64(b*hkv*n*d*4)
	rows := int64(b * h * n * 4)
	up := st.CopiesByKind[copyUpload]
	assert.Equal(t, int64(3+3+1+2), up.Count, "Q, K, V twice, dO, and the saved O and L the layer keeps in host buffers")
	assert.GreaterOrEqual(t, up.Bytes, 2*(q+2*kv)+q)
	dst := st.CopiesByKind[copyToDestination]
	assert.Equal(t, int64(5), dst.Count, "O, L, dQ, dK, dV each copied once into the layer's buffers")
	assert.Equal(t, q+rows+q+2*kv, dst.Bytes)
	for k, c := range st.CopiesByKind {
		switch k {
		case copyUpload, copyToDestination:
		default:
			assert.Zero(t, c.Count, "unexpected copy kind %s", k)
		}
	}
}
