package msltest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// TestDeterministicAcrossSchedules runs the same problems with the emulated threads of
// each threadgroup scheduled in forward, reverse and shuffled order, twice each: the
// outputs must be the same bits every time. A missing barrier or a race between SIMD
// groups shows up as a difference; the kernels have no atomics, so the GPU's own
// scheduling cannot change the bits either.
func TestDeterministicAcrossSchedules(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(99, 1))
	schedules := []mslemu.Options{
		{Order: mslemu.Forward}, {Order: mslemu.Reverse},
		{Order: mslemu.Shuffle, Seed: 1}, {Order: mslemu.Shuffle, Seed: 2}, {Order: mslemu.Forward},
	}
	for i, cfg := range []emuConfig{emulated[0], emulated[5], emulated[8], emulated[10]} {
		c, err := randCase(rng, i, cfg)
		require.NoError(t, err)
		t.Run(c.name, func(t *testing.T) {
			pl := planFor(t, c)
			var first [][]byte
			for _, s := range schedules {
				r := runner{opts: s}
				saved, err := r.forward(pl, c.p)
				require.NoError(t, err)
				g, delta, err := r.backward(pl, c.p, saved, c.dO)
				require.NoError(t, err)
				out := [][]byte{raw(saved.O), raw(saved.L), raw(g.DQ), raw(g.DK), raw(g.DV), mslemu.Float32Bytes(delta)}
				if first == nil {
					first = out
					continue
				}
				for k, name := range []string{"O", "L", "dQ", "dK", "dV", "Delta"} {
					assert.True(t, bytes.Equal(first[k], out[k]), "%s differs under schedule %+v", name, s)
				}
			}
		})
	}
}

func raw(t *tensor.Tensor) []byte { return t.Storage().Bytes() }
