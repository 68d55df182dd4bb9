package cpuflash

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// TestAVX512IsUsedWhereAvailable: on an amd64 CPU with AVX-512 (F and VL) the executor
// picks the AVX-512 kernels by default; elsewhere the test is skipped with the reason.
func TestAVX512IsUsedWhereAvailable(t *testing.T) {
	sets := KernelSets()
	if runtime.GOARCH != "amd64" || !slices.Contains(sets, "avx512") {
		t.Skipf("no AVX-512 kernels on this CPU/build (%s, sets %v): the AVX-512 path is tested on amd64 CPUs with AVX-512F and AVX-512VL", runtime.GOARCH, sets)
	}
	assert.Equal(t, "avx512", sets[0])
	t.Setenv(KernelsEnv, "")
	assert.Equal(t, "avx512", New(Params{}).Kernels())
}

// TestGEMMMatchesFloat64 checks both kernel sets on row-major and transposed A operands,
// with and without accumulation, against a float64 product: each element within
// 1e-6 · Σ_p |A(i,p)·B(p,j)| (float32 rounding of k products).
func TestGEMMMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, kn := range kernelSets() {
		for _, c := range []struct {
			m, n, k int
			trans   bool
			acc     bool
		}{
			{6, 16, 1, false, false}, {12, 32, 7, false, true}, {48, 48, 64, false, false},
			{96, 64, 59, true, true}, {18, 80, 33, true, false}, {6, 256, 100, false, true},
		} {
			t.Run(fmt.Sprintf("%s/%+v", kn.name, c), func(t *testing.T) {
				lda := c.k + 3
				rs, ks := lda, 1
				if c.trans { // A stored as (k, m) and read transposed
					lda = c.m + 5
					rs, ks = 1, lda
				}
				a := randSlice(rng, max(c.m*rs+c.k*ks, 1))
				ldb, ldc := c.n+16, c.n+32
				b := randSlice(rng, c.k*ldb)
				cc := randSlice(rng, c.m*ldc)
				c0 := append([]float32(nil), cc...)
				kn.GEMM(c.m, c.n, c.k, a, rs, ks, b, ldb, cc, ldc, c.acc)
				for i := 0; i < c.m; i++ {
					for j := 0; j < c.n; j++ {
						want, mag := 0.0, 0.0
						if c.acc {
							want, mag = float64(c0[i*ldc+j]), math.Abs(float64(c0[i*ldc+j]))
						}
						for p := 0; p < c.k; p++ {
							x := float64(a[i*rs+p*ks]) * float64(b[p*ldb+j])
							want += x
							mag += math.Abs(x)
						}
						require.InDelta(t, want, float64(cc[i*ldc+j]), 1e-6*mag+1e-30, "C[%d, %d]", i, j)
					}
					for j := c.n; j < ldc; j++ {
						require.Equal(t, c0[i*ldc+j], cc[i*ldc+j], "C[%d, %d] past n is untouched", i, j)
					}
				}
			})
		}
	}
}

// TestGEMMChecksBounds: operands too short for the shape panic in Go before any
// assembly runs (the worker pool turns such a panic into an error).
func TestGEMMChecksBounds(t *testing.T) {
	for _, kn := range kernelSets() {
		a, b, c := make([]float32, 6*8), make([]float32, 8*16), make([]float32, 6*16)
		assert.NotPanics(t, func() { kn.GEMM(6, 16, 8, a, 8, 1, b, 16, c, 16, false) })
		assert.Panics(t, func() { kn.GEMM(6, 16, 8, a[:47], 8, 1, b, 16, c, 16, false) }, "A short")
		assert.Panics(t, func() { kn.GEMM(6, 16, 8, a, 8, 1, b[:127], 16, c, 16, false) }, "B short")
		assert.Panics(t, func() { kn.GEMM(6, 16, 8, a, 8, 1, b, 16, c[:95], 16, false) }, "C short")
		assert.Panics(t, func() { kn.GEMM(5, 16, 8, a, 8, 1, b, 16, c, 16, false) }, "m not a multiple of 6")
		assert.Panics(t, func() { kn.GEMM(6, 8, 8, a, 8, 1, b, 16, c, 16, false) }, "n not a multiple of 16")
		assert.Panics(t, func() { kn.ExpCols(make([]float32, 16*3-1), 3, 16, 16, 1, make([]float32, 16), nil) }, "tile short")
		assert.Panics(t, func() { kn.ExpCols(make([]float32, 48), 3, 16, 16, 1, make([]float32, 8), nil) }, "b short")
		assert.Panics(t, func() { kn.ExpRows(make([]float32, 48), 3, 16, 16, 1, make([]float32, 2)) }, "b short of rows")
		assert.Panics(t, func() { kn.ScaleRows(make([]float32, 12), 1, 12, 12, []float32{1}) }, "cols not a multiple of 8")
		assert.Panics(t, func() {
			kn.DSCols(make([]float32, 32), make([]float32, 31), make([]float32, 32), 2, 16, 16, make([]float32, 16), 1)
		}, "p short")
	}
}

// exp2Cases are inputs for the exp2 kernels: ordinary values, the clamp bounds, values
// past them and −Inf.
func exp2Cases(rng *rand.Rand) []float32 {
	x := []float32{0, -0.5, 0.5, -1, 1, -125.9, -126, -126.01, -127, -200, float32(math.Inf(-1)), 126.9, 127, 127.4,
		-1e-8, 1e-8, -30.25, -3.5, 2.5}
	for len(x)%8 != 0 || len(x) < 200 {
		x = append(x, float32(rng.Float64()*140-130))
	}
	return x
}

// TestExp2Accuracy: 2^x within 3e-7 relative of math.Exp2 for x in [−126, 127], exactly
// 0 below −126 and for −Inf, exactly 1 at 0; the column form adds the results into sum.
func TestExp2Accuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	x := exp2Cases(rng)
	zero := make([]float32, len(x))
	for _, kn := range kernelSets() {
		t.Run(kn.name, func(t *testing.T) {
			got := append([]float32(nil), x...)
			sum := make([]float32, len(x))
			for i := range sum {
				sum[i] = 1
			}
			kn.ExpCols(got, 1, len(x), len(x), 1, zero, sum)
			gotR := append([]float32(nil), x...)
			kn.ExpRows(gotR, 1, len(x), len(x), 1, []float32{0})
			for i, v := range x {
				switch {
				case v < -126:
					assert.Zero(t, got[i], "2^%v", v)
				case v > 127:
					assert.Equal(t, float32(math.Exp2(127)), got[i], "2^%v clamps to 2^127", v)
				default:
					want := math.Exp2(float64(v))
					assert.InEpsilon(t, want, float64(got[i]), 3e-7, "2^%v", v)
				}
				assert.Equal(t, got[i], gotR[i], "row and column forms agree at %v", v)
				assert.Equal(t, 1+got[i], sum[i], "sum at %v", v)
			}
			assert.Equal(t, float32(1), got[0], "2^0")
		})
	}
}

// TestSIMDKernelsAgreeWithGo holds every SIMD kernel against its pure-Go twin on the
// same tiles (several rows, a stride wider than the columns): exactly equal where both
// round the same operations in the same order (max, dS, scaling, sums), within 2 ulp for
// exp2 on exact arguments (FMA against separate multiply and add), within the rounding of
// the argument otherwise, and within float32 accumulation error for the GEMM.
// Columns are 56: three 16-wide steps and an 8-wide tail for the AVX-512 kernels.
func TestSIMDKernelsAgreeWithGo(t *testing.T) {
	sets := simdKernelSets()
	if len(sets) == 0 {
		t.Skip("this CPU has no SIMD kernels (no AVX2/FMA on amd64)")
	}
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) { testSIMDAgreesWithGo(t, s) })
	}
}

func testSIMDAgreesWithGo(t *testing.T, s *kernels) {
	g := genericKernels()
	rng := rand.New(rand.NewPCG(3, 3))
	const rows, cols, ld = 7, 56, 72
	const n = rows * ld
	x, b, p, dp, d := randSlice(rng, n), randSlice(rng, cols), randSlice(rng, n), randSlice(rng, n), randSlice(rng, cols)
	br, dr := randSlice(rng, rows), randSlice(rng, rows)
	for i := range x {
		x[i] *= 20
		p[i] = float32(math.Abs(float64(p[i])))
	}
	x[3], x[17], x[ld+5] = float32(math.Inf(-1)), -300, 400
	b[5] = float32(math.Inf(1))
	ulps := func(a, b float32) int {
		d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
		if d < 0 {
			d = -d
		}
		return int(d)
	}
	both := func(f func(kn *kernels) []float32) (sv, gv []float32) { return f(s), f(g) }

	t.Run("exp2", func(t *testing.T) {
		// On exact arguments (a = 1, b = 0) the two differ only by FMA rounding inside
		// the polynomial.
		zero := make([]float32, cols)
		e1, e2 := both(func(kn *kernels) []float32 {
			y := append([]float32(nil), x...)
			kn.ExpCols(y, rows, cols, ld, 1, zero, nil)
			return y
		})
		for i := range e1 {
			assert.LessOrEqual(t, ulps(e1[i], e2[i]), 2, "2^%v: %v vs %v", x[i], e1[i], e2[i])
		}
		// With a and b the argument a·x − b is rounded once (FMA) or twice, which moves
		// 2^arg by up to ln 2 · ulp(a·x) relative: allow that on top of the polynomial.
		for _, kn := range []*kernels{s, g} {
			y := append([]float32(nil), x...)
			kn.ExpCols(y, rows, cols, ld, 0.7, b, nil)
			yr := append([]float32(nil), x...)
			kn.ExpRows(yr, rows, cols, ld, 0.7, br)
			for r := 0; r < rows; r++ {
				for c := 0; c < cols; c++ {
					e := r*ld + c
					for _, v := range []struct {
						got, b float32
					}{{y[e], b[c]}, {yr[e], br[r]}} {
						arg := 0.7*float64(x[e]) - float64(v.b)
						if arg < -125 || arg > 126 || math.IsInf(arg, 0) || math.IsNaN(arg) {
							continue
						}
						tol := 3e-7 + 1.2e-7*math.Abs(0.7*float64(x[e]))
						assert.InEpsilon(t, math.Exp2(arg), float64(v.got), tol, "%s: 2^(0.7·%v − %v)", kn.name, x[e], v.b)
					}
				}
			}
			assert.Zero(t, y[3], "2^(a·(−Inf) − b) = 0")
			assert.Zero(t, y[5], "2^(a·x − Inf) = 0")
			for e := cols; e < ld; e++ {
				assert.Equal(t, x[e], y[e], "columns past cols untouched")
			}
		}
		// The sums are added row by row in the same order.
		s1, s2 := both(func(kn *kernels) []float32 {
			y := append([]float32(nil), x...)
			sum := make([]float32, cols)
			kn.ExpCols(y, rows, cols, ld, 1, zero, sum)
			return sum
		})
		for c := range s1 {
			assert.InEpsilon(t, float64(s2[c]), float64(s1[c]), 1e-6, "sum[%d]", c)
		}
	})
	t.Run("colMax", func(t *testing.T) {
		m1, m2 := both(func(kn *kernels) []float32 {
			mx := append([]float32(nil), b...)
			kn.ColMax(mx, x, rows, cols, ld)
			return mx
		})
		assert.Equal(t, m2, m1)
	})
	t.Run("dS", func(t *testing.T) {
		o1, o2 := both(func(kn *kernels) []float32 {
			o := make([]float32, n)
			kn.DSCols(o, p, dp, rows, cols, ld, d, 0.125)
			return o
		})
		assert.Equal(t, o2, o1, "per-column D")
		o1, o2 = both(func(kn *kernels) []float32 {
			o := append([]float32(nil), dp...)
			kn.DSRows(o, p, o, rows, cols, ld, dr, 0.125) // in place, as the executor calls it
			return o
		})
		assert.Equal(t, o2, o1, "per-row D")
	})
	t.Run("scaleRows", func(t *testing.T) {
		a1, a2 := both(func(kn *kernels) []float32 {
			y := append([]float32(nil), x...)
			kn.ScaleRows(y, rows, cols, ld, br)
			return y
		})
		assert.Equal(t, a2, a1)
	})
	t.Run("gemm", func(t *testing.T) {
		const m, nn, k = 48, 64, 70
		a, bb := randSlice(rng, m*k), randSlice(rng, k*nn)
		c1, c2 := randSlice(rng, m*nn), make([]float32, m*nn)
		copy(c2, c1)
		s.GEMM(m, nn, k, a, 1, m, bb, nn, c1, nn, true)
		g.GEMM(m, nn, k, a, 1, m, bb, nn, c2, nn, true)
		for i := range c1 {
			assert.InDelta(t, c2[i], c1[i], 1e-4, "C[%d]", i)
		}
	})
}

// TestBandedGEMMs: GEMMBandCols computes exactly the columns each row group needs (and
// with zero clears the rest of the row), GEMMBandK sums each row group over its range
// only; on every kernel set, against GEMM on operands that are zero outside the band.
func TestBandedGEMMs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const m, n, k = 30, 64, 40
	lo, hi := make([]int, m), make([]int, m)
	for i := range lo { // a causal-like band, one empty row
		lo[i], hi[i] = i, min(i+23, n)
	}
	lo[7], hi[7] = 5, 5
	for _, kn := range kernelSets() {
		t.Run(kn.name, func(t *testing.T) {
			a, b := randSlice(rng, m*k), randSlice(rng, k*n)
			full := make([]float32, m*n)
			kn.GEMM(m, n, k, a, k, 1, b, n, full, n, false)
			band := randSlice(rng, m*n)
			kn.GEMMBandCols(m, n, k, a, k, 1, b, n, band, n, lo, hi, true)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					if j >= lo[i] && j < hi[i] {
						require.Equal(t, full[i*n+j], band[i*n+j], "(%d, %d) in the band", i, j)
					}
				}
			}
			// GEMMBandK: zero A outside each row's k range; the banded sum equals GEMM.
			klo, khi := make([]int, m), make([]int, m)
			az := append([]float32(nil), a...)
			for i := 0; i < m; i++ {
				klo[i], khi[i] = i/2, min(i/2+17, k)
				for p := 0; p < k; p++ {
					if p < klo[i] || p >= khi[i] {
						az[i*k+p] = 0
					}
				}
			}
			c0 := randSlice(rng, m*n)
			want, got := append([]float32(nil), c0...), append([]float32(nil), c0...)
			kn.GEMM(m, n, k, az, k, 1, b, n, want, n, true)
			kn.GEMMBandK(m, n, k, az, k, 1, b, n, got, n, klo, khi)
			require.Equal(t, want, got)
		})
	}
}

// TestTranspose16 checks every kernel set's 16×16 transpose (where the set has one) element
// by element on distinct values with strides beyond 16, its bounds checks, and rowsT, which
// uses it, against the element-by-element transpose for row counts around multiples of 16.
func TestTranspose16(t *testing.T) {
	ran := false
	for _, kn := range kernelSets() {
		if kn.transpose16 == nil {
			continue
		}
		ran = true
		in := make([]float32, 16*21)
		for i := range in {
			in[i] = float32(i) + 0.5
		}
		dst := make([]float32, 15*19+16)
		kn.Transpose16(dst, 19, in, 21)
		for r := 0; r < 16; r++ {
			for c := 0; c < 16; c++ {
				require.Equal(t, in[r*21+c], dst[c*19+r], "%s: row %d column %d", kn.name, r, c)
			}
		}
		assert.Panics(t, func() { kn.Transpose16(dst[:len(dst)-1], 19, in, 21) }, "dst short")
		assert.Panics(t, func() { kn.Transpose16(dst, 19, in[:15*21+15], 21) }, "src short")

		rng := rand.New(rand.NewPCG(5, 5))
		for _, c := range []struct{ n, d int }{{96, 64}, {37, 64}, {16, 128}, {50, 48}, {33, 40}} {
			ld := roundUp(c.n, 16) + 8
			s := src{dt: tensor.Float32, f32: make([]float32, 3*c.n*c.d), heads: 3, rows: c.n, d: c.d}
			for i := range s.f32 {
				s.f32[i] = rng.Float32()
			}
			got, want := make([]float32, c.d*ld), make([]float32, c.d*ld)
			for i := range got {
				got[i], want[i] = float32(math.NaN()), float32(math.NaN())
			}
			off := s.off(0, 1, 0)
			s.rowsT(kn, got, ld, off, c.n, make([]float32, c.d))
			s.rowsT(genericKernels(), want, ld, off, c.n, make([]float32, c.d))
			assert.Equal(t, want, got, "%s: rowsT n=%d d=%d", kn.name, c.n, c.d)
		}
	}
	if !ran {
		t.Skipf("no kernel set here has a 16×16 transpose (sets %v): it is tested on amd64 CPUs with AVX-512", KernelSets())
	}
}
