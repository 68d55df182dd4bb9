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

func gemmGo(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		if !acc {
			clear(ci)
		}
		ai := i * rs
		for p := 0; p < k; p++ {
			aip := a[ai+p*ks]
			bp := b[p*ldb : p*ldb+n]
			for j := range ci {
				ci[j] += aip * bp[j]
			}
		}
	}
}

func expVecGo(dst, src, b, sum []float32, a float32) {
	src, b = src[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = exp2Go(a*src[i] - b[i])
	}
	if sum != nil {
		sum = sum[:len(dst)]
		for i, v := range dst {
			sum[i] += v
		}
	}
}

func expScalarGo(dst, src []float32, a, b float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = exp2Go(a*src[i] - b)
	}
}

func colMaxGo(mx, src []float32) {
	src = src[:len(mx)]
	for i, v := range src {
		if v > mx[i] {
			mx[i] = v
		}
	}
}

func dsVecGo(ds, p, dp, d []float32, s float32) {
	p, dp, d = p[:len(ds)], dp[:len(ds)], d[:len(ds)]
	for i := range ds {
		ds[i] = p[i] * (dp[i] - d[i]) * s
	}
}

func dsScalarGo(ds, p, dp []float32, d, s float32) {
	p, dp = p[:len(ds)], dp[:len(ds)]
	for i := range ds {
		ds[i] = p[i] * (dp[i] - d) * s
	}
}

func scaleGo(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}
