package app

import (
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
)

// CPUFlashExecutor returns the CPU flash executor at PriorityCPUFlash, using every CPU
// (GOMAXPROCS at the time of each call).
func CPUFlashExecutor() (spec.Executor, error) {
	return cpuflash.New(cpuflash.Params{Priority: PriorityCPUFlash}), nil
}
