package fallback_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// relL2 is ‖got − want‖ / ‖want‖.
func relL2(want, got []float64) float64 {
	var num, den float64
	for i := range want {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// D6: a constant added to every logit of a row changes nothing, so the gradients of a row
// whose keys all carry a bias of ±1e6 or ±1e9 (a padding bias) are those of the plain
// problem. With L in float32 the reference was off by up to ×1300 there; with L in float64
// the difference is the float64 rounding of s + bias (≈ 1e-16 · 1e9 absolute), rounded to
// the dtype.
func TestLargeRowOffsetGradientsExact(t *testing.T) {
	const B, H, N, M, D = 1, 2, 4, 6, 8
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Float16} {
		for _, off := range []float32{-1e9, -1e6, 1e6, 1e9} {
			r := rand.New(rand.NewPCG(6, uint64(off)))
			q, k, v := randTensor(t, r, dt, B, H, N, D), randTensor(t, r, dt, B, H, M, D), randTensor(t, r, dt, B, H, M, D)
			dO := randTensor(t, r, dt, B, H, N, D)
			mask := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, N, M}, Bias: make([]float32, N*M)}
			for j := 0; j < M; j++ {
				mask.Bias[j] = off // row 0 of every head carries the offset; dO there is not zero
			}
			biased := &spec.Problem{Q: q, K: k, V: v, Options: spec.Options{Mask: mask}}
			plain := &spec.Problem{Q: q, K: k, V: v}
			sb, gb := runBoth(t, biased, dO)
			sp, gp := runBoth(t, plain, dO)
			assert.Equal(t, tensor.Float64, sb.L.DType(), "L is float64 for every input dtype")
			tol := map[tensor.DType]float64{tensor.Float32: 1e-6, tensor.Float64: 1e-6, tensor.Float16: 2e-3}[dt]
			for name, pair := range map[string][2]*tensor.Tensor{"O": {sp.O, sb.O}, "dQ": {gp.DQ, gb.DQ}, "dK": {gp.DK, gb.DK}, "dV": {gp.DV, gb.DV}} {
				assert.Less(t, relL2(f64s(t, pair[0]), f64s(t, pair[1])), tol, "%v offset %g: %s (relative L2)", dt, off, name)
			}
			lp, lb := f64s(t, sp.L), f64s(t, sb.L)
			assert.InDelta(t, lp[0]+float64(off), lb[0], 1e-15*math.Abs(float64(off))+1e-12, "L of row 0 carries the offset exactly")
		}
	}
}

// bcast returns a float32 tensor of the given shape over one stored element.
func bcast(t *testing.T, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromStorage(tensor.NewHostStorage(4), tensor.Float32, shape, make([]int, len(shape)), 0)
	require.NoError(t, err)
	return x
}

// D8: the reference computes its working memory before allocating and refuses, with a
// *spec.MemoryError, what exceeds the budget: broadcast inputs that cost nothing to build
// but would expand to 128 GiB of float64, and any problem over an explicit budget. A
// problem exactly at its budget runs, and what the call allocates stays within the
// estimate.
func TestMemoryBudget(t *testing.T) {
	huge := &spec.Problem{Q: bcast(t, 1, 1, 1, 2), K: bcast(t, 1, 1, 1<<33, 2), V: bcast(t, 1, 1, 1<<33, 2)}
	require.NoError(t, spec.Validate(huge))
	ctx := spec.WithMemoryBudget(context.Background(), 8<<30)
	_, err := fallback.ForwardContext(ctx, huge)
	var me *spec.MemoryError
	require.ErrorAs(t, err, &me)
	assert.ErrorIs(t, err, spec.ErrMemoryBudget)
	assert.Equal(t, fallback.ForwardMemory(huge), me.Need)
	assert.Greater(t, me.Need, int64(1<<37), "K and V expand to 2·8·2^34 bytes")
	_, err = fallback.Forward(huge) // the default budget: half the machine's memory
	if spec.DefaultMemoryBudget() < 1<<38 {
		require.ErrorIs(t, err, spec.ErrMemoryBudget)
	}
	dO, s := bcast(t, 1, 1, 1, 2), &spec.Saved{O: bcast(t, 1, 1, 1, 2), L: bcast(t, 1, 1, 1)}
	_, err = fallback.BackwardContext(ctx, huge, s, dO)
	require.ErrorIs(t, err, spec.ErrMemoryBudget)

	p, dO := buildProblem(t, optionCases()[len(optionCases())-1], tensor.Float32, 9)
	for _, c := range []struct {
		name string
		need int64
		run  func(ctx context.Context) error
	}{
		{"forward", fallback.ForwardMemory(p), func(ctx context.Context) error { _, err := fallback.ForwardContext(ctx, p); return err }},
		{"backward", fallback.BackwardMemory(p), func(ctx context.Context) error {
			s, err := fallback.Forward(p)
			require.NoError(t, err)
			_, err = fallback.BackwardContext(ctx, p, s, dO)
			return err
		}},
	} {
		require.ErrorIs(t, c.run(spec.WithMemoryBudget(context.Background(), c.need-1)), spec.ErrMemoryBudget, c.name)
		require.NoError(t, c.run(spec.WithMemoryBudget(context.Background(), c.need)), c.name)
	}

	// The estimate bounds what a call allocates (plus a little for small bookkeeping: error
	// values, shape slices).
	big, _ := buildProblem(t, problemCase{Name: "big", Sizes: sizes{B: 2, H: 4, Hkv: 2, N: 96, M: 80, D: 16}, Opts: noOptions}, tensor.Float32, 10)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = fallback.Forward(big)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.LessOrEqual(t, int64(after.TotalAlloc-before.TotalAlloc), fallback.ForwardMemory(big)+16<<10, "forward allocations within ForwardMemory")
}

// countingCtx is a context whose Err turns to Canceled after n calls: a deterministic
// cancellation in the middle of a call.
type countingCtx struct {
	context.Context
	n, calls int
}

func (c *countingCtx) Err() error {
	c.calls++
	if c.calls > c.n {
		return context.Canceled
	}
	return nil
}

// Cancellation: a context already done stops the call before any work; one cancelled in
// the middle stops it at the next query row, with an error wrapping ctx.Err() and no
// outputs.
func TestCancellation(t *testing.T) {
	p, dO := buildProblem(t, optionCases()[len(optionCases())-1], tensor.Float32, 11)
	s, err := fallback.Forward(p)
	require.NoError(t, err)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	out, err := fallback.ForwardContext(done, p)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, out)
	g, err := fallback.BackwardContext(done, p, s, dO)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, g)

	for _, n := range []int{1, 3, 7} {
		c := &countingCtx{Context: context.Background(), n: n}
		out, err := fallback.ForwardContext(c, p)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, out)
		assert.Equal(t, n+1, c.calls, "forward stops at the first check after cancellation")
		c = &countingCtx{Context: context.Background(), n: n}
		g, err := fallback.BackwardContext(c, p, s, dO)
		assert.True(t, errors.Is(err, context.Canceled), "backward: %v", err)
		assert.Nil(t, g)
		assert.Equal(t, n+1, c.calls, "backward stops at the first check after cancellation")
	}
}

// lyingStorage claims 1 MiB (Len) but hands out 16 bytes (Bytes).
type lyingStorage struct{ b []byte }

func (s lyingStorage) Kind() tensor.StorageKind { return tensor.Host }
func (s lyingStorage) Len() int                 { return 1 << 20 }
func (s lyingStorage) Bytes() []byte            { return s.b }

// D12: inconsistent storage gets a typed *spec.ArgError naming the tensor, not a panic.
func TestInconsistentStorage(t *testing.T) {
	ly := func(shape ...int) *tensor.Tensor {
		x, err := tensor.FromStorage(lyingStorage{make([]byte, 16)}, tensor.Float32, shape, tensor.ContiguousStrides(shape), 0)
		require.NoError(t, err)
		return x
	}
	r := rand.New(rand.NewPCG(12, 12))
	good := func(shape ...int) *tensor.Tensor { return randTensor(t, r, tensor.Float32, shape...) }
	for _, c := range []struct {
		arg  string
		p    *spec.Problem
		s    *spec.Saved
		dO   *tensor.Tensor
		back bool
	}{
		{"Q", &spec.Problem{Q: ly(1, 2, 5, 4), K: good(1, 1, 6, 4), V: good(1, 1, 6, 4)}, nil, nil, false},
		{"K", &spec.Problem{Q: good(1, 2, 5, 4), K: ly(1, 1, 6, 4), V: good(1, 1, 6, 4)}, nil, nil, false},
		{"dO", &spec.Problem{Q: good(1, 2, 5, 4), K: good(1, 1, 6, 4), V: good(1, 1, 6, 4)}, nil, ly(1, 2, 5, 4), true},
		{"Saved.L", &spec.Problem{Q: good(1, 2, 5, 4), K: good(1, 1, 6, 4), V: good(1, 1, 6, 4)}, &spec.Saved{O: good(1, 2, 5, 4), L: ly(1, 2, 5)}, good(1, 2, 5, 4), true},
	} {
		var err error
		if c.back {
			if c.s == nil {
				c.s, err = fallback.Forward(c.p)
				require.NoError(t, err)
			}
			_, err = fallback.Backward(c.p, c.s, c.dO)
		} else {
			_, err = fallback.Forward(c.p)
		}
		var ae *spec.ArgError
		require.ErrorAs(t, err, &ae, c.arg)
		assert.Equal(t, c.arg, ae.Arg)
		assert.ErrorIs(t, err, spec.ErrInvalid)
	}
}
