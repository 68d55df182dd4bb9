package cpuflash

import "math"

// exp2 on float32, shared by every kernel set:
//
//	x clamped to [−126, 127]; n = round-to-even(x); f = x − n ∈ [−½, ½]
//	2^f ≈ 1 + f·(c1 + f·(c2 + … + f·c6))   (weighted least-squares fit of 2^f on [−½, ½],
//	                                        relative error 2e-9 in exact arithmetic,
//	                                        about 1e-7 evaluated in float32)
//	2^x = 2^f with n added to its exponent field; x < −126 (and −Inf) gives exactly 0.
//
// The SIMD kernels use the same constants, so the paths differ only by FMA rounding.
const (
	exp2C1 = 6.931471825e-01
	exp2C2 = 2.402264774e-01
	exp2C3 = 5.550332367e-02
	exp2C4 = 9.618436918e-03
	exp2C5 = 1.339887385e-03
	exp2C6 = 1.535336196e-04

	exp2Lo = -126
	exp2Hi = 127
	// roundMagic = 1.5·2^23: adding and subtracting it rounds a float32 of magnitude below
	// 2^22 to the nearest integer, ties to even.
	roundMagic = 12582912
)

// exp2Go returns 2^x with the kernels' algorithm.
func exp2Go(x float32) float32 {
	if !(x >= exp2Lo) { // also NaN
		return 0
	}
	if x > exp2Hi {
		x = exp2Hi
	}
	t := x + roundMagic
	n := t - roundMagic
	f := x - n
	p := float32(exp2C6)
	p = float32(p*f) + exp2C5
	p = float32(p*f) + exp2C4
	p = float32(p*f) + exp2C3
	p = float32(p*f) + exp2C2
	p = float32(p*f) + exp2C1
	p = float32(p*f) + 1
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(n))<<23)
}

// gemmGo keeps a 2×4 block of C in locals across the whole k loop (8 accumulators, the
// most the register allocators of the common architectures keep without spilling). m is
// a multiple of mr (even) and n of nr (a multiple of 4).
func gemmGo(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	for i := 0; i < m; i += 2 {
		a0, a1 := a[i*rs:], a[(i+1)*rs:]
		c0, c1 := c[i*ldc:i*ldc+n], c[(i+1)*ldc:(i+1)*ldc+n]
		for j := 0; j < n; j += 4 {
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			for p, bo := 0, j; p < k; p, bo = p+1, bo+ldb {
				bp := b[bo : bo+4 : bo+4]
				x0, x1 := a0[p*ks], a1[p*ks]
				s00 += x0 * bp[0]
				s01 += x0 * bp[1]
				s02 += x0 * bp[2]
				s03 += x0 * bp[3]
				s10 += x1 * bp[0]
				s11 += x1 * bp[1]
				s12 += x1 * bp[2]
				s13 += x1 * bp[3]
			}
			r0, r1 := c0[j:j+4:j+4], c1[j:j+4:j+4]
			if acc {
				s00, s01, s02, s03 = r0[0]+s00, r0[1]+s01, r0[2]+s02, r0[3]+s03
				s10, s11, s12, s13 = r1[0]+s10, r1[1]+s11, r1[2]+s12, r1[3]+s13
			}
			r0[0], r0[1], r0[2], r0[3] = s00, s01, s02, s03
			r1[0], r1[1], r1[2], r1[3] = s10, s11, s12, s13
		}
	}
}

func expColsGo(x []float32, rows, cols, ld int, a float32, b, sum []float32) {
	b = b[:cols]
	for r := 0; r < rows; r++ {
		xr := x[r*ld : r*ld+cols]
		for c, v := range xr {
			xr[c] = exp2Go(a*v - b[c])
		}
		if sum != nil {
			sum := sum[:cols]
			for c, v := range xr {
				sum[c] += v
			}
		}
	}
}

func expRowsGo(x []float32, rows, cols, ld int, a float32, b []float32) {
	for r := 0; r < rows; r++ {
		xr, br := x[r*ld:r*ld+cols], b[r]
		for c, v := range xr {
			xr[c] = exp2Go(a*v - br)
		}
	}
}

func colMaxGo(mx, x []float32, rows, cols, ld int) {
	mx = mx[:cols]
	for r := 0; r < rows; r++ {
		for c, v := range x[r*ld : r*ld+cols] {
			if v > mx[c] {
				mx[c] = v
			}
		}
	}
}

func dsColsGo(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
	d = d[:cols]
	for r := 0; r < rows; r++ {
		o := r * ld
		dsr, pr, dpr := ds[o:o+cols], p[o:o+cols], dp[o:o+cols]
		for c := range dsr {
			dsr[c] = pr[c] * (dpr[c] - d[c]) * s
		}
	}
}

func dsRowsGo(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
	for r := 0; r < rows; r++ {
		o, dr := r*ld, d[r]
		dsr, pr, dpr := ds[o:o+cols], p[o:o+cols], dp[o:o+cols]
		for c := range dsr {
			dsr[c] = pr[c] * (dpr[c] - dr) * s
		}
	}
}

func scaleRowsGo(x []float32, rows, cols, ld int, f []float32) {
	for r := 0; r < rows; r++ {
		fr := f[r]
		xr := x[r*ld : r*ld+cols]
		for c := range xr {
			xr[c] *= fr
		}
	}
}
