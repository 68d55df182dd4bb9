package step

import (
	"context"
	"testing"
)

// The engine's result through the CPU flash executor matches the exact reference: float32
// outputs and gradients of an N = 96, D = 32 problem within 1e-4 absolute (the CPU
// executor accumulates in float32; the reference in float64), on three random problems.
func TestStepMatchesReference(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		res, err := Run(context.Background(), seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.MaxDiff > 1e-4 {
			t.Errorf("seed %d: max |engine - reference| = %g, want <= 1e-4", seed, res.MaxDiff)
		}
		if res.Calls["cpuflash"] != 2 {
			t.Errorf("seed %d: calls %v, want cpuflash forward and backward (no fallback)", seed, res.Calls)
		}
	}
}
