//go:build !purego

package cpuflash

import "golang.org/x/sys/cpu"

//go:noescape
func gemmAVX2(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func expColsAVX2(x *float32, rows, cols, ld int, a float32, b, sum *float32)

//go:noescape
func expRowsAVX2(x *float32, rows, cols, ld int, a float32, b *float32)

//go:noescape
func colMaxAVX2(mx, x *float32, rows, cols, ld int)

//go:noescape
func dsColsAVX2(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func dsRowsAVX2(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func scaleRowsAVX2(x *float32, rows, cols, ld int, f *float32)

//go:noescape
func gemmAVX512(m, n, k int, a *float32, rs, ks int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func expColsAVX512(x *float32, rows, cols, ld int, a float32, b, sum *float32)

//go:noescape
func expRowsAVX512(x *float32, rows, cols, ld int, a float32, b *float32)

//go:noescape
func colMaxAVX512(mx, x *float32, rows, cols, ld int)

//go:noescape
func dsColsAVX512(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func dsRowsAVX512(ds, p, dp *float32, rows, cols, ld int, d *float32, s float32)

//go:noescape
func scaleRowsAVX512(x *float32, rows, cols, ld int, f *float32)

// simdKernelSets returns the SIMD kernel sets this CPU runs, best first: AVX-512 (F and
// VL, with the OS saving the ZMM and mask registers) and AVX2 + FMA (with the OS saving
// the YMM registers). golang.org/x/sys/cpu checks both the CPU and the OS.
func simdKernelSets() []*kernels {
	var ks []*kernels
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx512Kernels())
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernels())
	}
	return ks
}

func avx512Kernels() *kernels {
	return &kernels{
		name: "avx512",
		gemm: func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
			gemmAVX512(m, n, k, &a[0], rs, ks, &b[0], ldb, &c[0], ldc, b2i(acc))
		},
		expCols: func(x []float32, rows, cols, ld int, a float32, b, sum []float32) {
			var ps *float32
			if sum != nil {
				ps = &sum[0]
			}
			expColsAVX512(&x[0], rows, cols, ld, a, &b[0], ps)
		},
		expRows: func(x []float32, rows, cols, ld int, a float32, b []float32) {
			expRowsAVX512(&x[0], rows, cols, ld, a, &b[0])
		},
		colMax: func(mx, x []float32, rows, cols, ld int) { colMaxAVX512(&mx[0], &x[0], rows, cols, ld) },
		dsCols: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsColsAVX512(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		dsRows: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsRowsAVX512(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		scaleRows: func(x []float32, rows, cols, ld int, f []float32) { scaleRowsAVX512(&x[0], rows, cols, ld, &f[0]) },
		transpose16: func(dst []float32, ldd int, src []float32, lds int) {
			transpose16AVX512(&dst[0], ldd, &src[0], lds)
		},
	}
}

func avx2Kernels() *kernels {
	return &kernels{
		name: "avx2",
		gemm: func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
			gemmAVX2(m, n, k, &a[0], rs, ks, &b[0], ldb, &c[0], ldc, b2i(acc))
		},
		expCols: func(x []float32, rows, cols, ld int, a float32, b, sum []float32) {
			var ps *float32
			if sum != nil {
				ps = &sum[0]
			}
			expColsAVX2(&x[0], rows, cols, ld, a, &b[0], ps)
		},
		expRows: func(x []float32, rows, cols, ld int, a float32, b []float32) {
			expRowsAVX2(&x[0], rows, cols, ld, a, &b[0])
		},
		colMax: func(mx, x []float32, rows, cols, ld int) { colMaxAVX2(&mx[0], &x[0], rows, cols, ld) },
		dsCols: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsColsAVX2(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		dsRows: func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
			dsRowsAVX2(&ds[0], &p[0], &dp[0], rows, cols, ld, &d[0], s)
		},
		scaleRows: func(x []float32, rows, cols, ld int, f []float32) { scaleRowsAVX2(&x[0], rows, cols, ld, &f[0]) },
	}
}

//go:noescape
func transpose16AVX512(dst *float32, ldd int, src *float32, lds int)
