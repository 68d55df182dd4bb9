//go:build !purego

package cpuflash

import "golang.org/x/sys/cpu"

//go:noescape
func gemmAVX2(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func expVecAVX2(dst, src, b, sum *float32, n int, a float32)

//go:noescape
func expScalarAVX2(dst, src *float32, n int, a, b float32)

//go:noescape
func colMaxAVX2(mx, src *float32, n int)

//go:noescape
func dsVecAVX2(ds, p, dp, d *float32, n int, s float32)

//go:noescape
func dsScalarAVX2(ds, p, dp *float32, n int, d, s float32)

//go:noescape
func scaleAVX2(x *float32, n int, a float32)

// simdKernels returns the AVX2 + FMA kernels when the CPU has them and the OS saves the
// YMM registers (golang.org/x/sys/cpu checks both), and nil otherwise.
func simdKernels() *kernels {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return nil
	}
	return &kernels{
		name: "avx2",
		gemm: func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
			gemmAVX2(m, n, k, &a[0], rs, ks, &b[0], ldb, &c[0], ldc, b2i(acc))
		},
		expVec: func(dst, src, b, sum []float32, a float32) {
			var ps *float32
			if sum != nil {
				ps = &sum[0]
			}
			expVecAVX2(&dst[0], &src[0], &b[0], ps, len(dst), a)
		},
		expScalar: func(dst, src []float32, a, b float32) { expScalarAVX2(&dst[0], &src[0], len(dst), a, b) },
		colMax:    func(mx, src []float32) { colMaxAVX2(&mx[0], &src[0], len(mx)) },
		dsVec:     func(ds, p, dp, d []float32, s float32) { dsVecAVX2(&ds[0], &p[0], &dp[0], &d[0], len(ds), s) },
		dsScalar:  func(ds, p, dp []float32, d, s float32) { dsScalarAVX2(&ds[0], &p[0], &dp[0], len(ds), d, s) },
		scale:     func(x []float32, a float32) { scaleAVX2(&x[0], len(x), a) },
	}
}
