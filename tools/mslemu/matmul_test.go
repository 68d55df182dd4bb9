package mslemu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/tools/mslemu"
)

func requireEmulator(t *testing.T) {
	t.Helper()
	if !mslemu.Available() {
		t.Skip("mslemu needs cgo and a C++17 compiler")
	}
}

func randMatrix(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// matmulRef is C = A * B in float64.
func matmulRef(a, b []float32, m, n, k int) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				s += float64(a[i*k+l]) * float64(b[l*n+j])
			}
			c[i*n+j] = s
		}
	}
	return c
}

func TestMatmulTiled(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		kernel  string
		tile    int
		m, n, k int
	}{
		{"test_matmul_tiled_f32_t8", 8, 8, 8, 8},
		{"test_matmul_tiled_f32_t8", 8, 37, 19, 23},
		{"test_matmul_tiled_f32_t16", 16, 64, 64, 64},
		{"test_matmul_tiled_f32_t16", 16, 50, 33, 70},
	} {
		a := randMatrix(rng, tc.m*tc.k)
		b := randMatrix(rng, tc.k*tc.n)
		c := make([]byte, 4*tc.m*tc.n)
		params := mslemu.Uint32Bytes([]uint32{uint32(tc.m), uint32(tc.n), uint32(tc.k)})
		groups := [3]int{(tc.n + tc.tile - 1) / tc.tile, (tc.m + tc.tile - 1) / tc.tile, 1}
		for _, order := range []mslemu.Order{mslemu.Forward, mslemu.Reverse, mslemu.Shuffle} {
			err := mslemu.LaunchWith(tc.kernel, groups, [3]int{tc.tile, tc.tile, 1}, []mslemu.Buffer{
				{Data: mslemu.Float32Bytes(a)}, {Data: mslemu.Float32Bytes(b)}, {Data: c}, {Data: params},
			}, mslemu.Options{Order: order, Seed: 7})
			require.NoError(t, err)
			got := mslemu.BytesFloat32(c)
			want := matmulRef(a, b, tc.m, tc.n, tc.k)
			for i := range want {
				// float32 accumulation of k products of N(0,1) values.
				assert.InDelta(t, want[i], float64(got[i]), 1e-4*float64(tc.k), "%s %dx%dx%d order %d at %d", tc.kernel, tc.m, tc.n, tc.k, order, i)
			}
		}
	}
}
