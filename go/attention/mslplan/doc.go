// Package mslplan is the host side of the fused attention kernels in native/msl: it turns
// a spec.Problem into the parameter block and the four dispatches that run it. It is the
// one place that knows the kernels' names, tiles, grids, threadgroup sizes, threadgroup
// memory and buffer bindings; the Metal executor (go/attention/metal, darwin) and the
// emulation tests (tools/msltest, Linux) both use it, so what the tests prove is what a
// Mac runs. Pure Go, no cgo.
//
// # Using a plan
//
//	pl, err := mslplan.New(mslplan.Request{Problem: p, Family: mslplan.Apple9})
//	// errors.Is(err, spec.ErrUnsupported): fall back to another executor.
//	params := pl.Params.Encode() // setBytes at BufParams for every dispatch
//	for _, d := range pl.Dispatches() { … }
//
// Forward pass: pl.Forward writes O ([B, H, N, D], the input dtype) and L ([B, H, N],
// float32). Backward pass, in order: pl.Delta writes Delta ([B, H, N] float32 scratch the
// executor allocates), then pl.DKDV writes dK and dV and pl.DQ writes dQ; DKDV and DQ
// only read what Delta and the forward wrote, so they may run in either order or
// concurrently. No kernel uses atomics: the same inputs give the same bits.
//
// Each Dispatch names the kernel's [[host_name]] (Name), the threadgroups per grid
// (Groups) and threads per threadgroup (Threads) for dispatchThreadgroups, and its
// Buffers: the [[buffer(i)]] index, the byte Offset of a tensor view into its buffer, the
// Bytes the kernel may touch, whether it writes them, and Unused for the optional ones
// the problem does not use (no mask, no lengths) — Metal still wants some buffer bound
// there. The mask and length buffers are built with AppendMask and AppendLens. The
// kernels declare their threadgroup memory statically; ThreadgroupMemory is its size,
// for checks against the device and the pipeline.
//
// Q, K and V are read in place when their head-dim stride is 1 (Params carries the batch,
// head and row strides, so a permuted or sliced view needs no copy); O and dO likewise in
// the backward pass when passed in the Request. Outputs are written contiguous.
//
// # What the kernels do not take
//
// New returns an error wrapping spec.ErrUnsupported for: float64 (the reference's dtype),
// D > 256, GPU families before apple7 (no SIMD-group matrices), a head-dim stride other
// than 1, more than 2^31 − 1 elements in one tensor or the mask, and B·H above 65535
// (grid y). Every other valid problem runs: batch × heads in one dispatch, GQA and MQA,
// N ≠ M, edges that are not tile multiples, causal top-left and bottom-right, bool and
// additive masks with broadcasting, sliding windows, softcap, dropout (package philox's
// stream, bit for bit), per-batch lengths, and rows with no visible key (O = 0, L = −Inf,
// zero gradients).
//
// # Head dims
//
// Head dims 32, 64, 80, 96, 128, 192 and 256 have their own instantiations. Any other
// D ≤ 256 runs on the next larger one: its loads read columns D… as zero and its stores
// skip them, so the only cost is the padded arithmetic.
//
// # Block sizes, and why
//
// Every kernel gives each SIMD group 8 rows of the dimension it parallelises over (query
// rows for the forward and dQ, keys for dK/dV) and walks the other dimension in steps,
// staging the operand that all its SIMD groups share in threadgroup memory: K and V for
// the forward and dQ, Q and dO (plus L and Delta) for dK/dV. Operands private to one SIMD
// group (its Q rows, its K and V rows) never go through threadgroup memory; they stay in
// registers when small and are re-read from device memory (L1-resident) when not. So
// threadgroup memory is 2 × step × D × size bytes (+16 bytes of padding per row), and a
// lane holds, as float32: the accumulators (D/4 values per 8×D accumulator), the score
// fragments (step/4 per 8×step fragment row) and the cached operands. Registers reports
// that count per kernel and tile.
//
// Two numbers per family decide the table (TilesFor):
//
//   - apple7 and apple8 (M1, M2): 32 rows per threadgroup (4 SIMD groups, 128 threads),
//     staged tiles within 16 KiB. Threadgroup memory is 32 KiB per threadgroup and comes
//     out of a fixed per-core allocation that also bounds occupancy, so staying at half
//     of it keeps two threadgroups resident per core to hide device latency. 32 rows is
//     metal-flash-attention's parallelisation block on these GPUs (its published M1
//     forward reaches 86 % of FP16 peak with it).
//   - apple9 and later (M3, M4): 16 rows per threadgroup (2 SIMD groups), staged tiles
//     within 24 KiB. Dynamic caching allocates registers and threadgroup memory from one
//     on-chip pool as they are used, so a larger footprint costs less occupancy, and the
//     larger L1 makes the re-read private operands cheap; metal-flash-attention settles on
//     16-row blocks with long key steps there too.
//
// The step (keys per block for the forward and dQ, query rows per block for dK/dV) is the
// largest power of two from 8 up to a cap that fits the budget: cap 64 for the forward
// (S is then 16 values per lane), 32 for dQ and dK/dV (two score fragments, S and dP, per
// step). For float16 on apple7 this gives forward key steps of 64 at D ≤ 64, 32 up to
// D = 128 and 16 beyond; float32 halves them. Q stays in registers in the forward for
// D ≤ 128; Q and dO (dQ kernel) and K and V (dK/dV kernel) for D ≤ 64. The tests of this
// package check every entry: staged bytes within the family budget and 32 KiB, and at most
// 96 live float32 values per lane up to D = 128.
//
// Known limits of this design, to be measured on hardware: at D = 192 and 256 the dK/dV
// kernel keeps 2 × D/4 = 96 or 128 accumulator values per lane and will spill registers
// (metal-flash-attention instead splits the head dim into blocks and keeps only part of
// dK and dV resident); the forward and dQ at D ≥ 192 take short key steps (16, or 8 in
// float32). All arithmetic is float32 — float16 and bfloat16 are storage types converted
// as they are loaded into SIMD-group matrices — which matches apple7/8, whose FP16 and
// FP32 ALU rates are equal, and leaves native half-precision multiplies on apple9 as
// future tuning. None of this table has been timed on a GPU yet: it is a budget-driven
// starting point, and the Metal executor's benchmarks should replace it entry by entry.
package mslplan
