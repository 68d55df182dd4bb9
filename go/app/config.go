package app

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/orchard-ml/orchard/go/attention/spec"
)

// Executor choices for Config.Executor.
const (
	ExecutorAuto      = "auto"      // every available executor by priority, the reference last
	ExecutorCPUFlash  = "cpuflash"  // the CPU flash executor, the reference behind it
	ExecutorReference = "reference" // the reference alone
	ExecutorMetal     = "metal"     // the Metal executor, the reference behind it; an error where there is none
)

// Priorities of the executors app registers; higher runs first. The reference reports 0.
const (
	PriorityMetal    = 200
	PriorityCPUFlash = 100
)

// Config is what the application wires.
type Config struct {
	// Executor selects the executors: ExecutorAuto ("" means auto), ExecutorCPUFlash,
	// ExecutorReference or ExecutorMetal.
	Executor string
	// Strict turns any fallback into an error.
	Strict bool
	// Debug logs every dispatch (ORCHARD_DEBUG=1 does too).
	Debug bool
	// Logger receives the Engine's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Choices lists the valid values of Config.Executor.
func Choices() []string {
	return []string{ExecutorAuto, ExecutorCPUFlash, ExecutorReference, ExecutorMetal}
}

// choice returns the resolved executor choice, or an *spec.ArgError.
func (c Config) choice() (string, error) {
	if c.Executor == "" {
		return ExecutorAuto, nil
	}
	if !slices.Contains(Choices(), c.Executor) {
		return "", &spec.ArgError{Arg: "Config.Executor", Rule: fmt.Sprintf("is %q; want one of %v", c.Executor, Choices())}
	}
	return c.Executor, nil
}
