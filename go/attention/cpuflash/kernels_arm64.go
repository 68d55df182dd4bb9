//go:build !purego

package cpuflash

//go:noescape
func gemmNEON(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func expColsNEON(x *float32, rows, cols, ld int, a float32, b, sum *float32)

//go:noescape
func expRowsNEON(x *float32, rows, cols, ld int, a float32, b *float32)

//go:noescape
func colMaxNEON(mx, x *float32, rows, cols, ld int)

//go:noescape
func dsColsNEON(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func dsRowsNEON(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func scaleRowsNEON(x *float32, rows, cols, ld int, f *float32)

// simdKernelSets returns the NEON kernels. Advanced SIMD is part of every arm64 CPU Go
// runs on (the Go port requires ARMv8-A), so there is nothing to detect.
func simdKernelSets() []*kernels {
	return []*kernels{{
		name: "neon",
		gemm: func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
			gemmNEON(m, n, k, &a[0], rs, ks, &b[0], ldb, &c[0], ldc, b2i(acc))
		},
		expCols: func(x []float32, rows, cols, ld int, a float32, b, sum []float32) {
			var ps *float32
			if sum != nil {
				ps = &sum[0]
			}
			expColsNEON(&x[0], rows, cols, ld, a, &b[0], ps)
		},
		expRows: func(x []float32, rows, cols, ld int, a float32, b []float32) {
			expRowsNEON(&x[0], rows, cols, ld, a, &b[0])
		},
		colMax: func(mx, x []float32, rows, cols, ld int) { colMaxNEON(&mx[0], &x[0], rows, cols, ld) },
		dsCols: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsColsNEON(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		dsRows: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsRowsNEON(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		scaleRows: func(x []float32, rows, cols, ld int, f []float32) { scaleRowsNEON(&x[0], rows, cols, ld, &f[0]) },
	}}
}
