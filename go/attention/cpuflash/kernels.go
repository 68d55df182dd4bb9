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
	// The elementwise kernels work on whole tiles: element (r, c) at r·ld + c for r < rows,
	// c < cols, with cols%8 == 0 and cols ≤ ld.
	//
	// expCols: x = 2^(a·x − b[c]), in place; sum[c] += x when sum != nil (row by row).
	expCols func(x []float32, rows, cols, ld int, a float32, b, sum []float32)
	// expRows: x = 2^(a·x − b[r]), in place.
	expRows func(x []float32, rows, cols, ld int, a float32, b []float32)
	// colMax: mx[c] = max(mx[c], x(r, c)) over the rows.
	colMax func(mx, x []float32, rows, cols, ld int)
	// dsCols: ds = p·(dp − d[c])·s elementwise (ds may alias p or dp).
	dsCols func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32)
	// dsRows: ds = p·(dp − d[r])·s elementwise (ds may alias p or dp).
	dsRows func(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32)
	// scaleRows: x(r, c) *= f[r].
	scaleRows func(x []float32, rows, cols, ld int, f []float32)
	// transpose16: dst[c·ldd + r] = src[r·lds + c] for r, c < 16; nil where the set has
	// none (the caller then moves elements one by one). Exact, so every set gives the
	// same bits.
	transpose16 func(dst []float32, ldd int, src []float32, lds int)
}

// genericKernels are the pure-Go loops, for every architecture.
func genericKernels() *kernels {
	return &kernels{
		name:      "go",
		gemm:      gemmGo,
		expCols:   expColsGo,
		expRows:   expRowsGo,
		colMax:    colMaxGo,
		dsCols:    dsColsGo,
		dsRows:    dsRowsGo,
		scaleRows: scaleRowsGo,
	}
}

// kernelSets returns the kernel sets this build runs on this CPU, best first; the pure-Go
// set, which runs everywhere, is last.
func kernelSets() []*kernels { return append(simdKernelSets(), genericKernels()) }

// KernelSets names the kernel sets this build runs on this CPU, best first: some of
// "avx512", "avx2" (amd64), "neon" (arm64), and always "go". Params.Kernels takes one.
func KernelSets() []string {
	var names []string
	for _, kn := range kernelSets() {
		names = append(names, kn.name)
	}
	return names
}

// KernelsEnv is the environment variable that picks the kernel set when Params.Kernels is
// empty (for benchmarks and for ruling a set out while chasing a bug), e.g.
// ORCHARD_CPUFLASH_KERNELS=avx2.
const KernelsEnv = "ORCHARD_CPUFLASH_KERNELS"

// selectKernels returns the named set, or the best one for "". A set this CPU or build
// does not run is an error naming the ones it does.
func selectKernels(name string) (*kernels, error) {
	sets := kernelSets()
	if name == "" {
		return sets[0], nil
	}
	for _, kn := range sets {
		if kn.name == name {
			return kn, nil
		}
	}
	return nil, fmt.Errorf("kernel set %q does not run here (this CPU and build run %v)", name, KernelSets())
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

// checkTile panics unless every tile operand holds rows × cols elements at stride ld, and
// cols is a multiple of 8 within ld.
func checkTile(op string, rows, cols, ld int, tiles ...[]float32) {
	if rows < 0 || cols < 0 || cols%8 != 0 || cols > ld {
		panic(fmt.Sprintf("cpuflash: %s tile rows=%d cols=%d ld=%d", op, rows, cols, ld))
	}
	for _, t := range tiles {
		if rows > 0 && (rows-1)*ld+cols > len(t) {
			panic(fmt.Sprintf("cpuflash: %s tile has %d elements, needs %d", op, len(t), (rows-1)*ld+cols))
		}
	}
}

func checkVec(op string, n int, vs ...[]float32) {
	for _, v := range vs {
		if len(v) < n {
			panic(fmt.Sprintf("cpuflash: %s vector has %d elements, needs %d", op, len(v), n))
		}
	}
}

// ExpCols checks its operands and runs expCols.
func (kn *kernels) ExpCols(x []float32, rows, cols, ld int, a float32, b, sum []float32) {
	checkTile("expCols", rows, cols, ld, x)
	checkVec("expCols", cols, b)
	if sum != nil {
		checkVec("expCols", cols, sum)
	}
	if rows > 0 && cols > 0 {
		kn.expCols(x, rows, cols, ld, a, b, sum)
	}
}

// ExpRows checks its operands and runs expRows.
func (kn *kernels) ExpRows(x []float32, rows, cols, ld int, a float32, b []float32) {
	checkTile("expRows", rows, cols, ld, x)
	checkVec("expRows", rows, b)
	if rows > 0 && cols > 0 {
		kn.expRows(x, rows, cols, ld, a, b)
	}
}

// ColMax checks its operands and runs colMax.
func (kn *kernels) ColMax(mx, x []float32, rows, cols, ld int) {
	checkTile("colMax", rows, cols, ld, x)
	checkVec("colMax", cols, mx)
	if rows > 0 && cols > 0 {
		kn.colMax(mx, x, rows, cols, ld)
	}
}

// DSCols checks its operands and runs dsCols.
func (kn *kernels) DSCols(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
	checkTile("dsCols", rows, cols, ld, ds, p, dp)
	checkVec("dsCols", cols, d)
	if rows > 0 && cols > 0 {
		kn.dsCols(ds, p, dp, rows, cols, ld, d, s)
	}
}

// DSRows checks its operands and runs dsRows.
func (kn *kernels) DSRows(ds, p, dp []float32, rows, cols, ld int, d []float32, s float32) {
	checkTile("dsRows", rows, cols, ld, ds, p, dp)
	checkVec("dsRows", rows, d)
	if rows > 0 && cols > 0 {
		kn.dsRows(ds, p, dp, rows, cols, ld, d, s)
	}
}

// ScaleRows checks its operands and runs scaleRows.
func (kn *kernels) ScaleRows(x []float32, rows, cols, ld int, f []float32) {
	checkTile("scaleRows", rows, cols, ld, x)
	checkVec("scaleRows", rows, f)
	if rows > 0 && cols > 0 {
		kn.scaleRows(x, rows, cols, ld, f)
	}
}

// b2i passes a bool to assembly as an int.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Banded products skip what a tile's visibility makes zero. A causal or windowed tile on
// the diagonal has a band of visible (query, key) pairs; where the visible ranges follow
// the diagonal (monotone lo and hi, see monotone) the products need only that band.

// bandGroup is the number of rows that share one column range in GEMMBandCols: a
// multiple of mr, large enough that the kernel keeps its column strips busy.
const bandGroup = 2 * mr

// GEMMBandCols is GEMM with acc = false where row i needs only the columns [lo[i], hi[i])
// (empty when lo[i] ≥ hi[i]): rows go in groups of bandGroup, each computing the union of
// its rows' ranges rounded out to multiples of nr. Columns outside a group's range are
// left as they were, or set to 0 with zero.
func (kn *kernels) GEMMBandCols(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, lo, hi []int, zero bool) {
	for i := 0; i < m; i += bandGroup {
		g := min(bandGroup, m-i)
		c0, c1 := n, 0
		for r := i; r < i+g; r++ {
			if lo[r] < hi[r] {
				c0, c1 = min(c0, lo[r]), max(c1, hi[r])
			}
		}
		c0, c1 = max(c0/nr*nr, 0), min(roundUp(c1, nr), n)
		if c0 >= c1 {
			c0, c1 = 0, 0
		}
		if zero {
			for r := i; r < i+g; r++ {
				row := c[r*ldc : r*ldc+n]
				clear(row[:c0])
				clear(row[c1:])
			}
		}
		if c0 < c1 {
			kn.GEMM(g, c1-c0, k, a[i*rs:], rs, ks, b[c0:], ldb, c[i*ldc+c0:], ldc, false)
		}
	}
}

// GEMMBandK is GEMM with acc = true where row i's sum runs only over p in [lo[i], hi[i])
// (the other terms are zero): rows go in groups of mr, each summing over the union of its
// rows' ranges, in increasing p as GEMM does.
func (kn *kernels) GEMMBandK(m, n, k int, a []float32, rs, ks int, b []float32, ldb int, c []float32, ldc int, lo, hi []int) {
	for i := 0; i < m; i += mr {
		k0, k1 := k, 0
		for r := i; r < i+mr; r++ {
			if lo[r] < hi[r] {
				k0, k1 = min(k0, lo[r]), max(k1, hi[r])
			}
		}
		k0, k1 = max(k0, 0), min(k1, k)
		if k0 < k1 {
			kn.GEMM(mr, n, k1-k0, a[i*rs+k0*ks:], rs, ks, b[k0*ldb:], ldb, c[i*ldc:], ldc, true)
		}
	}
}

// Transpose16 checks its operands and runs transpose16, which must be non-nil.
func (kn *kernels) Transpose16(dst []float32, ldd int, src []float32, lds int) {
	if ldd < 16 || lds < 16 || 15*ldd+16 > len(dst) || 15*lds+16 > len(src) {
		panic(fmt.Sprintf("cpuflash: transpose16 ldd=%d lds=%d with %d and %d elements", ldd, lds, len(dst), len(src)))
	}
	kn.transpose16(dst, ldd, src, lds)
}
