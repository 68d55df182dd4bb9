package attention

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// ErrClosed is returned by an Engine after Close.
var ErrClosed = errors.New("attention: engine is closed")

// ErrFallback is wrapped by the error strict mode returns instead of falling back.
var ErrFallback = errors.New("attention: fallback refused in strict mode")

// ErrAllFailed is wrapped when no executor, not even the reference, completed a call.
var ErrAllFailed = errors.New("attention: every executor failed")

// referenceName is the name of go/fallback's executor.
const referenceName = "reference"

// Needer is implemented by executors that want their inputs prepared: contiguous, of a
// dtype, or in a storage kind. Executors without it get the caller's tensors unchanged.
type Needer interface {
	Needs() allocator.Needs
}

// Params configure an Engine.
type Params struct {
	// Executors in any order; they run by Priority, higher first (ties by Name). The
	// reference executor is appended last when the list does not already hold one named
	// "reference".
	Executors []spec.Executor
	// Preparer makes inputs fit executors; nil means a host Preparer.
	Preparer *allocator.Preparer
	// Strict turns any fallback — an executor declining or failing — into an error.
	Strict bool
	// Logger receives fallback warnings and, with Debug, dispatch lines; nil means
	// slog.Default().
	Logger *slog.Logger
	// Debug logs every dispatch. NewEngine also turns it on when ORCHARD_DEBUG=1.
	Debug bool
}

// Stats is a snapshot of what an Engine has done.
type Stats struct {
	// Calls counts completed forward and backward calls per executor name.
	Calls map[string]int64
	// Fallbacks counts hand-overs to the next executor per "executor: reason".
	Fallbacks map[string]int64
	// Copies and CopyBytes count inputs the allocator had to copy to fit an executor.
	Copies, CopyBytes int64
}

// Engine dispatches attention calls to executors. It is safe for concurrent use.
type Engine struct {
	executors []spec.Executor
	preparer  *allocator.Preparer
	strict    bool
	log       *slog.Logger
	debug     bool

	mu        sync.Mutex
	closed    bool
	calls     map[string]int64
	fallbacks map[string]int64
	logged    map[string]bool
}

// NewEngine builds an Engine. It fails when two executors share a name.
func NewEngine(p Params) (*Engine, error) {
	execs := slices.Clone(p.Executors)
	names := map[string]bool{}
	for i, e := range execs {
		if e == nil {
			return nil, &spec.ArgError{Arg: fmt.Sprintf("Params.Executors[%d]", i), Rule: "must not be nil"}
		}
		if names[e.Name()] {
			return nil, &spec.ArgError{Arg: "Params.Executors", Rule: fmt.Sprintf("two executors are named %q", e.Name())}
		}
		names[e.Name()] = true
	}
	var ref spec.Executor
	if !names[referenceName] {
		ref = fallback.NewExecutor()
	} else {
		i := slices.IndexFunc(execs, func(e spec.Executor) bool { return e.Name() == referenceName })
		ref = execs[i]
		execs = slices.Delete(execs, i, i+1)
	}
	sort.SliceStable(execs, func(i, j int) bool {
		if execs[i].Priority() != execs[j].Priority() {
			return execs[i].Priority() > execs[j].Priority()
		}
		return execs[i].Name() < execs[j].Name()
	})
	execs = append(execs, ref) // the reference is always last
	prep := p.Preparer
	if prep == nil {
		prep = allocator.NewPreparer(allocator.NewHost())
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Engine{
		executors: execs,
		preparer:  prep,
		strict:    p.Strict,
		log:       logger,
		debug:     p.Debug || os.Getenv("ORCHARD_DEBUG") == "1",
		calls:     map[string]int64{},
		fallbacks: map[string]int64{},
		logged:    map[string]bool{},
	}, nil
}

// Executors returns the executor names in the order they are tried.
func (e *Engine) Executors() []string {
	out := make([]string, len(e.executors))
	for i, x := range e.executors {
		out[i] = x.Name()
	}
	return out
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	copies, bytes := e.preparer.Counts()
	return Stats{Calls: cloneMap(e.calls), Fallbacks: cloneMap(e.fallbacks), Copies: copies, CopyBytes: bytes}
}

func cloneMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Close releases executors that hold resources (those implementing io.Closer). Calls
// after Close fail with ErrClosed. Close is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	var errs []error
	for _, x := range e.executors {
		if c, ok := x.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing executor %s: %w", x.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Forward computes O and L with the first executor that supports p and completes.
func (e *Engine) Forward(p *spec.Problem) (*spec.Saved, error) {
	if err := spec.Validate(p); err != nil {
		return nil, err
	}
	var out *spec.Saved
	err := e.dispatch("forward", p, func(x spec.Executor) error {
		in, err := e.prepare(x, p)
		if err != nil {
			return err
		}
		s, err := x.Forward(in)
		if err != nil {
			return err
		}
		if err := checkSaved(p, s); err != nil {
			return err
		}
		out = s
		return nil
	})
	return out, err
}

// Backward computes dQ, dK and dV with the first executor that supports p and completes.
// Any executor may take the backward of any executor's forward: they share the contract.
func (e *Engine) Backward(p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, error) {
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	var out *spec.Grads
	err := e.dispatch("backward", p, func(x spec.Executor) error {
		in, err := e.prepare(x, p)
		if err != nil {
			return err
		}
		sv, dOp := s, dO
		if n, ok := x.(Needer); ok {
			o, err := e.preparer.Prepare(s.O, n.Needs())
			if err != nil {
				return err
			}
			if dOp, err = e.preparer.Prepare(dO, n.Needs()); err != nil {
				return err
			}
			if o != s.O {
				sv = &spec.Saved{O: o, L: s.L}
			}
		}
		g, err := x.Backward(in, sv, dOp)
		if err != nil {
			return err
		}
		if err := checkGrads(p, g); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

// prepare returns p with Q, K and V made to fit x; p itself when they already do.
func (e *Engine) prepare(x spec.Executor, p *spec.Problem) (*spec.Problem, error) {
	n, ok := x.(Needer)
	if !ok {
		return p, nil
	}
	needs := n.Needs()
	q, err := e.preparer.Prepare(p.Q, needs)
	if err != nil {
		return nil, err
	}
	k, err := e.preparer.Prepare(p.K, needs)
	if err != nil {
		return nil, err
	}
	v, err := e.preparer.Prepare(p.V, needs)
	if err != nil {
		return nil, err
	}
	if q == p.Q && k == p.K && v == p.V {
		return p, nil
	}
	cp := *p
	cp.Q, cp.K, cp.V = q, k, v
	return &cp, nil
}

// dispatch tries the executors in order. run performs the call on one executor.
func (e *Engine) dispatch(op string, p *spec.Problem, run func(spec.Executor) error) error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var skipped []string
	var failures []error
	for _, x := range e.executors {
		err := x.Supports(p)
		if err == nil {
			err = runSafely(x, run)
			if err == nil {
				e.mu.Lock()
				e.calls[x.Name()]++
				e.mu.Unlock()
				if e.debug {
					d := p.Dims()
					e.log.Info("orchard: attention dispatch", "op", op, "executor", x.Name(),
						"B", d.B, "H", d.H, "Hkv", d.Hkv, "N", d.N, "M", d.M, "D", d.D,
						"dtype", p.Q.DType().String(), "skipped", strings.Join(skipped, "; "))
				}
				return nil
			}
		}
		reason := err.Error()
		key := x.Name() + ": " + reason
		skipped = append(skipped, key)
		failures = append(failures, fmt.Errorf("%s: %w", x.Name(), err))
		e.mu.Lock()
		e.fallbacks[key]++
		first := !e.logged[key]
		e.logged[key] = true
		e.mu.Unlock()
		declined := errors.Is(err, spec.ErrUnsupported)
		if first && !declined {
			e.log.Warn("orchard: attention executor failed, falling back", "op", op, "executor", x.Name(), "reason", reason)
		}
		if e.strict {
			return fmt.Errorf("%w: %s %s: %w", ErrFallback, op, x.Name(), err)
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrAllFailed, op, errors.Join(failures...))
}

// runSafely turns a panic inside an executor into an error, so that a bug in one
// executor becomes a visible fallback rather than a crash of the caller.
func runSafely(x spec.Executor, run func(spec.Executor) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return run(x)
}

// checkSaved rejects malformed executor output, which then counts as a failure.
func checkSaved(p *spec.Problem, s *spec.Saved) error {
	if s == nil || s.O == nil || s.L == nil {
		return errors.New("returned no output")
	}
	d := p.Dims()
	if !s.O.SameShape(p.Q) || s.O.DType() != p.Q.DType() {
		return fmt.Errorf("returned O of shape %v %v, want %v %v", s.O.Shape(), s.O.DType(), p.Q.Shape(), p.Q.DType())
	}
	if l := s.L.Shape(); len(l) != 3 || l[0] != d.B || l[1] != d.H || l[2] != d.N {
		return fmt.Errorf("returned L of shape %v, want [%d %d %d]", l, d.B, d.H, d.N)
	}
	return nil
}

func checkGrads(p *spec.Problem, g *spec.Grads) error {
	if g == nil || g.DQ == nil || g.DK == nil || g.DV == nil {
		return errors.New("returned no gradients")
	}
	for _, c := range []struct {
		name      string
		got, like *tensor.Tensor
	}{{"dQ", g.DQ, p.Q}, {"dK", g.DK, p.K}, {"dV", g.DV, p.V}} {
		if !c.got.SameShape(c.like) || c.got.DType() != c.like.DType() {
			return fmt.Errorf("returned %s of shape %v %v, want %v %v", c.name, c.got.Shape(), c.got.DType(), c.like.Shape(), c.like.DType())
		}
	}
	return nil
}
