package attention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// fake is an executor that behaves as told: it can decline, fail, panic, return
// malformed output, or succeed by returning a constant-filled output.
type fake struct {
	name     string
	priority int
	decline  string // Supports returns ErrUnsupported with this reason
	fail     error  // Forward/Backward return this error
	panics   bool
	badShape bool
	needs    *allocator.Needs

	mu   sync.Mutex
	seen []*spec.Problem
}

func (f *fake) Name() string  { return f.name }
func (f *fake) Priority() int { return f.priority }
func (f *fake) Supports(*spec.Problem) error {
	if f.decline != "" {
		return spec.Unsupported(f.name, "%s", f.decline)
	}
	return nil
}

func (f *fake) run(p *spec.Problem) error {
	f.mu.Lock()
	f.seen = append(f.seen, p)
	f.mu.Unlock()
	if f.panics {
		panic("kernel exploded")
	}
	return f.fail
}

func (f *fake) Forward(_ context.Context, p *spec.Problem, _ *spec.Saved) (*spec.Saved, error) {
	if err := f.run(p); err != nil {
		return nil, err
	}
	d := p.Dims()
	o, _ := tensor.New(p.Q.DType(), p.Q.Shape()...)
	if f.badShape {
		o, _ = tensor.New(p.Q.DType(), d.B, d.H, d.N+1, d.D)
	}
	l, _ := tensor.New(tensor.Float32, d.B, d.H, d.N)
	return &spec.Saved{O: o, L: l}, nil
}

func (f *fake) Backward(_ context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, _ *spec.Grads) (*spec.Grads, error) {
	if err := f.run(p); err != nil {
		return nil, err
	}
	dq, _ := tensor.New(p.Q.DType(), p.Q.Shape()...)
	dk, _ := tensor.New(p.K.DType(), p.K.Shape()...)
	dv, _ := tensor.New(p.V.DType(), p.V.Shape()...)
	if f.badShape {
		dv, _ = tensor.New(p.V.DType(), 1, 1, 1, 1)
	}
	return &spec.Grads{DQ: dq, DK: dk, DV: dv}, nil
}

type needyFake struct{ *fake }

func (n needyFake) Needs() allocator.Needs { return *n.needs }

func problem(t *testing.T) *spec.Problem {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(shape ...int) *tensor.Tensor { return attntest.Tensor(t, rng, tensor.Float32, shape...) }
	return &spec.Problem{Q: mk(1, 2, 3, 4), K: mk(1, 1, 5, 4), V: mk(1, 1, 5, 4)}
}

func ref() *fake { return &fake{name: "reference", priority: -1 << 30} }

func quietEngine(t *testing.T, p Params) (*Engine, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	p.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	e, err := NewEngine(p)
	require.NoError(t, err)
	return e, &buf
}

func TestOrderByPriorityReferenceLast(t *testing.T) {
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{
		&fake{name: "cpuflash", priority: 100},
		ref(),
		&fake{name: "metal", priority: 200},
		&fake{name: "another", priority: 100},
	}})
	assert.Equal(t, []string{"metal", "another", "cpuflash", "reference"}, e.Executors())

	// Without a reference in the list, the real one is appended.
	e2, _ := quietEngine(t, Params{Executors: []spec.Executor{&fake{name: "cpuflash", priority: 100}}})
	assert.Equal(t, []string{"cpuflash", "reference"}, e2.Executors())
}

func TestNewEngineRejectsDuplicatesAndNil(t *testing.T) {
	_, err := NewEngine(Params{Executors: []spec.Executor{&fake{name: "a"}, &fake{name: "a"}}})
	assert.ErrorIs(t, err, spec.ErrInvalid)
	_, err = NewEngine(Params{Executors: []spec.Executor{nil}})
	assert.ErrorIs(t, err, spec.ErrInvalid)
}

func TestFirstSupportingExecutorRuns(t *testing.T) {
	metal := &fake{name: "metal", priority: 200}
	cpu := &fake{name: "cpuflash", priority: 100}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{cpu, metal, ref()}})
	p := problem(t)
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	_, err = e.Backward(context.Background(), p, s, s.O, nil)
	require.NoError(t, err)
	assert.Len(t, metal.seen, 2)
	assert.Empty(t, cpu.seen)
	st := e.Stats()
	assert.Equal(t, map[string]int64{"metal": 2}, st.Calls)
	assert.Empty(t, st.Fallbacks)
}

// Every way an executor can fail hands the call to the next one, and is counted with
// its reason.
func TestEveryFallbackPath(t *testing.T) {
	cases := []struct {
		name       string
		exec       *fake
		wantReason string
		warned     bool
	}{
		{"declines", &fake{decline: "no Metal device"}, "no Metal device", false},
		{"fails", &fake{fail: errors.New("command buffer error: timeout")}, "command buffer error: timeout", true},
		{"panics", &fake{panics: true}, "panic: kernel exploded", true},
		{"malformed output", &fake{badShape: true}, "returned", true},
	}
	causes := map[string]spec.Cause{"declines": spec.CauseUnsupported, "fails": spec.CauseError, "panics": spec.CausePanic, "malformed output": spec.CauseBadOutput}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.exec.name, c.exec.priority = "metal", 200
			r := ref()
			e, logs := quietEngine(t, Params{Executors: []spec.Executor{c.exec, r}})
			p := problem(t)
			s, err := e.Forward(context.Background(), p, nil)
			require.NoError(t, err)
			_, err = e.Backward(context.Background(), p, s, s.O, nil)
			require.NoError(t, err)
			assert.Len(t, r.seen, 2, "the reference took both calls")
			st := e.Stats()
			assert.Equal(t, int64(2), st.Calls["reference"])
			// Forward and backward fail for the same cause: one bounded key, the detail
			// kept beside it.
			key := "metal: " + string(causes[c.name])
			require.Len(t, st.Fallbacks, 1)
			assert.Equal(t, int64(2), st.Fallbacks[key])
			assert.Contains(t, st.FallbackDetail[key], c.wantReason)
			if c.warned {
				assert.Contains(t, logs.String(), "falling back")
			} else {
				assert.NotContains(t, logs.String(), "falling back", "declining is not a failure")
			}
		})
	}
}

func TestFailureLoggedOncePerReason(t *testing.T) {
	bad := &fake{name: "metal", priority: 200, fail: errors.New("device lost")}
	e, logs := quietEngine(t, Params{Executors: []spec.Executor{bad, ref()}})
	p := problem(t)
	for i := 0; i < 5; i++ {
		_, err := e.Forward(context.Background(), p, nil)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "device lost"))
	assert.Equal(t, int64(5), e.Stats().Fallbacks["metal: error"])
	assert.Equal(t, "device lost", e.Stats().FallbackDetail["metal: error"])
}

func TestStrictModeRefusesFallback(t *testing.T) {
	for _, bad := range []*fake{
		{name: "metal", priority: 200, decline: "no device"},
		{name: "metal", priority: 200, fail: errors.New("boom")},
	} {
		r := ref()
		e, _ := quietEngine(t, Params{Executors: []spec.Executor{bad, r}, Strict: true})
		_, err := e.Forward(context.Background(), problem(t), nil)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrFallback)
		assert.Empty(t, r.seen, "strict mode must not run the next executor")
	}
	// Strict mode with a working first executor just runs.
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{&fake{name: "cpuflash", priority: 1}, ref()}, Strict: true})
	_, err := e.Forward(context.Background(), problem(t), nil)
	assert.NoError(t, err)
}

func TestAllFailed(t *testing.T) {
	r := ref()
	r.fail = errors.New("out of memory")
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{&fake{name: "cpuflash", decline: "float64"}, r}})
	_, err := e.Forward(context.Background(), problem(t), nil)
	assert.ErrorIs(t, err, ErrAllFailed)
	assert.ErrorContains(t, err, "out of memory")
	assert.ErrorContains(t, err, "float64")
}

func TestInvalidInputIsNotAFallback(t *testing.T) {
	r := ref()
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{r}})
	p := problem(t)
	p.Scale = -1
	_, err := e.Forward(context.Background(), p, nil)
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "Options.Scale", ae.Arg)
	assert.Empty(t, r.seen)
	assert.Empty(t, e.Stats().Fallbacks)
}

func TestPreparesOnlyWhatDoesNotFit(t *testing.T) {
	needs := allocator.Needs{Contiguous: true}
	x := needyFake{&fake{name: "cpuflash", priority: 100, needs: &needs}}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{x, ref()}})
	p := problem(t)
	_, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	assert.Same(t, p, x.seen[0], "contiguous inputs are passed through")
	assert.Zero(t, e.Stats().Copies)

	// A transposed K is not contiguous: only K is copied.
	q2 := *p
	k, _ := tensor.New(tensor.Float32, 1, 1, 4, 5)
	kview, err := k.Transpose(2, 3) // [1 1 5 4], not contiguous
	require.NoError(t, err)
	q2.K = kview
	_, err = e.Forward(context.Background(), &q2, nil)
	require.NoError(t, err)
	st := e.Stats()
	assert.Equal(t, int64(1), st.Copies)
	assert.Equal(t, int64(5*4*4), st.CopyBytes)
	got := x.seen[1]
	assert.Same(t, q2.Q, got.Q)
	assert.True(t, got.K.IsContiguous())
	assert.False(t, q2.K.IsContiguous(), "the caller's tensor is untouched")
}

func TestConcurrentUse(t *testing.T) {
	flaky := &fake{name: "metal", priority: 200, fail: errors.New("busy")}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{flaky, &fake{name: "cpuflash", priority: 100}, ref()}})
	p := problem(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				s, err := e.Forward(context.Background(), p, nil)
				if !assert.NoError(t, err) {
					return
				}
				_, err = e.Backward(context.Background(), p, s, s.O, nil)
				assert.NoError(t, err)
				_ = e.Stats()
			}
		}()
	}
	wg.Wait()
	st := e.Stats()
	assert.Equal(t, int64(400), st.Calls["cpuflash"])
	assert.Equal(t, int64(400), st.Fallbacks["metal: error"])
	assert.Equal(t, "busy", st.FallbackDetail["metal: error"])
}

type closer struct {
	*fake
	closed int
}

func (c *closer) Close() error { c.closed++; return fmt.Errorf("release failed") }

func TestCloseReleasesExecutorsOnce(t *testing.T) {
	c := &closer{fake: &fake{name: "metal", priority: 200}}
	e, _ := quietEngine(t, Params{Executors: []spec.Executor{c, ref()}})
	err := e.Close()
	assert.ErrorContains(t, err, "release failed")
	assert.NoError(t, e.Close())
	assert.Equal(t, 1, c.closed)
	_, err = e.Forward(context.Background(), problem(t), nil)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestDebugLogsEveryDispatch(t *testing.T) {
	e, logs := quietEngine(t, Params{Executors: []spec.Executor{&fake{name: "metal", priority: 2, decline: "no device"}, ref()}, Debug: true})
	_, err := e.Forward(context.Background(), problem(t), nil)
	require.NoError(t, err)
	out := logs.String()
	assert.Contains(t, out, "executor=reference")
	assert.Contains(t, out, "metal: ")
	assert.Contains(t, out, "no device")
	assert.Contains(t, out, "N=3")
}
