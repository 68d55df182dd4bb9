package fallback

import (
	"context"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Executor adapts the reference to spec.Executor. It is the engine's executor of last
// resort: it runs every valid problem whose tensors are host visible.
type Executor struct{}

var _ spec.Executor = (*Executor)(nil)

// NewExecutor returns the reference executor.
func NewExecutor() *Executor { return &Executor{} }

// Name returns "reference".
func (*Executor) Name() string { return executorName }

// Priority returns 0, the lowest: every other executor uses a positive priority and is
// tried first.
func (*Executor) Priority() int { return 0 }

// Supports returns nil for every valid problem whose Q, K and V the CPU can read; an
// invalid problem gets its validation error, unreadable storage an error wrapping
// spec.ErrUnsupported.
func (*Executor) Supports(p *spec.Problem) error {
	if err := spec.Validate(p); err != nil {
		return err
	}
	for _, a := range []struct {
		arg string
		t   *tensor.Tensor
	}{{"Q", p.Q}, {"K", p.K}, {"V", p.V}} {
		if err := hostVisible(a.arg, a.t); err != nil {
			return err
		}
	}
	return nil
}

// Forward is the package's ForwardContext; destinations in into receive a copy of the
// result.
func (*Executor) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.ValidateSavedInto(p, into); err != nil {
		return nil, err
	}
	s, err := ForwardContext(ctx, p)
	if err != nil {
		return nil, err
	}
	return spec.FillSaved(into, s)
}

// Backward is the package's BackwardContext; destinations in into receive a copy of the
// result.
func (*Executor) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	if err := spec.ValidateGradsInto(p, s, dO, into); err != nil {
		return nil, err
	}
	g, err := BackwardContext(ctx, p, s, dO)
	if err != nil {
		return nil, err
	}
	return spec.FillGrads(into, g)
}
