package attention

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// probe is an executor that records the context it was called with and can run a hook
// (for example, cancel the caller's context) before handing on to the reference.
type probe struct {
	fake
	hook   func(ctx context.Context) error
	budget int64
	copies allocator.CopyCounter
}

func (p *probe) Forward(ctx context.Context, pr *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	p.budget = spec.MemoryBudget(ctx)
	if p.hook != nil {
		if err := p.hook(ctx); err != nil {
			return nil, err
		}
	}
	return fallback.NewExecutor().Forward(ctx, pr, into)
}

func (p *probe) CopyStats() allocator.CopyStats { return p.copies.Snapshot() }

func TestCancelledContextEndsTheCallWithoutFallback(t *testing.T) {
	r := ref()
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{r}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Forward(ctx, problem(t), nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, r.seen, "no executor runs once the context has ended")

	// Cancelled while the first executor runs: the call ends there; the reference is not
	// tried and nothing counts as a fallback.
	ctx, cancel = context.WithCancel(context.Background())
	first := &probe{fake: fake{name: "metal", priority: 200}, hook: func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	}}
	r = ref()
	e, _ = quietEngine(t, Params{Executors: []spec.Executor{first, r}})
	_, err = e.Forward(ctx, problem(t), nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, r.seen)
	assert.Empty(t, e.Stats().Fallbacks)
}

func TestNilContextIsAnArgumentError(t *testing.T) {
	e, _ := quietEngine(t, Params{})
	//lint:ignore SA1012 the nil context is what this test passes
	_, err := e.Forward(nil, problem(t), nil)
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "ctx", ae.Arg)
}

func TestForwardAndBackwardIntoDestinations(t *testing.T) {
	e, _ := quietEngine(t, Params{})
	ctx := context.Background()
	p := problem(t)
	want, err := e.Forward(ctx, p, nil)
	require.NoError(t, err)

	o, err := tensor.New(tensor.Float32, p.Q.Shape()...)
	require.NoError(t, err)
	l, err := tensor.New(tensor.Float64, 1, 2, 3)
	require.NoError(t, err)
	got, err := e.Forward(ctx, p, &spec.Saved{O: o, L: l})
	require.NoError(t, err)
	assert.Same(t, o, got.O, "O is the destination")
	assert.Same(t, l, got.L, "L is the destination")
	wo, _ := want.O.ToFloat64s()
	gotO, _ := got.O.ToFloat64s()
	assert.Equal(t, wo, gotO)

	dq, err := tensor.New(tensor.Float32, p.Q.Shape()...)
	require.NoError(t, err)
	g, err := e.Backward(ctx, p, got, got.O, &spec.Grads{DQ: dq})
	require.NoError(t, err)
	assert.Same(t, dq, g.DQ)
	assert.NotNil(t, g.DK, "fields left nil are allocated")

	// A destination that shares memory with an input is refused before any executor runs.
	_, err = e.Forward(ctx, p, &spec.Saved{O: p.Q})
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "into.O", ae.Arg)
	// So is one whose shape is not the output's.
	bad, _ := tensor.New(tensor.Float32, 1, 2, 3, 5)
	_, err = e.Forward(ctx, p, &spec.Saved{O: bad})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "into.O", ae.Arg)
}

func TestExecutorIgnoringDestinationsIsBadOutput(t *testing.T) {
	// fake allocates its own O: with a destination given, that is malformed output.
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{&fake{name: "cpuflash", priority: 100}}})
	p := problem(t)
	o, _ := tensor.New(tensor.Float32, p.Q.Shape()...)
	s, err := e.Forward(context.Background(), p, &spec.Saved{O: o})
	require.NoError(t, err)
	assert.Same(t, o, s.O)
	assert.Equal(t, int64(1), e.Stats().Fallbacks["cpuflash: "+string(spec.CauseBadOutput)])
}

func TestCallAfterCloseIsErrClosedEvenWhenInvalid(t *testing.T) {
	e, _ := quietEngine(t, Params{})
	require.NoError(t, e.Close())
	_, err := e.Forward(context.Background(), &spec.Problem{}, nil)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = e.Backward(context.Background(), &spec.Problem{}, nil, nil, nil)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestDebugFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		val  string
		want bool
	}{{"1", true}, {"true", true}, {"TRUE", true}, {"0", false}, {"", false}, {"yes please", false}} {
		t.Setenv("ORCHARD_DEBUG", c.val)
		e, _ := quietEngine(t, Params{})
		assert.Equal(t, c.want, e.debug, "ORCHARD_DEBUG=%q", c.val)
	}
}

func TestMemoryBudgetReachesExecutors(t *testing.T) {
	_, err := NewEngine(Params{MemoryBudget: -1})
	assert.ErrorIs(t, err, spec.ErrInvalid)

	x := &probe{fake: fake{name: "cpuflash", priority: 100}}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{x}, MemoryBudget: 12345})
	_, err = e.Forward(context.Background(), problem(t), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(12345), x.budget, "the engine's budget applies when the context sets none")

	_, err = e.Forward(spec.WithMemoryBudget(context.Background(), 1<<20), problem(t), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), x.budget, "a budget on the context wins")

	e2, _ := quietEngine(t, Params{Executors: []spec.Executor{x}})
	_, err = e2.Forward(context.Background(), problem(t), nil)
	require.NoError(t, err)
	assert.Equal(t, spec.DefaultMemoryBudget(), x.budget)
}

func TestStatsAddExecutorCopies(t *testing.T) {
	x := &probe{fake: fake{name: "metal", priority: 200}}
	x.copies.Add("metal: upload shared", 64)
	x.copies.Add("metal: upload shared", 32)
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{x}})
	st := e.Stats()
	assert.Equal(t, int64(2), st.Copies)
	assert.Equal(t, int64(96), st.CopyBytes)
	assert.Equal(t, allocator.Copy{Count: 2, Bytes: 96}, st.CopiesByKind["metal: upload shared"])
}

func TestFallbackKeysStayBounded(t *testing.T) {
	// Every call fails with a different message (as errors carrying indices or stack traces
	// would): the counters keep one key per (executor, cause).
	n := 0
	x := &probe{fake: fake{name: "metal", priority: 200}, hook: func(context.Context) error {
		n++
		return fmt.Errorf("element %d is NaN", n)
	}}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{x}})
	for i := 0; i < 50; i++ {
		_, err := e.Forward(context.Background(), problem(t), nil)
		require.NoError(t, err)
	}
	st := e.Stats()
	assert.Len(t, st.Fallbacks, 1)
	assert.Equal(t, int64(50), st.Fallbacks["metal: error"])
	assert.Equal(t, "element 50 is NaN", st.FallbackDetail["metal: error"])
}

func TestCausesOfTypedErrors(t *testing.T) {
	x := &probe{fake: fake{name: "cpuflash", priority: 100}, hook: func(ctx context.Context) error {
		return spec.CheckMemory(ctx, "cpuflash: scratch", 1<<40)
	}}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{x}, MemoryBudget: 1 << 20})
	_, err := e.Forward(context.Background(), problem(t), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1), e.Stats().Fallbacks["cpuflash: memory budget"])
}

func TestFloat32GradientsOfHalfInputs(t *testing.T) {
	e, _ := quietEngine(t, Params{})
	p := problem(t)
	for _, name := range []string{"Q", "K", "V"} {
		src := map[string]**tensor.Tensor{"Q": &p.Q, "K": &p.K, "V": &p.V}[name]
		h, err := (*src).Convert(tensor.Float16)
		require.NoError(t, err)
		*src = h
	}
	p.GradDType = tensor.Float32
	ctx := context.Background()
	s, err := e.Forward(ctx, p, nil)
	require.NoError(t, err)
	assert.Equal(t, tensor.Float16, s.O.DType())
	g, err := e.Backward(ctx, p, s, s.O, nil)
	require.NoError(t, err)
	for _, x := range []*tensor.Tensor{g.DQ, g.DK, g.DV} {
		assert.Equal(t, tensor.Float32, x.DType())
	}
}
