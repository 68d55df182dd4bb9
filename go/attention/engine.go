package attention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
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
	// Debug logs every dispatch. NewEngine also turns it on when ORCHARD_DEBUG is a true
	// value of strconv.ParseBool ("1", "true", ...).
	Debug bool
	// MemoryBudget caps the working memory of each call, in bytes, for contexts that do not
	// set one with spec.WithMemoryBudget; 0 means spec.DefaultMemoryBudget (half the
	// machine's memory).
	MemoryBudget int64
}

// Stats is a snapshot of what an Engine has done.
type Stats struct {
	// Calls counts completed forward and backward calls per executor name.
	Calls map[string]int64
	// Fallbacks counts hand-overs to the next executor per "executor: cause", where the
	// cause is one of spec's fixed set (spec.CauseOf), so the map stays bounded.
	Fallbacks map[string]int64
	// FallbackDetail holds, per key of Fallbacks, the text of the latest such error.
	FallbackDetail map[string]string
	// Copies and CopyBytes count every copy made for the engine's calls: the preparer's
	// (inputs copied to fit an executor) and the executors' own (uploads, downloads,
	// staging), as totals; CopiesByKind splits them by kind of copy.
	Copies, CopyBytes int64
	CopiesByKind      allocator.CopyStats
}

// CopyReporter is implemented by executors that copy data themselves (uploads to a device,
// downloads, staging): the engine adds their counts to Stats.
type CopyReporter interface {
	CopyStats() allocator.CopyStats
}

// Engine dispatches attention calls to executors. It is safe for concurrent use.
type Engine struct {
	executors []spec.Executor
	preparer  *allocator.Preparer
	strict    bool
	budget    int64
	log       *slog.Logger
	debug     bool

	mu        sync.Mutex
	closed    bool
	calls     map[string]int64
	fallbacks map[string]int64
	detail    map[string]string
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
	if p.MemoryBudget < 0 {
		return nil, &spec.ArgError{Arg: "Params.MemoryBudget", Rule: fmt.Sprintf("is %d; must be ≥ 0 (0 selects spec.DefaultMemoryBudget)", p.MemoryBudget)}
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
		budget:    p.MemoryBudget,
		log:       logger,
		debug:     p.Debug || debugFromEnv(),
		calls:     map[string]int64{},
		fallbacks: map[string]int64{},
		detail:    map[string]string{},
	}, nil
}

// debugFromEnv reads ORCHARD_DEBUG: any value strconv.ParseBool takes as true ("1", "t",
// "true", "TRUE", ...) turns dispatch logging on.
func debugFromEnv() bool {
	on, err := strconv.ParseBool(os.Getenv("ORCHARD_DEBUG"))
	return err == nil && on
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
	byKind := e.preparer.CopyStats()
	for _, x := range e.executors {
		if r, ok := x.(CopyReporter); ok {
			byKind = byKind.Merge(r.CopyStats())
		}
	}
	total := byKind.Total()
	return Stats{
		Calls: cloneMap(e.calls), Fallbacks: cloneMap(e.fallbacks), FallbackDetail: maps.Clone(e.detail),
		Copies: total.Count, CopyBytes: total.Bytes, CopiesByKind: byKind,
	}
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

// Forward computes O and L with the first executor that supports p and completes. into
// may be nil; its non-nil fields are caller-provided destinations (as PyTorch's out=,
// checked by spec.ValidateSavedInto) that are filled and returned, so a training loop
// allocates no outputs. After an error their contents are unspecified. The signature is
// spec.Executor's, so an Engine can stand wherever an executor can.
func (e *Engine) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	if err := e.begin(ctx); err != nil {
		return nil, err
	}
	if err := spec.Validate(p); err != nil {
		return nil, err
	}
	if err := spec.ValidateSavedInto(p, into); err != nil {
		return nil, err
	}
	ctx = e.withBudget(ctx)
	var out *spec.Saved
	err := e.dispatch(ctx, "forward", p, func(x spec.Executor) error {
		in, err := e.prepare(x, p)
		if err != nil {
			return err
		}
		s, err := x.Forward(ctx, in, into)
		if err != nil {
			return err
		}
		if err := checkSaved(p, s, into); err != nil {
			return err
		}
		out = s
		return nil
	})
	return out, err
}

// Backward computes dQ, dK and dV with the first executor that supports p and completes.
// Any executor may take the backward of any executor's forward: they share the contract.
// into is as in Forward (checked by spec.ValidateGradsInto).
func (e *Engine) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	if err := e.begin(ctx); err != nil {
		return nil, err
	}
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	if err := spec.ValidateGradsInto(p, s, dO, into); err != nil {
		return nil, err
	}
	ctx = e.withBudget(ctx)
	var out *spec.Grads
	err := e.dispatch(ctx, "backward", p, func(x spec.Executor) error {
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
			// L keeps its dtype (float32 or float64, both valid) but must be where x
			// can read it: a private L from a GPU forward is staged for a CPU executor.
			ln := n.Needs()
			ln.DType = 0
			l, err := e.preparer.Prepare(s.L, ln)
			if err != nil {
				return err
			}
			if o != s.O || l != s.L {
				sv = &spec.Saved{O: o, L: l}
			}
		}
		g, err := x.Backward(ctx, in, sv, dOp, into)
		if err != nil {
			return err
		}
		if err := checkGrads(p, g, into); err != nil {
			return err
		}
		out = g
		return nil
	})
	return out, err
}

// begin refuses calls after Close and calls whose context has already ended.
func (e *Engine) begin(ctx context.Context) error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if ctx == nil {
		return &spec.ArgError{Arg: "ctx", Rule: "must not be nil (use context.Background())"}
	}
	return ctx.Err()
}

// withBudget applies the engine's memory budget to a context that sets none.
func (e *Engine) withBudget(ctx context.Context) context.Context {
	if _, set := spec.ContextMemoryBudget(ctx); e.budget > 0 && !set {
		return spec.WithMemoryBudget(ctx, e.budget)
	}
	return ctx
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

// dispatch tries the executors in order. run performs the call on one executor. A
// cancelled context ends the call at once: it is the caller's decision, not a fallback.
func (e *Engine) dispatch(ctx context.Context, op string, p *spec.Problem, run func(spec.Executor) error) error {
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
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("attention: %s cancelled: %w", op, cerr)
		}
		cause := spec.CauseOf(err)
		key := x.Name() + ": " + string(cause)
		skipped = append(skipped, key)
		failures = append(failures, fmt.Errorf("%s: %w", x.Name(), err))
		e.mu.Lock()
		e.fallbacks[key]++
		_, seen := e.detail[key]
		e.detail[key] = err.Error()
		e.mu.Unlock()
		if !seen {
			// Each distinct (executor, cause) is logged once: a decline at Info, a failure
			// at Warn; the counters in Stats keep the totals.
			level := slog.LevelWarn
			msg := "orchard: attention executor failed, falling back"
			if cause == spec.CauseUnsupported {
				level, msg = slog.LevelInfo, "orchard: attention executor declined the problem"
			}
			e.log.Log(ctx, level, msg, "op", op, "executor", x.Name(), "cause", string(cause), "detail", err.Error())
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
			err = &panicError{value: fmt.Sprint(r)}
		}
	}()
	return run(x)
}

// panicError is an executor panic turned into an error.
type panicError struct{ value string }

func (e *panicError) Error() string             { return "panic: " + e.value }
func (e *panicError) FallbackCause() spec.Cause { return spec.CausePanic }

// badOutput is malformed executor output, which counts as a failure.
type badOutput struct{ msg string }

func (e *badOutput) Error() string             { return e.msg }
func (e *badOutput) FallbackCause() spec.Cause { return spec.CauseBadOutput }

func badOutputf(format string, args ...any) error {
	return &badOutput{msg: fmt.Sprintf(format, args...)}
}

// checkSaved rejects malformed executor output, which then counts as a failure.
func checkSaved(p *spec.Problem, s *spec.Saved, into *spec.Saved) error {
	if s == nil || s.O == nil || s.L == nil {
		return badOutputf("returned no output")
	}
	if into != nil && ((into.O != nil && s.O != into.O) || (into.L != nil && s.L != into.L)) {
		return badOutputf("did not return the destination tensors it was given")
	}
	d := p.Dims()
	if !s.O.SameShape(p.Q) || s.O.DType() != p.Q.DType() {
		return badOutputf("returned O of shape %v %v, want %v %v", s.O.Shape(), s.O.DType(), p.Q.Shape(), p.Q.DType())
	}
	if l := s.L.Shape(); len(l) != 3 || l[0] != d.B || l[1] != d.H || l[2] != d.N {
		return badOutputf("returned L of shape %v, want [%d %d %d]", l, d.B, d.H, d.N)
	}
	if dt := s.L.DType(); dt != tensor.Float32 && dt != tensor.Float64 {
		return badOutputf("returned L of dtype %v, want float32 or float64", dt)
	}
	return nil
}

func checkGrads(p *spec.Problem, g *spec.Grads, into *spec.Grads) error {
	if g == nil || g.DQ == nil || g.DK == nil || g.DV == nil {
		return badOutputf("returned no gradients")
	}
	if into != nil && ((into.DQ != nil && g.DQ != into.DQ) || (into.DK != nil && g.DK != into.DK) || (into.DV != nil && g.DV != into.DV)) {
		return badOutputf("did not return the destination tensors it was given")
	}
	gt := p.GradDTypeValue()
	for _, c := range []struct {
		name      string
		got, like *tensor.Tensor
	}{{"dQ", g.DQ, p.Q}, {"dK", g.DK, p.K}, {"dV", g.DV, p.V}} {
		if !c.got.SameShape(c.like) || c.got.DType() != gt {
			return badOutputf("returned %s of shape %v %v, want %v %v", c.name, c.got.Shape(), c.got.DType(), c.like.Shape(), gt)
		}
	}
	return nil
}
