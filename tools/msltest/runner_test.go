package msltest

import (
	"testing"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
	"github.com/orchard-ml/orchard/tools/msltest/emuexec"
)

// requireEmulator skips the test when the emulator cannot run (no cgo, so no C++
// compiler through it).
func requireEmulator(t *testing.T) {
	t.Helper()
	if !mslemu.Available() {
		t.Skip("the MSL emulator is unavailable (it runs on Linux through cgo with a C++ compiler, g++ ≥ 12): skipping the kernel tests")
	}
}

// runner launches a plan's dispatches on the emulator (emuexec.Runner) with the plan's
// function constants, as the Metal executor specialises its pipelines.
type runner struct {
	opts mslemu.Options
}

func (r runner) forward(pl *mslplan.Plan, p *spec.Problem) (*spec.Saved, error) {
	return emuexec.Runner{Options: r.opts}.Forward(pl, p)
}

func (r runner) backward(pl *mslplan.Plan, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, []float32, error) {
	return emuexec.Runner{Options: r.opts}.Backward(pl, p, s, dO)
}
