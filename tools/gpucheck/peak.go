package main

import (
	"fmt"
	"strings"
)

// gpuClock is the GPU clock in GHz of a chip generation, derived from Apple's published
// FP32 TFLOPS: peak FLOP/s = cores × 128 ALUs × 2 (an FMA) × clock. Sources (Apple
// Newsroom): M1, 8 cores, 2.6 TFLOPS (2020-11-10) → 1.27 GHz; M1 Max, 32 cores,
// 10.4 TFLOPS (2021-10-18) → 1.27 GHz; M2, 10 cores, 3.6 TFLOPS (2022-06-06) → 1.41 GHz;
// M2 Max, 38 cores, 13.6 TFLOPS (2023-01-17) → 1.40 GHz. Apple has published no such
// figure for M3 and M4, so they are not in the table. metal-flash-attention's own figure
// agrees: 4400 gigainstructions/s on an M1 Max is 83 % of 32 × 128 × 1.296 GHz.
var gpuClock = []struct {
	chip  string // a prefix of the Metal device name after "Apple "
	ghz   float64
	where string
}{
	{"M1", 2.6e3 / (8 * 128 * 2), "Apple: M1 8-core GPU 2.6 TFLOPS"},
	{"M2", 3.6e3 / (10 * 128 * 2), "Apple: M2 10-core GPU 3.6 TFLOPS"},
}

// peakFor returns the GPU's peak in gigainstructions per second (cores × 128 × clock) and
// its source, or 0 and why not.
func peakFor(device string, cores int) (float64, string) {
	if cores <= 0 {
		return 0, "unknown (the GPU core count was not found), so % of peak is omitted"
	}
	name := strings.TrimPrefix(device, "Apple ")
	for _, c := range gpuClock {
		if strings.HasPrefix(name, c.chip) {
			return float64(cores) * 128 * c.ghz, fmt.Sprintf("%d cores × 128 ALUs × %.3f GHz = %.0f gigainstructions/s (clock from %s)",
				cores, c.ghz, float64(cores)*128*c.ghz, c.where)
		}
	}
	return 0, fmt.Sprintf("unknown for %q (Apple publishes no FP32 TFLOPS for it), so %% of peak is omitted", device)
}
