package cpuflash

import "github.com/orchard-ml/orchard/go/attention/spec"

// Pass selects which FLOPs FLOPs counts.
type Pass uint8

// Passes.
const (
	PassForward         Pass = iota + 1 // O and L
	PassBackward                        // dQ, dK, dV
	PassForwardBackward                 // both
)

// FLOPs counts floating-point operations the way FlashAttention's benchmarks do, so that
// GFLOP/s figures compare across implementations: the forward is two matmuls,
// 4·B·H·N·M·D; the backward 2.5 times that; causal masking halves both. Masks, windows,
// lengths, dropout and the recomputation a backward does are not counted.
func FLOPs(d spec.Dims, causal bool, pass Pass) float64 {
	f := 4 * float64(d.B) * float64(d.H) * float64(d.N) * float64(d.M) * float64(d.D)
	if causal {
		f /= 2
	}
	switch pass {
	case PassForward:
		return f
	case PassBackward:
		return 2.5 * f
	case PassForwardBackward:
		return 3.5 * f
	}
	return 0
}
