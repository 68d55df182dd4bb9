// Package mslplan is the host side of the fused attention kernels in native/msl: it turns
// a spec.Problem into the parameter block and the dispatches that run it. It is the
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
// float32). Backward pass, in order (pl.Backward): pl.Delta writes Delta ([B, H, N]
// float32 scratch the executor allocates), then pl.DKDV writes dK and dV and pl.DQ writes
// dQ; DKDV and DQ only read what Delta and the forward wrote, so they may run in either
// order or concurrently. With pl.DKDVHeads (below), DKDV writes float32 partials per
// query head into two scratch buffers (bindings dKPart and dVPart, pl.DKDVScratchBytes
// in all) and pl.Reduce, run after it, sums them into dK and dV. No kernel uses atomics:
// the same inputs give the same bits.
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
// # Specialisation, libraries, gradients
//
// Plan.Constants (also on every Dispatch) are the kernels' function constants
// (attn_fc_*, ATTN_FC_* in native/msl/attention_params.h): causal, window, bool mask,
// additive mask, softcap, dropout, query lengths, key lengths — each true exactly when the
// problem uses it — and two layout facts: aligned (no kernel of the plan meets an edge
// block, so staging and the interior test drop their bounds checks) and vec4 (every
// staged tensor is 16-byte aligned with strides in multiples of 4 elements, so full
// blocks are staged with vector loads); and split_dkdv, set when the dK/dV dispatch has
// two parts along z (always above D = 128; below, when its grid, after any head split,
// has fewer than MinGroupsDKDV threadgroups). The Metal executor creates each pipeline with
// these values and caches it per (name, constants); the emulator sets them per launch. A
// host that sets none gets correct general kernels.
//
// GQA/MQA head split (Plan.DKDVHeads, Params.DKDVHeads; review finding S11): the dK/dV
// kernel normally gives each key block of each key/value head one threadgroup, which
// walks the G = H/Hkv query heads of its group in turn, so its grid is B·Hkv·⌈M/BK⌉
// threadgroups. When that is below MinGroupsDKDV and G > 1, the plan runs one threadgroup
// per (key block, query head) instead — B·H·⌈M/BK⌉ — each writing float32 partials of
// dK and dV for its head ([B, H, M, D], unscaled), and the Reduce dispatch (one thread
// per element of dK and dV, ReduceThreads per threadgroup) sums each group's G partials
// in head order, scales dK, and writes dK and dV in the gradient dtype. Not when the
// partials would pass MaxDKDVScratch (256 MiB) or 2^31 − 1 elements, nor with
// Request.SerialDKDV (the executor sets it when the partials do not fit the memory
// budget). The threshold is the same reasoned 64 as the output split's, not timed; the
// head split goes first because it recomputes nothing, where the output split
// recomputes S^T. It is a parameter rather than a function constant because it changes
// what tgid.y means: a host that sets no constants must still run it correctly. Dropout
// is unchanged: each element's Philox counter depends on (b, h, i, j) only.
//
// Plan.Library (LibraryFor, Instance.Library) names the library a kernel lives in: the
// float32 and float16 kernels in "attention", compiled with Metal Shading Language 3.0;
// the bfloat16 ones in "attention_bf16", compiled with MSL 3.1 and the macro
// ATTN_LIBRARY_BFLOAT=1, because bfloat needs 3.1 (macOS 14). Both come from the one
// source, native/msl/attention.metal.
//
// Plan.GradDType is the problem's GradDTypeValue: with float32 for float16 or bfloat16
// inputs the kernels write dQ, dK and dV as float32 (Params.GradF32), and the DQ and DKDV
// bindings are sized for it. Biased logits are clamped to ±LogitLimit before the softmax
// (see LogitLimit for what that means for L).
//
// # What the kernels do not take
//
// New returns an error wrapping spec.ErrUnsupported for: float64 (the reference's dtype),
// D > 256, GPU families before apple7 (no SIMD-group matrices), a head-dim stride other
// than 1, more than 2^31 − 1 elements in one tensor or the mask, and B·H above 65535.
// Every other valid problem runs: batch × heads in one dispatch, GQA and MQA, N ≠ M,
// edges that are not tile multiples, causal top-left and bottom-right, bool and additive
// masks with broadcasting, sliding windows, softcap, dropout (package philox's stream,
// bit for bit), per-batch lengths, and rows with no visible key (O = 0, L = −Inf, zero
// gradients).
//
// The B·H limit is a decision, not a Metal rule: B·H runs along grid y, and Metal's
// documentation gives no per-dimension threadgroup count below 2^32 − 1 (its indirect
// dispatch arguments are 32-bit), but 65535 is what other GPU APIs guarantee per
// dimension and no larger grid has been run on a Mac; such problems fall back to another
// executor.
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
// group (its Q rows, its K and V rows) never go through threadgroup memory: they stay in
// registers when small (Q in the forward up to D = 128; Q and dO in dQ, K and V in dK/dV
// up to D = 64) and are otherwise re-read from device memory on every step. Those
// re-reads are not free: M1 and M2 have 8 KB of L1 data cache per core, less than one
// threadgroup's rows at D = 256, so they are served from L2 (a cost that head-dim
// blocking of the operands would remove; not done). Threadgroup memory is 2 × step × D ×
// size bytes (+16 bytes of padding per row).
//
// Two numbers per family decide the table (TilesFor):
//
//   - apple7 and apple8 (M1, M2): 32 rows per threadgroup (4 SIMD groups, 128 threads),
//     staged tiles within 16 KiB, so that two or more threadgroups fit the threadgroup
//     memory of a core (about 60 KB per core on M1/M2 by published micro-benchmarks;
//     Metal's per-threadgroup limit is 32 KiB) and can hide each other's device latency.
//     32 rows is metal-flash-attention's parallelisation block on these GPUs.
//   - apple9 and later (M3, M4): 16 rows per threadgroup (2 SIMD groups), staged tiles
//     within 24 KiB, on the reasoning that dynamic caching allocates registers and
//     threadgroup memory from one on-chip pool as they are used, so a larger footprint
//     costs less occupancy. metal-flash-attention also uses 16-row blocks there, but with
//     128-key steps, head-dim blocking and direct device loads instead of staging — a
//     different design from this table's 8–64-key staged steps.
//
// The step (keys per block for the forward and dQ, query rows per block for dK/dV) is the
// largest multiple of 8 up to a cap that fits the budget: cap 64 for the forward (S is
// then 16 values per lane), 32 for dQ and dK/dV (two score fragments, S and dP, per
// step). For float16 on apple7 this gives forward key steps of 64 at D ≤ 64, 48 at D = 80,
// 40 at D = 96, 32 at D = 128 and 16 beyond; float32 steps are about half as long. The
// tests of this package check every entry: staged bytes within the family budget and
// 32 KiB, and no step 8 longer that would still fit.
//
// All of this is reasoned from budgets, not timed: no kernel has run on an Apple GPU in
// this repository's CI, and the table is a starting point that timings on a Mac
// (tools/gpucheck) should replace entry by entry.
//
// # Registers
//
// Registers(kernel, tile) models the 32-bit values one lane keeps live: accumulators (D/4
// per 8×D fragment row), score fragments, operands cached in registers, the inner loops'
// temporaries (operand fragments or dropout words) and the scalars and 64-bit addresses
// kept across the main loop. A test holds every instantiation at or below RegisterLimit
// (128, the registers a G13 thread addresses); the largest are 126 (dK/dV at D = 64 and
// 128 with 32-query steps), the forward peaks at 114 (apple9 16-bit D = 128, 48-key
// steps) and dQ at 116 (apple9 16-bit D = 256, 24-key steps). The dK/dV kernel above
// D = 128 would need 2 × D/4 accumulators (up to 128), so it is split by output (SplitDKDVAbove, DKDVParts): its grid has two parts along z,
// one computing dV and one dK, each with one D-wide accumulator, at the cost of computing
// S^T = K Q^T in both. `go test -run TestRegisterBudgetEveryInstance -v
// ./go/attention/mslplan` lists the count of every instantiation. The model is not the
// compiler's allocation; on a Mac a kernel that
// spills shows a pipeline maxTotalThreadsPerThreadgroup below its threadgroup size.
//
// Known limits, to be measured on hardware: the forward and dQ at D ≥ 192 take short key
// steps (16, or 8 in float32); all arithmetic is float32 — float16 and bfloat16 are
// storage types converted as they are loaded into SIMD-group matrices — which matches
// apple7/8, whose FP16 and FP32 ALU rates are equal, and leaves native half-precision
// multiplies on apple9 as future tuning.
package mslplan
