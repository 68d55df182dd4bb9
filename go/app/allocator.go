package app

import (
	"cmp"
	"slices"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/spec"
)

// Strategy is an allocator strategy with the priority that ranks it among the others in
// the "orchard.strategies" group.
type Strategy struct {
	Name     string
	Priority int
	Strategy allocator.Strategy
}

// HostStrategy is plain Go memory, priority 0: the strategy of last resort. (On darwin a
// Metal shared-memory strategy joins the group with a higher priority.)
func HostStrategy() Strategy {
	return Strategy{Name: "host", Priority: 0, Strategy: allocator.NewHost()}
}

// NewPreparer returns a Preparer over the highest-priority strategy (ties by name).
func NewPreparer(strategies []Strategy) (*allocator.Preparer, error) {
	if len(strategies) == 0 {
		return nil, &spec.ArgError{Arg: "strategies", Rule: "is empty; provide at least HostStrategy()"}
	}
	for _, s := range strategies {
		if s.Strategy == nil {
			return nil, &spec.ArgError{Arg: "strategies[" + s.Name + "]", Rule: "has no Strategy"}
		}
	}
	best := slices.MinFunc(strategies, func(a, b Strategy) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return allocator.NewPreparer(best.Strategy), nil
}
