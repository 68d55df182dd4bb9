package cpuflash

import (
	"fmt"
	"testing"
)

func BenchmarkGEMM(b *testing.B) {
	for _, kn := range kernelSets() {
		if kn == nil {
			continue
		}
		for _, c := range []struct{ m, n, k int }{{96, 96, 64}, {96, 64, 96}, {480, 480, 480}} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", kn.name, c.m, c.n, c.k), func(b *testing.B) {
				a := make([]float32, c.m*c.k)
				bb := make([]float32, c.k*c.n)
				cc := make([]float32, c.m*c.n)
				for i := range a {
					a[i] = float32(i%7) - 3
				}
				for i := range bb {
					bb[i] = float32(i%5) - 2
				}
				for b.Loop() {
					kn.GEMM(c.m, c.n, c.k, a, c.k, 1, bb, c.n, cc, c.n, true)
				}
				b.ReportMetric(2*float64(c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkExp(b *testing.B) {
	for _, kn := range kernelSets() {
		if kn == nil {
			continue
		}
		b.Run(kn.name, func(b *testing.B) {
			const rows, cols = 96, 96
			x := make([]float32, rows*cols)
			x0 := make([]float32, rows*cols) // the input, restored by a copy before each call
			for i := range x0 {
				x0[i] = float32(i%97) * -0.1
			}
			bs := make([]float32, cols)
			s := make([]float32, cols)
			for b.Loop() {
				copy(x, x0)
				kn.ExpCols(x, rows, cols, cols, 1.4, bs, s)
			}
			b.ReportMetric(float64(len(x))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gexp/s")
		})
	}
}
