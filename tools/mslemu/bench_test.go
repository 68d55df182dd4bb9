package mslemu_test

import (
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/tools/mslemu"
)

// BenchmarkBarrier128 reports the cost of one threadgroup_barrier across 128 threads.
func BenchmarkBarrier128(b *testing.B) {
	if !mslemu.Available() {
		b.Skip("needs cgo")
	}
	const iters = 1000 // two barriers each
	bufs := []mslemu.Buffer{{Data: mslemu.Uint32Bytes([]uint32{iters})}, {Data: make([]byte, 4*128)}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mslemu.Launch("test_barrier_loop", [3]int{1, 1, 1}, [3]int{128, 1, 1}, bufs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*iters), "ns/barrier")
}

// BenchmarkSimdSum128 reports the cost of one simd_sum in each of 4 SIMD groups.
func BenchmarkSimdSum128(b *testing.B) {
	if !mslemu.Available() {
		b.Skip("needs cgo")
	}
	const iters = 1000
	bufs := []mslemu.Buffer{{Data: mslemu.Uint32Bytes([]uint32{iters})}, {Data: make([]byte, 4*128)}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mslemu.Launch("test_simd_sum_loop", [3]int{1, 1, 1}, [3]int{128, 1, 1}, bufs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*iters), "ns/simd_sum")
}

func benchMatmul(b *testing.B, kernel string, n int, groups, threads [3]int, transposeB bool) {
	if !mslemu.Available() {
		b.Skip("needs cgo")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	a := randMatrix(rng, n*n)
	bm := randMatrix(rng, n*n)
	bufs := []mslemu.Buffer{{Data: mslemu.Float32Bytes(a)}, {Data: mslemu.Float32Bytes(bm)}, {Data: make([]byte, 4*n*n)},
		{Data: mslemu.Uint32Bytes([]uint32{uint32(n), uint32(n), uint32(n)})}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := mslemu.Launch(kernel, groups, threads, bufs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatmulTiled64: 64x64x64 with 16x16 tiles (16 threadgroups of 256 threads).
func BenchmarkMatmulTiled64(b *testing.B) {
	benchMatmul(b, "test_matmul_tiled_f32_t16", 64, [3]int{4, 4, 1}, [3]int{16, 16, 1}, false)
}

// BenchmarkSimdgroupMatmul64: 64x64x64 with SIMD-group matrices (16 threadgroups of 128).
func BenchmarkSimdgroupMatmul64(b *testing.B) {
	benchMatmul(b, "test_simdgroup_matmul", 64, [3]int{4, 4, 1}, [3]int{128, 1, 1}, true)
}
