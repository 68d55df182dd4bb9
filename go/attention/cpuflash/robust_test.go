package cpuflash

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// small returns a B1 H1 problem with random Q, K, V (N queries, M keys, head dim D) and dO.
func small(t *testing.T, seed uint64, n, m, d int) (*spec.Problem, *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 77))
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, 1, 1, n, d),
		K: attntest.Tensor(t, rng, tensor.Float32, 1, 1, m, d),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, 1, m, d),
	}
	return p, attntest.Tensor(t, rng, tensor.Float32, 1, 1, n, d)
}

// TestHugeFiniteBiases (W1, D5): finite biases beyond MaxFloat32/log2(e) stay finite: a
// key carrying +3e38 takes all of its rows' attention, and a key at −3e38 among keys at
// −MaxFloat32 takes its row's — as the reference computes, forward and backward. (A row
// whose keys all carry −MaxFloat32 is TestLargeRowOffsetBackward's case.)
func TestHugeFiniteBiases(t *testing.T) {
	const N, M, D = 5, 7, 16
	for _, c := range []struct {
		name string
		set  func(bias []float32)
	}{
		{"key 2 of every row at +3e38", func(b []float32) {
			for i := 0; i < N; i++ {
				b[i*M+2] = 3e38
			}
		}},
		{"row 1 at -MaxFloat32 except one key at -3e38", func(b []float32) {
			for j := 0; j < M; j++ {
				b[M+j] = -math.MaxFloat32
			}
			b[M+4] = -3e38
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, dO := small(t, 1, N, M, D)
			mask := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, N, M}, Bias: make([]float32, N*M)}
			c.set(mask.Bias)
			p.Mask = mask
			r := compare(t, New(Params{}), p, dO)
			assertWithin(t, r, tolOut32, tolGrad32, c.name)
		})
	}
}

// TestLargeRowOffsetBackward (D6, D5): a constant bias on a row (padding-style −1e9,
// ±1e6, or −MaxFloat32 = torch.finfo(float32).min) changes nothing in exact arithmetic.
// The forward keeps logits relative to the row's largest bias, and the backward subtracts
// that offset from L in float64, so outputs and gradients match those of the unbiased
// problem to float32 accuracy, and L carries the offset. (The float64 reference rounds
// −MaxFloat32 + q·k to −MaxFloat32 and so returns uniform attention on such a row; the
// exact answer, given here, is the unbiased softmax.)
func TestLargeRowOffsetBackward(t *testing.T) {
	const N, M, D = 6, 9, 16
	for _, off := range []float32{-1e9, -1e6, 1e6, 1e9, -math.MaxFloat32} {
		p, dO := small(t, 2, N, M, D)
		e := New(Params{})
		ctx := context.Background()
		s0, err := e.Forward(ctx, p, nil)
		require.NoError(t, err)
		g0, err := e.Backward(ctx, p, s0, dO, nil)
		require.NoError(t, err)

		mask := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, N, M}, Bias: make([]float32, N*M)}
		for j := 0; j < M; j++ {
			mask.Bias[j] = off // row 0 carries the offset on every key
		}
		pb := *p
		pb.Mask = mask
		s1, err := e.Forward(ctx, &pb, nil)
		require.NoError(t, err)
		g1, err := e.Backward(ctx, &pb, s1, dO, nil)
		require.NoError(t, err)
		for name, pair := range map[string][2]*tensor.Tensor{"O": {s1.O, s0.O}, "dQ": {g1.DQ, g0.DQ}, "dK": {g1.DK, g0.DK}, "dV": {g1.DV, g0.DV}} {
			rel, ok := relL2(attntest.Values(t, pair[0]), attntest.Values(t, pair[1]))
			assert.True(t, ok, "%s finite", name)
			assert.Less(t, rel, 1e-5, "offset %g: %s against the unbiased problem (relative L2)", off, name)
		}
		l0, l1 := attntest.Values(t, s0.L), attntest.Values(t, s1.L)
		assert.InDelta(t, l0[0]+float64(off), l1[0], 1e-6*math.Abs(float64(off)), "L of row 0 carries the offset")
	}
}

// TestScaleRange (D7): the largest scale the contract accepts (2^24) stays finite and
// matches the reference (logits ~1e7: hardmax), with and without a mask (plain path and
// float64 logits path); a scale beyond it is refused as invalid.
func TestScaleRange(t *testing.T) {
	p, dO := small(t, 3, 4, 6, 8)
	p.Scale = 1e39
	require.ErrorIs(t, New(Params{}).Supports(p), spec.ErrInvalid)
	p.Scale = 1 << 24
	r := compare(t, New(Params{}), p, dO)
	assert.Less(t, r.O, 1e-5, "O against the reference")
	p.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, 4, 6}, Bias: make([]float32, 24)}
	r = compare(t, New(Params{}), p, dO)
	assert.Less(t, r.O, 1e-5, "O against the reference, masked")
}

// TestFloat32Gradients (W2): GradDType = float32 gives float32 gradients for float16 and
// bfloat16 inputs, matching the reference to float32 accuracy on the rounded inputs.
func TestFloat32Gradients(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float16, tensor.BFloat16} {
		rng := rand.New(rand.NewPCG(4, uint64(dt)))
		p := &spec.Problem{
			Q:       attntest.Tensor(t, rng, dt, 1, 2, 70, 32),
			K:       attntest.Tensor(t, rng, dt, 1, 2, 50, 32),
			V:       attntest.Tensor(t, rng, dt, 1, 2, 50, 32),
			Options: spec.Options{GradDType: tensor.Float32, Causal: spec.CausalBottomRight},
		}
		dO := attntest.Tensor(t, rng, dt, 1, 2, 70, 32)
		e := New(Params{})
		require.NoError(t, e.Supports(p))
		s, err := e.Forward(context.Background(), p, nil)
		require.NoError(t, err)
		g, err := e.Backward(context.Background(), p, s, dO, nil)
		require.NoError(t, err)
		p64 := problem64(t, p)
		p64.GradDType = 0
		rs, err := fallback.Forward(p64)
		require.NoError(t, err)
		rg, err := fallback.Backward(p64, rs, to64(t, dO))
		require.NoError(t, err)
		for name, pair := range map[string][2]*tensor.Tensor{"dQ": {g.DQ, rg.DQ}, "dK": {g.DK, rg.DK}, "dV": {g.DV, rg.DV}} {
			assert.Equal(t, tensor.Float32, pair[0].DType(), name)
			// O is rounded to dt before the backward reads it (D = rowsum(dO ∘ O)), which
			// bounds the agreement by the dtype's rounding, not float32's.
			rel, ok := relL2(attntest.Values(t, pair[0]), attntest.Values(t, pair[1]))
			assert.True(t, ok, name)
			assert.Less(t, rel, 2e-2, "%v %s", dt, name)
		}
	}
}

type lyingStorage struct{ b []byte }

func (s lyingStorage) Kind() tensor.StorageKind { return tensor.Host }
func (s lyingStorage) Len() int                 { return 1 << 20 }
func (s lyingStorage) Bytes() []byte            { return s.b }

// TestLyingStorage (D12): a Storage whose Bytes() is shorter than its Len() gets an error,
// not a panic.
func TestLyingStorage(t *testing.T) {
	ly := func(shape ...int) *tensor.Tensor {
		x, err := tensor.FromStorage(lyingStorage{make([]byte, 16)}, tensor.Float32, shape, tensor.ContiguousStrides(shape), 0)
		require.NoError(t, err)
		return x
	}
	p := &spec.Problem{Q: ly(1, 2, 5, 4), K: ly(1, 1, 6, 4), V: ly(1, 1, 6, 4)}
	require.NotPanics(t, func() {
		_, err := New(Params{}).Forward(context.Background(), p, nil)
		require.Error(t, err)
	})
}

// TestWorkerPanicIsBounded (D9): a panic in a worker comes back as a *PanicError whose
// message holds no stack or per-call detail, classified as a panic.
func TestWorkerPanicIsBounded(t *testing.T) {
	e := New(Params{Workers: 2})
	tasks := []task{{b: 0}, {b: 1}, {b: 2}}
	var msgs []string
	for i := 0; i < 2; i++ {
		err := run(context.Background(), e, tasks, func() int { return 0 }, nil, func(int, task) {
			var s []int
			_ = s[i+5] // index out of range, with per-call detail in the runtime's message
		})
		var pe *PanicError
		require.ErrorAs(t, err, &pe)
		assert.NotEmpty(t, pe.Stack)
		assert.Equal(t, spec.CausePanic, spec.CauseOf(err))
		msgs = append(msgs, err.Error())
	}
	assert.Equal(t, msgs[0], msgs[1], "the message does not vary with the call")
	assert.NotContains(t, msgs[0], "goroutine")
}

// countdownCtx reports Canceled after its Err method has been called n times: a
// cancellation that lands in the middle of a call.
type countdownCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestCancellation: a context cancelled before or during a call ends it with an error
// wrapping context.Canceled and no outputs, forward and backward; the executor then runs
// the next call normally.
func TestCancellation(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, 1, 4, 500, 64),
		K: attntest.Tensor(t, rng, tensor.Float32, 1, 4, 500, 64),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, 4, 500, 64),
	}
	dO := attntest.Tensor(t, rng, tensor.Float32, 1, 4, 500, 64)
	e := New(Params{BlockQ: 48, BlockK: 48})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Forward(ctx, p, nil)
	require.ErrorIs(t, err, context.Canceled)

	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	for _, after := range []int64{3, 40} {
		cd := &countdownCtx{Context: context.Background()}
		cd.n.Store(after)
		out, err := e.Forward(cd, p, nil)
		require.ErrorIs(t, err, context.Canceled, "forward cancelled after %d checks", after)
		assert.Nil(t, out)
		cd.n.Store(after)
		g, err := e.Backward(cd, p, s, dO, nil)
		require.ErrorIs(t, err, context.Canceled, "backward cancelled after %d checks", after)
		assert.Nil(t, g)
	}
	r := compare(t, e, p, dO)
	assertWithin(t, r, tolOut32, tolGrad32, "after cancellations")
}

// TestMemoryBudget (D8): the working memory is computed before anything is allocated and a
// call over the budget gets a *spec.MemoryError — among them a problem whose K and V are
// 2^33 broadcast rows (no memory to build, 32 GiB to copy).
func TestMemoryBudget(t *testing.T) {
	p, dO := small(t, 5, 40, 40, 16)
	e := New(Params{})
	ctx := spec.WithMemoryBudget(context.Background(), 1024)
	_, err := e.Forward(ctx, p, nil)
	var me *spec.MemoryError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, spec.ErrMemoryBudget)
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	_, err = e.Backward(ctx, p, s, dO, nil)
	require.ErrorAs(t, err, &me)

	bcast := func(rows int) *tensor.Tensor {
		x, err := tensor.FromStorage(tensor.NewHostStorage(4), tensor.Float32, []int{1, 1, rows, 1}, []int{0, 0, 0, 0}, 0)
		require.NoError(t, err)
		return x
	}
	huge := &spec.Problem{Q: bcast(1), K: bcast(1 << 33), V: bcast(1 << 33)}
	if spec.Validate(huge) == nil {
		_, err = e.Forward(context.Background(), huge, nil)
		require.ErrorAs(t, err, &me)
	}
}

// TestNumerics runs the contract's numeric guarantees from the shared attntest package
// (logits up to ±1e4 finite and matching the reference, NaN/Inf confined to its batch and
// head, fully masked rows exact zeros) on every kernel set this CPU runs.
func TestNumerics(t *testing.T) {
	for _, name := range KernelSets() {
		t.Run(name, func(t *testing.T) {
			attntest.Numerics{Executor: New(Params{Kernels: name}), DType: tensor.Float32, Tol: 2e-4}.Run(t)
		})
	}
}
