package emuexec

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// Name is the executor's name.
const Name = "mslemu"

// Params configures an Executor.
type Params struct {
	// Family selects the tile table (mslplan.Apple7 when zero).
	Family mslplan.GPUFamily
	// Runner launches the kernels (thread order, function constants).
	Runner Runner
	// Priority is what Priority reports; an emulator has no business in an engine's
	// order, so the zero value is fine.
	Priority int
}

// Executor is a spec.Executor that runs the Metal kernels under emulation, planned for
// one GPU family. It is safe for concurrent use (the emulator serialises launches).
type Executor struct {
	family   mslplan.GPUFamily
	runner   Runner
	priority int

	mu       sync.Mutex
	launched map[string]int
}

var _ spec.Executor = (*Executor)(nil)

// New returns an executor, or an error wrapping mslemu.ErrUnavailable where the emulator
// cannot run.
func New(p Params) (*Executor, error) {
	if !mslemu.Available() {
		return nil, fmt.Errorf("emuexec: %w", mslemu.ErrUnavailable)
	}
	if p.Family == 0 {
		p.Family = mslplan.Apple7
	}
	return &Executor{family: p.Family, runner: p.Runner, priority: p.Priority, launched: map[string]int{}}, nil
}

// Name returns Name.
func (e *Executor) Name() string { return Name }

// Priority returns Params.Priority.
func (e *Executor) Priority() int { return e.priority }

// Family returns the GPU family whose tile table the executor plans with.
func (e *Executor) Family() mslplan.GPUFamily { return e.family }

// Supports reports whether the kernels can run p: mslplan accepts it and the emulator
// has every kernel of the plan.
func (e *Executor) Supports(p *spec.Problem) error {
	pl, err := mslplan.New(mslplan.Request{Problem: p, Family: e.family})
	if err != nil {
		return err
	}
	return e.compiled(pl)
}

func (e *Executor) compiled(pl *mslplan.Plan) error {
	kernels := mslemu.Kernels()
	for _, d := range pl.Dispatches() {
		if !slices.Contains(kernels, d.Name) {
			return spec.Unsupported(Name, "kernel %s is not compiled into the emulator", d.Name)
		}
	}
	return nil
}

// Launched returns how many times each kernel has been launched, by name.
func (e *Executor) Launched() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.launched))
	for k, v := range e.launched {
		out[k] = v
	}
	return out
}

// LaunchedNames returns the names of the kernels launched so far, sorted.
func (e *Executor) LaunchedNames() []string {
	m := e.Launched()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (e *Executor) count(ds ...mslplan.Dispatch) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range ds {
		e.launched[d.Name]++
	}
}

// Forward computes O and L of p (see spec.Executor).
func (e *Executor) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pl, err := mslplan.New(mslplan.Request{Problem: p, Family: e.family})
	if err != nil {
		return nil, err
	}
	if err := spec.ValidateSavedInto(p, into); err != nil {
		return nil, err
	}
	if err := e.compiled(pl); err != nil {
		return nil, err
	}
	s, err := e.runner.Forward(pl, p)
	if err != nil {
		return nil, err
	}
	e.count(pl.Forward)
	return spec.FillSaved(into, s)
}

// Backward computes dQ, dK and dV (see spec.Executor). It checks ctx before the
// dispatches and after them (an emulated launch cannot be interrupted).
func (e *Executor) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	if err := spec.ValidateGradsInto(p, s, dO, into); err != nil {
		return nil, err
	}
	pl, err := mslplan.New(mslplan.Request{Problem: p, O: s.O, DO: dO, Family: e.family})
	if err != nil {
		return nil, err
	}
	if err := e.compiled(pl); err != nil {
		return nil, err
	}
	g, _, err := e.runner.Backward(pl, p, s, dO)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.count(pl.Backward()...)
	return spec.FillGrads(into, g)
}
