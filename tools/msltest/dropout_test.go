package msltest

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// TestDropoutMatchesPhiloxBitForBit reads the forward's dropout decisions directly: with
// V the identity (M ≤ D), O = P' so O[i][j] is zero exactly where element (i, j) was
// dropped. Every decision must be package philox's, for every (b, h, i, j), including
// seeds and offsets with high bits set and keys past the first Philox block.
func TestDropoutMatchesPhiloxBitForBit(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(7, 11))
	tests := []struct {
		dt     tensor.DType
		p      float64
		seed   uint64
		offset uint64
		tiles  mslplan.Tiles
	}{
		{tensor.Float32, 0.5, 0xDEADBEEFCAFEF00D, 0x123456789ABCDEF0, testTiles(32)},
		{tensor.Float16, 0.3, 1, 0, testTiles(32)},
		{tensor.BFloat16, 0.7, rng.Uint64(), rng.Uint64(), testTiles(32)},
	}
	for _, tt := range tests {
		t.Run(tt.dt.String(), func(t *testing.T) {
			const b, h, n, m, d = 2, 2, 37, 29, 32
			q, _, err := randTensor(rng, tt.dt, [4]int{b, h, n, d}, false)
			require.NoError(t, err)
			k, _, err := randTensor(rng, tt.dt, [4]int{b, 1, m, d}, false)
			require.NoError(t, err)
			eye := make([]float64, b*m*d)
			for bb := 0; bb < b; bb++ {
				for j := 0; j < m; j++ {
					eye[(bb*m+j)*d+j] = 1
				}
			}
			v, err := tensor.FromFloat64s(tt.dt, eye, b, 1, m, d)
			require.NoError(t, err)
			p := &spec.Problem{Q: q, K: k, V: v, Options: spec.Options{
				Scale:   0.05, // keeps every probability far from underflow
				Dropout: spec.Dropout{P: tt.p, Seed: tt.seed, Offset: tt.offset},
			}}
			pl, err := mslplan.New(mslplan.Request{Problem: p, Family: mslplan.Apple7, Tiles: &tt.tiles})
			require.NoError(t, err)
			s, err := runner{}.forward(pl, p)
			require.NoError(t, err)
			o := float64s(t, s.O)
			stream := philox.NewStream(tt.p, tt.seed, tt.offset)
			dropped, mismatches := 0, 0
			for bb := 0; bb < b; bb++ {
				for hh := 0; hh < h; hh++ {
					for i := 0; i < n; i++ {
						row := philox.Row(bb, hh, i, h, n)
						for j := 0; j < m; j++ {
							got := o[((bb*h+hh)*n+i)*d+j]
							keep := stream.Keep(row, j)
							if !keep {
								dropped++
							}
							if keep != (got != 0) {
								mismatches++
							}
						}
					}
				}
			}
			assert.Zero(t, mismatches, "dropout decisions that differ from package philox")
			frac := float64(dropped) / float64(b*h*n*m)
			assert.InDelta(t, tt.p, frac, 0.05, "dropped fraction")
		})
	}
}
