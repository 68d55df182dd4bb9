package app

import (
	"cmp"
	"slices"
	"strings"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/spec"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// Strategy is an allocator strategy with the priority that ranks it among the others in
// the "orchard.strategies" group (fx value groups have no order).
type Strategy struct {
	Name     string
	Priority int
	Strategy allocator.Strategy
}

// Names of the strategies this package provides.
const (
	StrategyHost          = "host"
	StrategyMetalShared   = "metal-shared"
	StrategyMetalManaged  = "metal-managed"
	StrategyMetalPrivate  = "metal-private"
	priorityHost          = 0
	priorityPreferred     = 10  // shared on unified memory
	priorityAvailable     = -10 // a mode the device has but the preparer should not prefer
	priorityNeverPreparer = -30 // private: the preparer fills copies from the CPU
)

// HostStrategy is plain Go memory, priority 0: the strategy of last resort.
func HostStrategy() Strategy {
	return Strategy{Name: StrategyHost, Priority: priorityHost, Strategy: allocator.NewHost()}
}

// MetalStrategies returns a strategy per Metal storage mode of dev (the Metal executor's
// Device(), so that the executor binds what they allocate with no copy). The ranks
// decide the preparer's strategy, which it uses only for an executor whose Needs exclude
// host memory (the Metal executor accepts host memory and uploads it itself): on unified
// memory "metal-shared" outranks the host strategy; on a discrete GPU the host strategy
// stays first and "metal-managed" ranks above "metal-shared". "metal-private" ranks
// last: the preparer cannot fill private memory from the CPU; it is there for callers
// that allocate device tensors by name (StrategyNamed, allocator.Place).
func MetalStrategies(dev allocator.MetalDevice) ([]Strategy, error) {
	if dev == nil {
		return nil, &spec.ArgError{Arg: "dev", Rule: "must not be nil"}
	}
	shared, managed := priorityPreferred, priorityAvailable-1
	if !dev.HasUnifiedMemory() {
		shared, managed = priorityAvailable-1, priorityAvailable
	}
	var out []Strategy
	for _, m := range []struct {
		name     string
		mode     metalrt.StorageMode
		priority int
	}{
		{StrategyMetalShared, metalrt.Shared, shared},
		{StrategyMetalManaged, metalrt.Managed, managed},
		{StrategyMetalPrivate, metalrt.Private, priorityNeverPreparer},
	} {
		s, err := allocator.NewMetalStrategy(dev, m.mode)
		if err != nil {
			return nil, err
		}
		out = append(out, Strategy{Name: m.name, Priority: m.priority, Strategy: s})
	}
	return out, nil
}

// StrategyNamed returns the strategy called name from a group: how a caller forces a
// storage mode for one tensor (allocator.Place(s, t)).
func StrategyNamed(strategies []Strategy, name string) (allocator.Strategy, error) {
	for _, s := range strategies {
		if s.Name == name && s.Strategy != nil {
			return s.Strategy, nil
		}
	}
	names := make([]string, 0, len(strategies))
	for _, s := range strategies {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return nil, &spec.ArgError{Arg: "name", Rule: "no strategy " + name + " among [" + strings.Join(names, ", ") + "]"}
}

// NewPreparer returns a Preparer over the highest-priority strategy (ties by name)
// whose memory the CPU can write (the preparer fills its copies from the CPU).
func NewPreparer(strategies []Strategy) (*allocator.Preparer, error) {
	if len(strategies) == 0 {
		return nil, &spec.ArgError{Arg: "strategies", Rule: "is empty; provide at least HostStrategy()"}
	}
	for _, s := range strategies {
		if s.Strategy == nil {
			return nil, &spec.ArgError{Arg: "strategies[" + s.Name + "]", Rule: "has no Strategy"}
		}
	}
	usable := slices.DeleteFunc(slices.Clone(strategies), func(s Strategy) bool { return !s.Strategy.Kind().HostVisible() })
	if len(usable) == 0 {
		return nil, &spec.ArgError{Arg: "strategies", Rule: "has no strategy whose memory the CPU can write; add HostStrategy()"}
	}
	best := slices.MinFunc(usable, func(a, b Strategy) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return allocator.NewPreparer(best.Strategy), nil
}
