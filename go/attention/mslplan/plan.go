package mslplan

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// ExecutorName is the executor named in the ErrUnsupported errors New returns.
const ExecutorName = "metal"

// Limits the kernels' 32-bit arithmetic and Metal's grid impose.
const (
	maxElements = math.MaxInt32 // elements a kernel may address in one buffer
	maxGroupsY  = 65535         // threadgroups along grid y (B·H or B·Hkv)
)

// Request is what a plan is made from.
type Request struct {
	// Problem is the attention call; New validates it.
	Problem *spec.Problem
	// O and DO are the backward pass's saved O and dO. When set, New checks that they
	// are shaped and typed like Q and the plan reads them with their own strides and
	// offsets; when nil, the plan assumes a contiguous tensor at offset 0 (as the
	// executor's own forward writes O).
	O, DO *tensor.Tensor
	// Family selects the tile table.
	Family GPUFamily
	// Tiles, when set, replaces the table's tiles (tests and tuning). Each tile's BQ and
	// BK must be positive multiples of 8 and its D a multiple of 8 no smaller than the
	// problem's; the kernel of that tile must be instantiated (see Instances).
	Tiles *Tiles
	// SerialDKDV forbids the head split of the dK/dV work (Plan.DKDVHeads), e.g. when
	// its partials do not fit the caller's memory budget.
	SerialDKDV bool
}

// Binding is one buffer argument of a dispatch.
type Binding struct {
	Index   int    // [[buffer(Index)]]
	Name    string // Q, K, V, Mask, LensQ, LensK, O, L, dO, Delta, dQ, dK, dV, dKPart, dVPart, Params
	Offset  int    // bytes from the start of the buffer to the data (a tensor's offset)
	Bytes   int    // bytes the kernel may read or write from Offset
	Written bool   // the kernel writes it
	// Unused: this problem never reads it (no mask, no lengths). Metal still wants a
	// buffer bound: bind any valid one.
	Unused bool
}

// Dispatch is one kernel launch: dispatchThreadgroups(Groups, Threads) with Buffers
// bound.
type Dispatch struct {
	Kernel  Kernel
	Name    string // the [[host_name]] to look up in the library
	Tile    Tile   // zero for Delta and Reduce
	Groups  [3]int // threadgroups per grid
	Threads [3]int // threads per threadgroup
	// ThreadgroupMemory is the static threadgroup memory the kernel declares, in bytes.
	ThreadgroupMemory int
	Buffers           []Binding // ascending Index
	// Constants are the function constants to specialise the kernel with: the plan's
	// (Plan.Constants), the same for every dispatch of a plan.
	Constants []Constant
}

// Plan is everything the Metal executor (and the emulation tests) need to run one
// attention call: the parameter block and the dispatches. The forward pass is Forward;
// the backward pass is Delta, then DKDV (followed by Reduce when DKDVHeads) and DQ,
// which does not depend on DKDV or Reduce. Every dispatch binds Params at BufParams.
type Plan struct {
	DType tensor.DType
	// GradDType is the dtype of dQ, dK and dV (spec.Problem.GradDTypeValue): DType or
	// float32. Params.GradF32 tells the kernels; the DQ and DKDV bindings are sized for it.
	GradDType tensor.DType
	// Library is the Metal library that holds every kernel of the plan (all four share
	// the dtype): see LibraryFor.
	Library Library
	Tiles   Tiles
	Params  Params
	// Constants are the function constants of every dispatch of the plan (a kernel
	// reads only some), in index order.
	// Pipelines are specialised on them: cache a pipeline per (Name, Constants).
	Constants []Constant
	// DKDVHeads (GQA/MQA whose dK/dV grid would under-fill the GPU; see MinGroupsDKDV):
	// DKDV runs one threadgroup per (key block, query head, part) and writes float32
	// partials per query head, [B, H, M, D] each for dK and dV (bindings dKPart and
	// dVPart: scratch the executor allocates, DKDVScratchBytes in all), and Reduce sums
	// each group's partials, in head order, into dK and dV. Otherwise Reduce is the zero
	// Dispatch and DKDV writes dK and dV itself.
	DKDVHeads bool
	Forward,
	Delta,
	DKDV,
	Reduce,
	DQ Dispatch
}

// Dispatches returns the forward dispatch followed by the backward ones, in run order.
func (pl *Plan) Dispatches() []Dispatch {
	return append([]Dispatch{pl.Forward}, pl.Backward()...)
}

// Backward returns the backward dispatches in run order: Delta, DKDV, Reduce (only
// when DKDVHeads), DQ.
func (pl *Plan) Backward() []Dispatch {
	if pl.DKDVHeads {
		return []Dispatch{pl.Delta, pl.DKDV, pl.Reduce, pl.DQ}
	}
	return []Dispatch{pl.Delta, pl.DKDV, pl.DQ}
}

// DKDVScratchBytes is the size of the head split's float32 partials, dK's and dV's
// together (the bindings dKPart and dVPart), or 0 without the split. At most
// MaxDKDVScratch.
func (pl *Plan) DKDVScratchBytes() int {
	if !pl.DKDVHeads {
		return 0
	}
	return 2 * pl.Reduce.Binding(BufDKPart).Bytes
}

// Binding returns d's binding at buffer index idx, or one with Index −1 when d binds
// none there.
func (d Dispatch) Binding(idx int) Binding {
	for _, b := range d.Buffers {
		if b.Index == idx {
			return b
		}
	}
	return Binding{Index: -1}
}

// New plans r. Errors: a *spec.ArgError (spec.Validate's, or one naming Saved.O or dO)
// for invalid input; an error wrapping spec.ErrUnsupported for
// a valid problem the kernels cannot run (float64, D > MaxHeadDim, a family before
// apple7, a head-dim stride other than 1, tensors past 32-bit offsets); a plain error for
// malformed r.Tiles.
func New(r Request) (*Plan, error) {
	p := r.Problem
	if err := spec.Validate(p); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		t    *tensor.Tensor
	}{{"Saved.O", r.O}, {"dO", r.DO}} {
		if b.t == nil {
			continue
		}
		if !b.t.SameShape(p.Q) || b.t.DType() != p.Q.DType() {
			return nil, &spec.ArgError{Arg: b.name, Rule: fmt.Sprintf("%v %v differs from Q's %v %v", b.t.DType(), b.t.Shape(), p.Q.DType(), p.Q.Shape())}
		}
	}
	d := p.Dims()
	dt := p.Q.DType()
	tiles, err := TilesFor(r.Family, dt, d.D)
	if err != nil {
		return nil, spec.Unsupported(ExecutorName, "%v", err)
	}
	if r.Tiles != nil {
		if err := checkTiles(*r.Tiles, d.D); err != nil {
			return nil, err
		}
		tiles = *r.Tiles
	}
	if d.B*d.H > maxGroupsY {
		return nil, spec.Unsupported(ExecutorName, "B·H = %d exceeds the %d threadgroups of grid y", d.B*d.H, maxGroupsY)
	}
	size := dt.Size()

	views := []struct {
		name string
		t    *tensor.Tensor
	}{{"Q", p.Q}, {"K", p.K}, {"V", p.V}, {"O", r.O}, {"dO", r.DO}}
	for _, v := range views {
		if v.t == nil {
			continue
		}
		if err := checkView(v.name, v.t); err != nil {
			return nil, err
		}
	}
	qShape := []int{d.B, d.H, d.N, d.D}
	kShape := []int{d.B, d.Hkv, d.M, d.D}
	for _, s := range [][]int{qShape, kShape, {d.B, d.H, d.N}} {
		if n := prod(s); n > maxElements {
			return nil, spec.Unsupported(ExecutorName, "a tensor of shape %v has %d elements; the kernels address at most %d", s, n, maxElements)
		}
	}
	if m := p.Mask; m != nil {
		if n := prod(m.Shape[:]); n > maxElements {
			return nil, spec.Unsupported(ExecutorName, "the mask has %d elements; the kernels address at most %d", n, maxElements)
		}
	}

	gdt := p.GradDTypeValue()
	pl := &Plan{DType: dt, GradDType: gdt, Library: LibraryFor(dt), Tiles: tiles}
	pl.Params = params(p, d)
	if gdt != dt {
		pl.Params.GradF32 = 1 // spec.Validate allows only dt or float32
	}
	gsize := gdt.Size()
	pr := &pl.Params
	pr.QStride = strides3(p.Q.Strides())
	pr.KStride = strides3(p.K.Strides())
	pr.VStride = strides3(p.V.Strides())
	// The staged tensors: K and V (forward, dQ), Q and dO (dK/dV). A dO the executor
	// copies is contiguous: its strides are multiples of 4 when D is.
	vec4 := vec4Aligned(p.Q, size) && vec4Aligned(p.K, size) && vec4Aligned(p.V, size) &&
		(r.DO == nil && d.D%4 == 0 || r.DO != nil && vec4Aligned(r.DO, size))
	heads, parts := dkdvSplit(tiles.DKDV, d, r.SerialDKDV)
	pl.DKDVHeads = heads
	if heads {
		pr.DKDVHeads = 1
	}
	pl.Constants = constants(*pr, tiles, vec4, parts == 2)
	qc := strides3(tensor.ContiguousStrides(qShape))
	kc := strides3(tensor.ContiguousStrides(kShape))
	pr.OStride, pr.DOStride, pr.DQStride = qc, qc, qc
	pr.DKStride, pr.DVStride = kc, kc
	if r.O != nil {
		pr.OStride = strides3(r.O.Strides())
	}
	if r.DO != nil {
		pr.DOStride = strides3(r.DO.Strides())
	}

	// Bindings.
	in := func(idx int, name string, t *tensor.Tensor, dense []int) Binding {
		if t == nil {
			return Binding{Index: idx, Name: name, Bytes: prod(dense) * size}
		}
		return Binding{Index: idx, Name: name, Offset: t.Offset() * size, Bytes: Extent(t) * size}
	}
	out := func(idx int, name string, shape []int, elem int) Binding {
		return Binding{Index: idx, Name: name, Bytes: prod(shape) * elem, Written: true}
	}
	rows := []int{d.B, d.H, d.N}
	bq := in(BufQ, "Q", p.Q, nil)
	bk := in(BufK, "K", p.K, nil)
	bv := in(BufV, "V", p.V, nil)
	bmask := Binding{Index: BufMask, Name: "Mask", Unused: true}
	if m := p.Mask; m != nil {
		bmask = Binding{Index: BufMask, Name: "Mask", Bytes: maskBytes(m)}
	}
	blq := Binding{Index: BufLensQ, Name: "LensQ", Unused: true}
	if p.SeqLensQ != nil {
		blq = Binding{Index: BufLensQ, Name: "LensQ", Bytes: 4 * d.B}
	}
	blk := Binding{Index: BufLensK, Name: "LensK", Unused: true}
	if p.SeqLensK != nil {
		blk = Binding{Index: BufLensK, Name: "LensK", Bytes: 4 * d.B}
	}
	bparams := Binding{Index: BufParams, Name: "Params", Bytes: ParamsSize}
	bO := out(BufO, "O", qShape, size)
	bL := out(BufL, "L", rows, 4)
	bOin := in(BufO, "O", r.O, qShape)
	bdO := in(BufDO, "dO", r.DO, qShape)
	bLin := Binding{Index: BufL, Name: "L", Bytes: prod(rows) * 4}
	bDelta := out(BufDelta, "Delta", rows, 4)
	bDeltaIn := bDelta
	bDeltaIn.Written = false

	ft, qt, kt := tiles.Forward, tiles.DQ, tiles.DKDV
	pl.Forward = Dispatch{
		Kernel: Forward, Name: KernelName(Forward, ft, dt), Tile: ft,
		Groups:            [3]int{ceilDiv(d.N, ft.BQ), d.B * d.H, 1},
		Threads:           [3]int{ft.BQ / 8 * 32, 1, 1},
		ThreadgroupMemory: ThreadgroupMemory(Forward, ft, size),
		Buffers:           []Binding{bq, bk, bv, bmask, blq, blk, bO, bL, bparams},
	}
	pl.Delta = Dispatch{
		Kernel: Delta, Name: KernelName(Delta, Tile{}, dt),
		Groups:  [3]int{ceilDiv(d.B*d.H*d.N, DeltaRows), 1, 1},
		Threads: [3]int{DeltaRows * 32, 1, 1},
		Buffers: []Binding{bOin, bdO, bDelta, bparams},
	}
	bdK, bdV := out(BufDK, "dK", kShape, gsize), out(BufDV, "dV", kShape, gsize)
	bdKPart := Binding{Index: BufDKPart, Name: "dKPart", Unused: true}
	bdVPart := Binding{Index: BufDVPart, Name: "dVPart", Unused: true}
	kvRows := d.B * d.Hkv
	if heads {
		// DKDV writes the partials, Reduce reads them and writes dK and dV.
		bdKPart = out(BufDKPart, "dKPart", []int{d.B, d.H, d.M, d.D}, 4)
		bdVPart = out(BufDVPart, "dVPart", []int{d.B, d.H, d.M, d.D}, 4)
		kvRows = d.B * d.H
		in := func(b Binding) Binding { b.Written = false; return b }
		unused := func(b Binding) Binding { return Binding{Index: b.Index, Name: b.Name, Unused: true} }
		pl.Reduce = Dispatch{
			Kernel: Reduce, Name: KernelName(Reduce, Tile{}, dt),
			Groups:  [3]int{ceilDiv(prod(kShape), ReduceThreads), 1, 1},
			Threads: [3]int{ReduceThreads, 1, 1},
			Buffers: []Binding{bdK, bdV, bparams, in(bdKPart), in(bdVPart)},
		}
		bdK, bdV = unused(bdK), unused(bdV)
	}
	pl.DKDV = Dispatch{
		Kernel: DKDV, Name: KernelName(DKDV, kt, dt), Tile: kt,
		Groups:            [3]int{ceilDiv(d.M, kt.BK), kvRows, parts},
		Threads:           [3]int{kt.BK / 8 * 32, 1, 1},
		ThreadgroupMemory: ThreadgroupMemory(DKDV, kt, size),
		Buffers: []Binding{bq, bk, bv, bmask, blq, blk, bLin, bdO, bDeltaIn,
			bdK, bdV, bparams, bdKPart, bdVPart},
	}
	pl.DQ = Dispatch{
		Kernel: DQ, Name: KernelName(DQ, qt, dt), Tile: qt,
		Groups:            [3]int{ceilDiv(d.N, qt.BQ), d.B * d.H, 1},
		Threads:           [3]int{qt.BQ / 8 * 32, 1, 1},
		ThreadgroupMemory: ThreadgroupMemory(DQ, qt, size),
		Buffers: []Binding{bq, bk, bv, bmask, blq, blk, bLin, bdO, bDeltaIn,
			out(BufDQ, "dQ", qShape, gsize), bparams},
	}
	for _, d := range []*Dispatch{&pl.Forward, &pl.Delta, &pl.DKDV, &pl.DQ} {
		d.Constants = pl.Constants
	}
	if heads {
		pl.Reduce.Constants = pl.Constants
	}
	return pl, nil
}

// params fills everything but the strides.
func params(p *spec.Problem, d spec.Dims) Params {
	pr := Params{
		Batch: uint32(d.B), Heads: uint32(d.H), KVHeads: uint32(d.Hkv), Group: uint32(d.Group()),
		N: uint32(d.N), M: uint32(d.M), D: uint32(d.D),
		Scale:       float32(p.ScaleValue()),
		Softcap:     float32(p.Softcap),
		WindowLeft:  WindowUnbounded,
		WindowRight: WindowUnbounded,
	}
	switch p.Causal {
	case spec.CausalTopLeft:
		pr.Causal = CausalTopLeft
	case spec.CausalBottomRight:
		pr.Causal = CausalBottomRight
	}
	if w := p.Window; w != nil {
		pr.WindowLeft, pr.WindowRight = int32(w.Left), int32(w.Right)
	}
	if m := p.Mask; m != nil {
		pr.MaskKind = MaskBool
		if m.Kind == spec.MaskAdditive {
			pr.MaskKind = MaskAdditive
		}
		n, mm := m.Shape[2], m.Shape[3]
		if m.Shape[0] != 1 {
			pr.MaskStride[0] = uint32(m.Shape[1] * n * mm)
		}
		if m.Shape[1] != 1 {
			pr.MaskStride[1] = uint32(n * mm)
		}
		pr.MaskStride[2] = uint32(mm)
	}
	if p.SeqLensQ != nil {
		pr.HasLensQ = 1
	}
	if p.SeqLensK != nil {
		pr.HasLensK = 1
	}
	if dp := p.Dropout; dp.P > 0 {
		pr.DropoutOn = 1
		pr.DropoutThreshold = philox.Threshold(dp.P)
		pr.DropoutScale = float32(philox.Scale(dp.P))
		pr.SeedLo, pr.SeedHi = uint32(dp.Seed), uint32(dp.Seed>>32)
		pr.OffsetLo, pr.OffsetHi = uint32(dp.Offset), uint32(dp.Offset>>32)
	}
	return pr
}

func checkTiles(t Tiles, d int) error {
	for _, x := range []struct {
		name string
		t    Tile
	}{{"Forward", t.Forward}, {"DQ", t.DQ}, {"DKDV", t.DKDV}} {
		if x.t.BQ < 8 || x.t.BQ%8 != 0 || x.t.BK < 8 || x.t.BK%8 != 0 || x.t.D < d || x.t.D%8 != 0 {
			return fmt.Errorf("mslplan: %s tile %+v: BQ and BK must be positive multiples of 8 and D a multiple of 8 ≥ %d", x.name, x.t, d)
		}
	}
	return nil
}

// checkView accepts a 4-D view the kernels can read in place: unit stride along the head
// dim, and every element within 32-bit offsets.
func checkView(name string, t *tensor.Tensor) error {
	sh, st := t.Shape(), t.Strides()
	if sh[3] > 1 && st[3] != 1 {
		return spec.Unsupported(ExecutorName, "%s has stride %d along the head dim; the kernels need 1 (prepare a contiguous copy)", name, st[3])
	}
	for i := 0; i < 3; i++ {
		if st[i] < 0 || st[i] > maxElements {
			return spec.Unsupported(ExecutorName, "%s has stride %d in dimension %d; the kernels need 0 ≤ stride ≤ %d", name, st[i], i, maxElements)
		}
	}
	if e := Extent(t); e > maxElements {
		return spec.Unsupported(ExecutorName, "%s spans %d elements; the kernels address at most %d", name, e, maxElements)
	}
	return nil
}

// vec4Aligned reports whether the kernels may read view t with 4-element vector loads:
// its first element 16 bytes into its buffer and batch, head and row strides multiples of
// 4 elements, so every row of every (batch, head) starts 4-element aligned (Metal buffers
// are page aligned; the emulator's are 16-byte aligned).
func vec4Aligned(t *tensor.Tensor, size int) bool {
	if t.Offset()*size%16 != 0 {
		return false
	}
	st := t.Strides()
	for i := 0; i < 3; i++ {
		if st[i]%4 != 0 {
			return false
		}
	}
	return true
}

// Extent is the number of elements from a view's first element to its last, inclusive
// (for the non-negative strides the kernels accept): what a buffer binding must cover.
func Extent(t *tensor.Tensor) int {
	sh, st := t.Shape(), t.Strides()
	e := 1
	for i := range sh {
		if sh[i] > 1 {
			e += (sh[i] - 1) * st[i]
		}
	}
	return e
}

// strides3 keeps the batch, head and row strides of a 4-D (or 3-D) stride list.
func strides3(s []int) [3]uint32 { return [3]uint32{uint32(s[0]), uint32(s[1]), uint32(s[2])} }

func prod(s []int) int {
	n := 1
	for _, x := range s {
		n *= x
	}
	return n
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func maskBytes(m *spec.Mask) int {
	n := prod(m.Shape[:])
	if m.Kind == spec.MaskAdditive {
		return 4 * n
	}
	return n
}

// AppendMask appends the mask as the kernels read it at BufMask — one byte (0 or 1) per
// element of a bool mask, a little-endian float32 per element of an additive one, in
// the mask's row-major order — and returns the extended slice. A nil mask appends
// nothing.
func AppendMask(dst []byte, m *spec.Mask) []byte {
	if m == nil {
		return dst
	}
	if m.Kind == spec.MaskAdditive {
		for _, x := range m.Bias {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
		}
		return dst
	}
	for _, k := range m.Keep {
		if k {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}

// AppendLens appends per-batch lengths as little-endian int32s (BufLensQ, BufLensK).
func AppendLens(dst []byte, lens []int) []byte {
	for _, l := range lens {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(int32(l)))
	}
	return dst
}
