package layer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// naiveMatmul is the textbook triple loop in float64: c (m, n) = a (m, k) · b (k, n),
// where a and b are read through index functions so one helper covers the transposes.
func naiveMatmul(m, n, k int, a, b func(i, j int) float64) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += a(i, p) * b(p, j)
			}
			c[i*n+j] = s
		}
	}
	return c
}

func randSlice(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// The three kernels against the textbook product, on sizes that exercise the goroutine
// split (rows·work above the threshold) and odd remainders. float64: exact up to
// summation order, 1e-12.
func TestLinearKernels(t *testing.T) {
	for _, sz := range []struct{ rows, in, out int }{{1, 1, 1}, {3, 5, 7}, {37, 19, 23}, {300, 64, 96}, {513, 33, 65}} {
		t.Run(fmt.Sprintf("%dx%dx%d", sz.rows, sz.in, sz.out), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(sz.rows), uint64(sz.in)))
			x := randSlice(rng, sz.rows*sz.in)
			w := randSlice(rng, sz.in*sz.out)
			b := randSlice(rng, sz.out)
			dy := randSlice(rng, sz.rows*sz.out)

			y := make([]float64, sz.rows*sz.out)
			linear(y, x, w, b, sz.rows, sz.in, sz.out)
			want := naiveMatmul(sz.rows, sz.out, sz.in, func(i, p int) float64 { return x[i*sz.in+p] }, func(p, j int) float64 { return w[p*sz.out+j] })
			for i := range want {
				want[i] += b[i%sz.out]
			}
			assert.InDeltaSlice(t, want, y, 1e-12)

			dx := randSlice(rng, sz.rows*sz.in) // overwritten
			linearInputGrad(dx, dy, w, sz.rows, sz.in, sz.out, false)
			want = naiveMatmul(sz.rows, sz.in, sz.out, func(i, p int) float64 { return dy[i*sz.out+p] }, func(p, j int) float64 { return w[j*sz.out+p] })
			assert.InDeltaSlice(t, want, dx, 1e-12)
			linearInputGrad(dx, dy, w, sz.rows, sz.in, sz.out, true)
			for i := range want {
				want[i] *= 2
			}
			assert.InDeltaSlice(t, want, dx, 1e-12)

			dw := make([]float64, sz.in*sz.out)
			dw[0] = 1 // accumulates onto what is there
			linearWeightGrad(dw, x, dy, sz.rows, sz.in, sz.out)
			want = naiveMatmul(sz.in, sz.out, sz.rows, func(i, p int) float64 { return x[p*sz.in+i] }, func(p, j int) float64 { return dy[p*sz.out+j] })
			want[0]++
			assert.InDeltaSlice(t, want, dw, 1e-12)
		})
	}
}

// Benchmarks of the projection kernels at the smoke model's size (B·T = 512 rows, C = 64)
// and a wider layer. Report GFLOP/s: go test -bench Linear ./go/attention/layer
func BenchmarkLinear(b *testing.B) {
	for _, sz := range []struct{ rows, in, out int }{{512, 64, 64}, {2048, 256, 256}} {
		rng := rand.New(rand.NewPCG(1, 1))
		f32 := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			return v
		}
		x, w, bias, dy := f32(sz.rows*sz.in), f32(sz.in*sz.out), f32(sz.out), f32(sz.rows*sz.out)
		y, dx, dw := make([]float32, sz.rows*sz.out), make([]float32, sz.rows*sz.in), make([]float32, sz.in*sz.out)
		flops := 2 * float64(sz.rows*sz.in*sz.out)
		name := fmt.Sprintf("%dx%dx%d", sz.rows, sz.in, sz.out)
		for _, k := range []struct {
			name string
			f    func()
		}{
			{"forward", func() { linear(y, x, w, bias, sz.rows, sz.in, sz.out) }},
			{"inputGrad", func() { linearInputGrad(dx, dy, w, sz.rows, sz.in, sz.out, false) }},
			{"weightGrad", func() { linearWeightGrad(dw, x, dy, sz.rows, sz.in, sz.out) }},
		} {
			b.Run(name+"/"+k.name, func(b *testing.B) {
				for b.Loop() {
					k.f()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
