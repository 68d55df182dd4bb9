package msltest

import (
	"flag"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// casesPerConfig random problems per emulated config: 14 configs give 224 problems, each
// run forward and backward.
const casesPerConfig = 16

var seed = flag.Uint64("seed", 20240611, "seed of the random problems (vary it to explore)")

// TestKernelsMatchReference is the main check: every kernel, every dtype, every option,
// sizes that are not tile multiples, against go/fallback.
func TestKernelsMatchReference(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(*seed, 4))
	n := 0
	for _, cfg := range emulated {
		for i := 0; i < casesPerConfig; i++ {
			c, err := randCase(rng, n, cfg)
			require.NoError(t, err)
			n++
			t.Run(c.name, func(t *testing.T) { checkCase(t, c) })
		}
	}
	require.GreaterOrEqual(t, n, 200)
}
