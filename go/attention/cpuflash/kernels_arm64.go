//go:build !purego

package cpuflash

//go:noescape
func gemmNEON(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func expVecNEON(dst, src, b, sum *float32, n int, a float32)

//go:noescape
func expScalarNEON(dst, src *float32, n int, a, b float32)

//go:noescape
func colMaxNEON(mx, src *float32, n int)

//go:noescape
func dsVecNEON(ds, p, dp, d *float32, n int, s float32)

//go:noescape
func dsScalarNEON(ds, p, dp *float32, n int, d, s float32)

//go:noescape
func scaleNEON(x *float32, n int, a float32)

// simdKernels returns the NEON kernels. Advanced SIMD is part of every arm64 CPU Go runs
// on (the Go port requires ARMv8-A), so there is nothing to detect.
func simdKernels() *kernels {
	return &kernels{
		name: "neon",
		gemm: func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
			gemmNEON(m, n, k, &a[0], rs, ks, &b[0], ldb, &c[0], ldc, b2i(acc))
		},
		expVec: func(dst, src, b, sum []float32, a float32) {
			var ps *float32
			if sum != nil {
				ps = &sum[0]
			}
			expVecNEON(&dst[0], &src[0], &b[0], ps, len(dst), a)
		},
		expScalar: func(dst, src []float32, a, b float32) { expScalarNEON(&dst[0], &src[0], len(dst), a, b) },
		colMax:    func(mx, src []float32) { colMaxNEON(&mx[0], &src[0], len(mx)) },
		dsVec:     func(ds, p, dp, d []float32, s float32) { dsVecNEON(&ds[0], &p[0], &dp[0], &d[0], len(ds), s) },
		dsScalar:  func(ds, p, dp []float32, d, s float32) { dsScalarNEON(&ds[0], &p[0], &dp[0], len(ds), d, s) },
		scale:     func(x []float32, a float32) { scaleNEON(&x[0], len(x), a) },
	}
}
