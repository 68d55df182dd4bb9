package cpuflash

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// garbage returns a tensor of dtype dt and shape filled with NaN, so that a destination
// the executor fails to write in full shows up.
func garbage(t *testing.T, dt tensor.DType, shape ...int) *tensor.Tensor {
	x, err := tensor.New(dt, shape...)
	require.NoError(t, err)
	n := x.Len()
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	y, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return y
}

// TestIntoWritesInPlace: destinations are written in place (the same tensors come back)
// with the bits of a call without them, for O, L in float32 and float64, and the three
// gradients; rows no task writes (past a length, no visible key) are zeroed, not left.
func TestIntoWritesInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	const B, H, Hkv, N, M, D = 2, 4, 2, 130, 110, 64
	p := &spec.Problem{
		Q:       attntest.Tensor(t, rng, tensor.Float32, B, H, N, D),
		K:       attntest.Tensor(t, rng, tensor.Float32, B, Hkv, M, D),
		V:       attntest.Tensor(t, rng, tensor.Float32, B, Hkv, M, D),
		Options: spec.Options{SeqLensQ: []int{N, 90}, SeqLensK: []int{M, 70}, Causal: spec.CausalBottomRight},
	}
	dO := attntest.Tensor(t, rng, tensor.Float32, B, H, N, D)
	e := New(Params{})
	ctx := context.Background()
	s, err := e.Forward(ctx, p, nil)
	require.NoError(t, err)
	g, err := e.Backward(ctx, p, s, dO, nil)
	require.NoError(t, err)

	for _, lt := range []tensor.DType{tensor.Float32, tensor.Float64} {
		into := &spec.Saved{O: garbage(t, tensor.Float32, B, H, N, D), L: garbage(t, lt, B, H, N)}
		got, err := e.Forward(ctx, p, into)
		require.NoError(t, err)
		assert.Same(t, into.O, got.O)
		assert.Same(t, into.L, got.L)
		assert.Equal(t, snapshot(s.O), snapshot(got.O), "O written in place")
		want := attntest.Values(t, s.L)
		for i, v := range attntest.Values(t, got.L) {
			w := want[i]
			if lt == tensor.Float32 {
				w = float64(float32(w))
			}
			require.Equal(t, w, v, "L[%d] in %v", i, lt)
		}
	}
	gi := &spec.Grads{DQ: garbage(t, tensor.Float32, B, H, N, D), DK: garbage(t, tensor.Float32, B, Hkv, M, D), DV: garbage(t, tensor.Float32, B, Hkv, M, D)}
	got, err := e.Backward(ctx, p, s, dO, gi)
	require.NoError(t, err)
	assert.Same(t, gi.DQ, got.DQ)
	assert.Same(t, gi.DK, got.DK)
	assert.Same(t, gi.DV, got.DV)
	assert.Equal(t, snapshot(g.DQ, g.DK, g.DV), snapshot(got.DQ, got.DK, got.DV), "gradients written in place")
}

// TestIntoFullLengthsOverwrite: without sequence lengths (every row belongs to a task) a
// NaN-filled destination comes back with the bits of a call without one, also where rows
// see no key (bottom-right causal with N > M, a window), in float32 and bfloat16.
func TestIntoFullLengthsOverwrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	const B, H, N, M, D = 2, 2, 100, 70, 48
	for _, dt := range []tensor.DType{tensor.Float32, tensor.BFloat16} {
		for _, o := range []spec.Options{
			{},
			{Causal: spec.CausalTopLeft},
			{Causal: spec.CausalBottomRight},
			{Window: &spec.Window{Left: 5, Right: 0}},
		} {
			p := &spec.Problem{
				Q:       attntest.Tensor(t, rng, dt, B, H, N, D),
				K:       attntest.Tensor(t, rng, dt, B, H, M, D),
				V:       attntest.Tensor(t, rng, dt, B, H, M, D),
				Options: o,
			}
			e := New(Params{})
			ctx := context.Background()
			want, err := e.Forward(ctx, p, nil)
			require.NoError(t, err)
			into := &spec.Saved{O: garbage(t, dt, B, H, N, D), L: garbage(t, tensor.Float64, B, H, N)}
			got, err := e.Forward(ctx, p, into)
			require.NoError(t, err)
			assert.Same(t, into.O, got.O)
			assert.Equal(t, snapshot(want.O, want.L), snapshot(got.O, got.L), "%v %+v", dt, o)
		}
	}
}

// TestIntoAllocatesLittle: a training step (forward and backward) with every destination
// given allocates no output or scratch memory once the executor's scratch cache is warm:
// at B1 H8 N1024 D64, where the outputs alone are 8 MiB, a step allocates under 64 KiB
// (task lists, goroutines, per-worker index slices) in under 200 allocations.
func TestIntoAllocatesLittle(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	rng := rand.New(rand.NewPCG(22, 1))
	const H, N, D = 8, 1024, 64
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, 1, H, N, D),
		K: attntest.Tensor(t, rng, tensor.Float32, 1, H, N, D),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, H, N, D),
	}
	dO := attntest.Tensor(t, rng, tensor.Float32, 1, H, N, D)
	s := &spec.Saved{O: garbage(t, tensor.Float32, 1, H, N, D), L: garbage(t, tensor.Float64, 1, H, N)}
	g := &spec.Grads{DQ: garbage(t, tensor.Float32, 1, H, N, D), DK: garbage(t, tensor.Float32, 1, H, N, D), DV: garbage(t, tensor.Float32, 1, H, N, D)}
	e := New(Params{})
	ctx := context.Background()
	step := func() {
		_, err := e.Forward(ctx, p, s)
		require.NoError(t, err)
		_, err = e.Backward(ctx, p, s, dO, g)
		require.NoError(t, err)
	}
	step() // warm the scratch cache
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const steps = 5
	allocs := testing.AllocsPerRun(steps, step)
	runtime.ReadMemStats(&m1)
	perStep := float64(m1.TotalAlloc-m0.TotalAlloc) / (steps + 1) // AllocsPerRun runs once more to warm up
	t.Logf("per step: %.0f allocations, %.0f bytes", allocs, perStep)
	assert.Less(t, allocs, 200.0)
	assert.Less(t, perStep, float64(64<<10))
}
