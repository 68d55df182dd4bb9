package mslplan

import (
	"fmt"
	"sort"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// GPUFamily is the Apple GPU family of the device (MTLGPUFamilyApple7 = 7, …), as the
// Metal executor reads it from supportsFamily. Families 7 and 8 (M1, M2, A14–A16) share
// one tile table; 9 and later (M3, M4, A17) the other.
type GPUFamily int

// The families the kernels run on. SIMD-group matrices need Apple7 or later.
const (
	Apple7 GPUFamily = 7
	Apple8 GPUFamily = 8
	Apple9 GPUFamily = 9
)

func (f GPUFamily) String() string { return fmt.Sprintf("apple%d", int(f)) }

// Kernel names one of the four kernels.
type Kernel int

// The kernels, in the order a training step runs them.
const (
	Forward Kernel = iota // O and L
	Delta                 // Delta = rowsum(dO ∘ O)
	DKDV                  // dK and dV, parallel over key blocks
	DQ                    // dQ, parallel over query blocks
	Reduce                // dK and dV summed over a group's per-head partials (Plan.DKDVHeads)
)

func (k Kernel) String() string {
	switch k {
	case Forward:
		return "forward"
	case Delta:
		return "delta"
	case DKDV:
		return "dkdv"
	case DQ:
		return "dq"
	case Reduce:
		return "dkdv_reduce"
	}
	return fmt.Sprintf("kernel(%d)", int(k))
}

// HeadDims are the head dims with their own instantiations. Another D runs on the next
// larger one, its extra columns read as zero and never written.
var headDims = [...]int{32, 64, 80, 96, 128, 192, 256}

// HeadDims returns the instantiated head dims, ascending.
func HeadDims() []int { return append([]int(nil), headDims[:]...) }

// MaxHeadDim is the largest head dim the kernels take.
const MaxHeadDim = 256

// PaddedHeadDim returns the instantiated head dim that runs head dim d, or false when d
// is out of range (d < 1 or d > MaxHeadDim).
func PaddedHeadDim(d int) (int, bool) {
	if d < 1 {
		return 0, false
	}
	for _, h := range headDims {
		if d <= h {
			return h, true
		}
	}
	return 0, false
}

// Tile is the block shape of one kernel.
//
//   - Forward and DQ: BQ query rows per threadgroup (BQ/8 SIMD groups of 8 rows), key
//     blocks of BK walked in order.
//   - DKDV: BK keys per threadgroup (BK/8 SIMD groups of 8 keys), query blocks of BQ
//     walked in order.
//
// D is the instantiated head dim.
type Tile struct {
	BQ, BK, D int
}

// Tiles are the tiles of the three tiled kernels for one (family, dtype, head dim).
type Tiles struct {
	Forward, DQ, DKDV Tile
}

// familyTraits are the two numbers the tile table derives from per family.
type familyTraits struct {
	rows   int // Forward/DQ query rows per threadgroup and DKDV keys per threadgroup
	budget int // bytes the staged tiles of one threadgroup may take, before padding
}

func traits(f GPUFamily) familyTraits {
	if f >= Apple9 {
		return familyTraits{rows: 16, budget: 24 << 10}
	}
	return familyTraits{rows: 32, budget: 16 << 10}
}

// Largest step tile (keys per block for Forward and DQ, query rows per block for DKDV).
const (
	maxStepForward = 64
	maxStepDQ      = 32
	maxStepDKDV    = 32
)

// step returns the largest multiple of 8 in [8, max] whose two staged (step × d) tiles
// of elements of size bytes fit in budget. Multiples of 8 rather than powers of two: the
// kernels take any whole number of 8×8 fragments per step, and e.g. float16 at D = 80 on
// apple7 fits 48 keys where a power of two would stop at 32.
func step(budget, d, size, max int) int {
	s := max
	for s > 8 && 2*s*d*size > budget {
		s -= 8
	}
	return s
}

// supportedDType reports whether the kernels take dtype.
func supportedDType(dt tensor.DType) bool {
	return dt == tensor.Float32 || dt == tensor.Float16 || dt == tensor.BFloat16
}

// TilesFor returns the table's tiles for family, dtype and head dim d (any d that
// PaddedHeadDim accepts). The reasoning is in the package documentation.
func TilesFor(f GPUFamily, dt tensor.DType, d int) (Tiles, error) {
	if f < Apple7 {
		return Tiles{}, fmt.Errorf("GPU family %v: the kernels need SIMD-group matrices (apple7 or later)", f)
	}
	if !supportedDType(dt) {
		return Tiles{}, fmt.Errorf("dtype %v: the kernels take float32, float16 and bfloat16", dt)
	}
	hd, ok := PaddedHeadDim(d)
	if !ok {
		return Tiles{}, fmt.Errorf("head dim %d: the kernels take 1 ≤ D ≤ %d", d, MaxHeadDim)
	}
	t := traits(f)
	size := dt.Size()
	return Tiles{
		Forward: Tile{BQ: t.rows, BK: step(t.budget, hd, size, maxStepForward), D: hd},
		DQ:      Tile{BQ: t.rows, BK: step(t.budget, hd, size, maxStepDQ), D: hd},
		DKDV:    Tile{BQ: step(t.budget, hd, size, maxStepDKDV), BK: t.rows, D: hd},
	}, nil
}

// TypeName returns the suffix kernel names use for dtype: f32, f16 or bf16.
func TypeName(dt tensor.DType) string {
	switch dt {
	case tensor.Float32:
		return "f32"
	case tensor.Float16:
		return "f16"
	case tensor.BFloat16:
		return "bf16"
	}
	return dt.String()
}

// KernelName returns the [[host_name]] of kernel k with tile t on dtype dt, e.g.
// attention_fwd_bq32_bk64_d64_f16 or attention_bwd_delta_f32 (the Delta and Reduce
// kernels have no tile).
func KernelName(k Kernel, t Tile, dt tensor.DType) string {
	switch k {
	case Forward:
		return fmt.Sprintf("attention_fwd_bq%d_bk%d_d%d_%s", t.BQ, t.BK, t.D, TypeName(dt))
	case Delta:
		return "attention_bwd_delta_" + TypeName(dt)
	case DKDV:
		return fmt.Sprintf("attention_bwd_dkdv_bq%d_bk%d_d%d_%s", t.BQ, t.BK, t.D, TypeName(dt))
	case DQ:
		return fmt.Sprintf("attention_bwd_dq_bq%d_bk%d_d%d_%s", t.BQ, t.BK, t.D, TypeName(dt))
	case Reduce:
		return "attention_bwd_dkdv_reduce_" + TypeName(dt)
	}
	return ""
}

// Instance is one instantiation of a kernel template in attention.metal.
type Instance struct {
	Kernel Kernel
	Tile   Tile // zero for Delta and Reduce
	DType  tensor.DType
}

// Name returns the instance's [[host_name]].
func (i Instance) Name() string { return KernelName(i.Kernel, i.Tile, i.DType) }

// Instances returns every instantiation the tile table can select, over every family,
// dtype and head dim, sorted by name: the list attention.metal must instantiate.
func Instances() []Instance {
	seen := map[string]Instance{}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		seen[KernelName(Delta, Tile{}, dt)] = Instance{Kernel: Delta, DType: dt}
		seen[KernelName(Reduce, Tile{}, dt)] = Instance{Kernel: Reduce, DType: dt}
		for _, f := range []GPUFamily{Apple7, Apple9} {
			for _, d := range headDims {
				t, err := TilesFor(f, dt, d)
				if err != nil {
					continue // unreachable: every argument is in range
				}
				for _, in := range []Instance{{Forward, t.Forward, dt}, {DKDV, t.DKDV, dt}, {DQ, t.DQ, dt}} {
					seen[in.Name()] = in
				}
			}
		}
	}
	out := make([]Instance, 0, len(seen))
	for _, in := range seen {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// InstanceShard returns shard i of n of Instances(): the instances at positions ≡ i
// (mod n) of the name-sorted list, so n jobs (e.g. CI runs building the emulator) cover
// every instantiation exactly once, in a split that changes only when the list does.
// It returns nil unless 0 ≤ i < n.
func InstanceShard(i, n int) []Instance {
	if n < 1 || i < 0 || i >= n {
		return nil
	}
	var out []Instance
	for j, in := range Instances() {
		if j%n == i {
			out = append(out, in)
		}
	}
	return out
}

// tileLD is the row stride, in elements, of a staged tile in threadgroup memory: the
// head dim plus 16 bytes of padding against bank conflicts (kLD in attention.metal).
func tileLD(d, size int) int { return d + 16/size }

// ThreadgroupMemory returns the bytes of threadgroup memory kernel k declares with tile
// t on elements of size bytes (the kernels' arrays are static: the Metal executor need
// not set a length, but can check this against the device's limit and the pipeline's
// staticThreadgroupMemoryLength).
func ThreadgroupMemory(k Kernel, t Tile, size int) int {
	switch k {
	case Forward, DQ:
		return 2 * t.BK * tileLD(t.D, size) * size // K and V tiles
	case DKDV:
		return 2*t.BQ*tileLD(t.D, size)*size + 2*t.BQ*4 // Q and dO tiles, L and Delta
	}
	return 0
}

// SplitDKDVAbove is the head dim above which the dK/dV kernel is split by output (kSplit
// in attention.metal): its dK and dV accumulators, D/4 values each per lane, do not fit
// the register budget together, so the grid gets a third dimension of 2 and part 0
// computes dV, part 1 dK, each with one accumulator. This is the kernels' head-dim
// blocking: the 2·D-wide [dK | dV] accumulator in two D-wide blocks, at the price of
// computing S^T = K Q^T in both parts (5 GEMMs' worth of work instead of 4).
const SplitDKDVAbove = 128

// DKDVParts returns the threadgroups along grid z that the dK/dV kernel with tile t
// always has: 2 when it must be split by output (D > SplitDKDVAbove), else 1. A plan may
// split it at smaller D too (see MinGroupsDKDV).
func DKDVParts(t Tile) int {
	if t.D > SplitDKDVAbove {
		return 2
	}
	return 1
}

// MinGroupsDKDV is the number of dK/dV threadgroups below which a plan splits the
// dK/dV work further, first over the query heads of each GQA/MQA group (DKDVHeads), then
// by output (function constant attn_fc_split_dkdv, doubling the threadgroups for one
// more S^T = K Q^T per key block). Without the head split the kernel walks a group's
// query heads serially in one threadgroup, so a short key sequence with few key/value
// heads leaves most of the GPU idle: B = 1, Hkv = 1, M = 1024 on apple9 is 64
// threadgroups of 64 threads. 64 is reasoned, not timed: Apple GPUs have 8–40 cores per
// die (M1–M4 families) and each core holds several of these threadgroups, so below 64
// even a small GPU has cores with at most one or two.
const MinGroupsDKDV = 64

// MaxDKDVScratch bounds the float32 partials of the head split (2·B·H·M·d·4 bytes: dK
// and dV per query head), so the split's extra memory is bounded whatever the problem;
// a problem past it keeps the serial walk over the group's heads. The split runs only
// when B·Hkv·⌈M/BK⌉ < MinGroupsDKDV, i.e. B·M < 64·BK ≤ 2048 keys over the batch, so the
// partials are below 4 MiB per query head at D = 256 and 256 MiB is reached only past
// 64 query heads at the longest such M. Reasoned, not timed: the reduction reads the
// partials once (memory-bound, ~1 ms per 256 MiB at the 200–400 GB/s of M-series GPUs),
// small against the dK/dV work it parallelises at those sizes.
const MaxDKDVScratch = 256 << 20

// dkdvSplit is the plan's split of the dK/dV work with tile t on a problem of dims d:
// heads when the kernel runs one threadgroup per query head (GQA/MQA with G > 1 whose
// B·Hkv·⌈M/BK⌉ threadgroups are fewer than MinGroupsDKDV, partials within MaxDKDVScratch
// and 32-bit element offsets; never when serial is set), and parts, its grid z: 2 above
// SplitDKDVAbove, or when the grid (after any head split) still has fewer than
// MinGroupsDKDV threadgroups; else 1.
func dkdvSplit(t Tile, d spec.Dims, serial bool) (heads bool, parts int) {
	kb := ceilDiv(d.M, t.BK)
	heads = !serial && d.Group() > 1 && kb*d.B*d.Hkv < MinGroupsDKDV && dkdvScratchFits(d)
	rows := d.B * d.Hkv
	if heads {
		rows = d.B * d.H
	}
	parts = DKDVParts(t)
	if kb*rows < MinGroupsDKDV {
		parts = 2
	}
	return heads, parts
}

// dkdvScratchFits reports whether the head split's partials of a problem of dims d fit
// MaxDKDVScratch and the kernels' 32-bit element offsets (B·H·M·d elements each). New
// has checked B·H ≤ 65535 and B·Hkv·M·D < 2^31 before, so the product fits an int64.
func dkdvScratchFits(d spec.Dims) bool {
	n := int64(d.B*d.H) * int64(d.M*d.D)
	return n <= maxElements && 2*4*n <= MaxDKDVScratch
}

// RegisterLimit is the number of 32-bit registers one thread (lane) of an Apple GPU can
// address (G13: r0–r127). A kernel whose live values exceed it spills.
const RegisterLimit = 128

// Fixed parts of the register model (32-bit values per lane), beyond the fragments.
const (
	// regScalars: indices, lengths, key ranges, loop state, the running max and sum, and
	// the 64-bit base addresses (2 registers each) a kernel keeps across its main loop.
	regScalarsForward = 30 // 3 addresses
	regScalarsDQ      = 32 // 4 addresses, L and Delta of the row
	regScalarsDKDV    = 34 // 4 addresses, the head loop, the dropout lane slot
	// regTemps: the transient operands of the inner loops (two 8x8 fragments of 2
	// values each, or the dropout words: two uint4 in the forward and dQ; the call,
	// received and selected words, three uint4, in dK/dV).
	regTempsForward = 8
	regTempsDQ      = 8
	regTempsDKDV    = 12
)

// Registers estimates the 32-bit values one lane keeps live in kernel k's main loop with
// tile t: the accumulators (D/4 values per 8×D fragment row), the score fragments (BK/4 or
// BQ/4 each), the operands cached in registers, the inner loops' temporaries and the
// scalars and addresses (regScalars*, regTemps*). It is a model, not the compiler's
// count — that is what a Mac measures (the pipeline's maxTotalThreadsPerThreadgroup falls
// below the threadgroup size when a kernel spills) — and every instantiation is kept at
// or below RegisterLimit by a test. The Delta kernel keeps a handful of values.
func Registers(k Kernel, t Tile) int {
	d := t.D
	switch k {
	case Forward:
		r := d/4 + t.BK/4 // O, S
		if d <= 128 {
			r += d / 4 // Q cached
		}
		return r + regTempsForward + regScalarsForward
	case DQ:
		r := d/4 + 2*(t.BK/4) // dQ, S, dP
		if d <= 64 {
			r += 2 * (d / 4) // Q and dO cached
		}
		return r + regTempsDQ + regScalarsDQ
	case DKDV:
		r := 2*(d/4) + 2*(t.BQ/4) // dK, dV, S^T, dP^T
		if DKDVParts(t) == 2 {
			r = d/4 + 2*(t.BQ/4) // one accumulator per part
		}
		if d <= 64 {
			r += 2 * (d / 4) // K and V cached
		}
		return r + regTempsDKDV + regScalarsDKDV
	case Delta:
		return 8
	case Reduce:
		return 12 // index arithmetic, two sums, the head loop
	}
	return 0
}

// Library is one Metal library compiled from attention.metal (B1). bfloat needs Metal
// Shading Language 3.1 (macOS 14), so the bfloat16 kernels live in their own library: the
// float32 and float16 ones compile with MSL 3.0 and so run wherever Metal 3 does.
type Library struct {
	// Name identifies the library: "attention" or "attention_bf16".
	Name string
	// LanguageMajor.LanguageMinor is the MSL version to compile with
	// (MTLCompileOptions.languageVersion).
	LanguageMajor, LanguageMinor int
	// Macros are the preprocessor macros to define (MTLCompileOptions.preprocessorMacros):
	// ATTN_LIBRARY_BFLOAT=1 restricts the source to the bfloat16 instantiations.
	Macros map[string]string
}

// LibraryFor returns the library that holds the kernels of dtype dt. The metallibs
// compiled ahead of time (//native/msl/metallib: attention_metallib and
// attention_bf16_metallib) are built with the same versions and macros.
func LibraryFor(dt tensor.DType) Library {
	if dt == tensor.BFloat16 {
		return Library{Name: "attention_bf16", LanguageMajor: 3, LanguageMinor: 1,
			Macros: map[string]string{"ATTN_LIBRARY_BFLOAT": "1"}}
	}
	return Library{Name: "attention", LanguageMajor: 3, LanguageMinor: 0}
}

// Library returns the library that holds the instance.
func (i Instance) Library() Library { return LibraryFor(i.DType) }
