//go:build darwin && !ios && cgo

package metal

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// The contract's numeric guarantees (large logits, NaN confined to its head, fully
// masked rows) on the GPU, float32 inputs.
func TestGPUNumerics(t *testing.T) {
	attntest.Numerics{Executor: gpuExecutor(t), DType: tensor.Float32, Tol: 2e-4}.Run(t)
}

// The copy-count table on the GPU: host inputs are uploaded (3 copies), inputs in shared
// or private memory of the device and a strided view of shared memory are bound in
// place (0 copies); the results match the reference in every case.
func TestGPUCopyCountTable(t *testing.T) {
	e := gpuExecutor(t)
	c := gpuCase{dt: tensor.Float32, b: 1, h: 2, hkv: 1, n: 24, m: 40, d: 64, causal: spec.CausalTopLeft}
	hp := c.problem(t, 21)
	want, err := fallback.Forward(hp)
	require.NoError(t, err)
	strategy := func(mode metalrt.StorageMode) *allocator.MetalStrategy {
		s, err := allocator.NewMetalStrategy(e.Device(), mode)
		require.NoError(t, err)
		return s
	}
	place := func(mode metalrt.StorageMode, x *tensor.Tensor) *tensor.Tensor {
		y, err := allocator.Place(strategy(mode), x)
		require.NoError(t, err)
		return y
	}
	in := func(mode metalrt.StorageMode) *spec.Problem {
		p := *hp
		p.Q, p.K, p.V = place(mode, hp.Q), place(mode, hp.K), place(mode, hp.V)
		return &p
	}
	strided := func() *spec.Problem {
		p := *in(metalrt.Shared)
		// K as rows 3..42 of a taller shared tensor holding hp.K there.
		big := attntest.Tensor(t, rand.New(rand.NewPCG(4, 4)), tensor.Float32, 1, 1, 46, 64)
		bs := place(metalrt.Shared, big)
		k, err := bs.Slice(2, 3, 43)
		require.NoError(t, err)
		require.NoError(t, hp.K.CopyInto(k))
		p.K = k
		return &p
	}
	for _, tc := range []struct {
		name   string
		p      *spec.Problem
		copies int64
	}{
		{"host", hp, 3},
		{"shared", in(metalrt.Shared), 0},
		{"private", in(metalrt.Private), 0},
		{"strided shared view", strided(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true})
			require.NoError(t, err)
			before := eng.Stats().Copies
			s, err := eng.Forward(context.Background(), tc.p, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.copies, eng.Stats().Copies-before, "%v", eng.Stats().CopiesByKind)
			assert.LessOrEqual(t, relL2(t, "O", s.O, want.O), 1e-5)
			assert.Equal(t, tensor.Shared, s.O.Storage().Kind())
		})
	}
}

// The layer's training step with Q, K, V and dO in private memory on the GPU equals the
// same step on cpuflash: output and every parameter gradient within 1e-4 relative L2.
func TestGPULayerStepWithPrivateTensors(t *testing.T) {
	e := gpuExecutor(t)
	a := newPrivateAttention(t, e)
	p := layer.Params{Dim: 64, Heads: 4, KVHeads: 2, Causal: spec.CausalTopLeft, Seed: 5}
	gpu, err := layer.New(p, a)
	require.NoError(t, err)
	cpu, err := layer.New(p, cpuflash.New(cpuflash.Params{}))
	require.NoError(t, err)
	x := attntest.Tensor(t, rand.New(rand.NewPCG(5, 5)), tensor.Float32, 2, 24, 64)
	dy := attntest.Tensor(t, rand.New(rand.NewPCG(6, 6)), tensor.Float32, 2, 24, 64)
	step := func(m *layer.MultiHeadAttention) (*tensor.Tensor, []optim.Param) {
		y, s, err := m.Forward(context.Background(), x)
		require.NoError(t, err)
		yc, _, err := y.Contiguous()
		require.NoError(t, err)
		y, err = yc.Convert(tensor.Float32)
		require.NoError(t, err)
		_, err = m.Backward(context.Background(), s, dy)
		require.NoError(t, err)
		return y, m.Parameters()
	}
	yg, pg := step(gpu)
	yc, pc := step(cpu)
	assert.LessOrEqual(t, relL2(t, "y", yg, yc), 1e-4)
	require.Len(t, pg, len(pc))
	for i := range pg {
		assert.LessOrEqual(t, relL2(t, pg[i].Name, pg[i].Grad, pc[i].Grad), 1e-4, pg[i].Name)
	}
	st := a.eng.Stats()
	assert.Equal(t, int64(2), st.Calls["metal"])
	assert.Equal(t, int64(2), st.CopiesByKind[copyUpload].Count, "only Saved.O and Saved.L; Q, K, V and dO bound in private memory")
}
