package cpuflash

import "fmt"

// Micro-tile of the GEMM kernels: every SIMD kernel computes 6 rows × 16 columns of C at a
// time, so m must be a multiple of mr and n of nr. Tiles are padded to these multiples.
const (
	mr = 6
	nr = 16
)

// kernels is the set of inner loops an executor runs: SIMD versions where the CPU has
// them, pure Go otherwise. The raw functions trust their arguments; the methods below
// check every bound first, so a bug surfaces as a panic in Go (which the worker pool turns
// into an error) and never as a stray memory access in assembly.
type kernels struct {
	name string

	// gemm: C[m×n] (+)= A·B with A(i, p) = a[i·rs + p·ks], B(p, j) = b[p·ldb + j],
	// C(i, j) = c[i·ldc + j]; m%mr == 0, n%nr == 0, k ≥ 1.
	gemm func(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool)
	// expVec: dst[i] = 2^(a·src[i] − b[i]); sum[i] += dst[i] when sum != nil. len%8 == 0.
	expVec func(dst, src, b, sum []float32, a float32)
	// expScalar: dst[i] = 2^(a·src[i] − b). len%8 == 0.
	expScalar func(dst, src []float32, a, b float32)
	// colMax: mx[i] = max(mx[i], src[i]). len%8 == 0.
	colMax func(mx, src []float32)
	// dsVec: ds[i] = p[i]·(dp[i] − d[i])·s. len%8 == 0.
	dsVec func(ds, p, dp, d []float32, s float32)
	// dsScalar: ds[i] = p[i]·(dp[i] − d)·s. len%8 == 0.
	dsScalar func(ds, p, dp []float32, d, s float32)
	// scale: x[i] *= a. len%8 == 0.
	scale func(x []float32, a float32)
}

// genericKernels are the pure-Go loops, for every architecture.
func genericKernels() *kernels {
	return &kernels{
		name:      "go",
		gemm:      gemmGo,
		expVec:    expVecGo,
		expScalar: expScalarGo,
		colMax:    colMaxGo,
		dsVec:     dsVecGo,
		dsScalar:  dsScalarGo,
		scale:     scaleGo,
	}
}

// GEMM checks the operands and runs gemm.
func (kn *kernels) GEMM(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if m == 0 || n == 0 {
		return
	}
	if m%mr != 0 || n%nr != 0 || m < 0 || n < 0 || k < 0 || rs < 0 || ks < 0 || ldb < n || ldc < n {
		panic(fmt.Sprintf("cpuflash: gemm shape m=%d n=%d k=%d rs=%d ks=%d ldb=%d ldc=%d", m, n, k, rs, ks, ldb, ldc))
	}
	if (m-1)*ldc+n > len(c) {
		panic(fmt.Sprintf("cpuflash: gemm C has %d elements, needs %d", len(c), (m-1)*ldc+n))
	}
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if (m-1)*rs+(k-1)*ks >= len(a) {
		panic(fmt.Sprintf("cpuflash: gemm A has %d elements, needs %d", len(a), (m-1)*rs+(k-1)*ks+1))
	}
	if (k-1)*ldb+n > len(b) {
		panic(fmt.Sprintf("cpuflash: gemm B has %d elements, needs %d", len(b), (k-1)*ldb+n))
	}
	kn.gemm(m, n, k, a, rs, ks, b, ldb, c, ldc, acc)
}

func checkLen(op string, n int, lens ...int) {
	if n%8 != 0 {
		panic(fmt.Sprintf("cpuflash: %s length %d is not a multiple of 8", op, n))
	}
	for _, l := range lens {
		if l < n {
			panic(fmt.Sprintf("cpuflash: %s operand has %d elements, needs %d", op, l, n))
		}
	}
}

// ExpVec checks lengths and runs expVec over len(dst) elements.
func (kn *kernels) ExpVec(dst, src, b, sum []float32, a float32) {
	if sum != nil {
		checkLen("expVec", len(dst), len(src), len(b), len(sum))
	} else {
		checkLen("expVec", len(dst), len(src), len(b))
	}
	if len(dst) > 0 {
		kn.expVec(dst, src, b, sum, a)
	}
}

// ExpScalar checks lengths and runs expScalar over len(dst) elements.
func (kn *kernels) ExpScalar(dst, src []float32, a, b float32) {
	checkLen("expScalar", len(dst), len(src))
	if len(dst) > 0 {
		kn.expScalar(dst, src, a, b)
	}
}

// ColMax checks lengths and runs colMax over len(mx) elements.
func (kn *kernels) ColMax(mx, src []float32) {
	checkLen("colMax", len(mx), len(src))
	if len(mx) > 0 {
		kn.colMax(mx, src)
	}
}

// DSVec checks lengths and runs dsVec over len(ds) elements.
func (kn *kernels) DSVec(ds, p, dp, d []float32, s float32) {
	checkLen("dsVec", len(ds), len(p), len(dp), len(d))
	if len(ds) > 0 {
		kn.dsVec(ds, p, dp, d, s)
	}
}

// DSScalar checks lengths and runs dsScalar over len(ds) elements.
func (kn *kernels) DSScalar(ds, p, dp []float32, d, s float32) {
	checkLen("dsScalar", len(ds), len(p), len(dp))
	if len(ds) > 0 {
		kn.dsScalar(ds, p, dp, d, s)
	}
}

// Scale checks the length and runs scale.
func (kn *kernels) Scale(x []float32, a float32) {
	checkLen("scale", len(x))
	if len(x) > 0 {
		kn.scale(x, a)
	}
}

// b2i passes a bool to assembly as an int.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
