// Package metal is Orchard's Metal executor: FlashAttention forward and backward on
// Apple GPUs, behind the spec.Executor interface, named "metal".
//
// # What it runs
//
// The kernels are native/msl's attention.metal. Which kernel runs, on what grid, with
// what threadgroup size, buffer bindings and function constants, comes from
// go/attention/mslplan — the same plan the CPU emulation of the kernels is tested with —
// so the GPU runs exactly what the emulator checked. The kernels live in two libraries
// (mslplan.LibraryFor): float32 and float16 compiled with MSL 3.0, bfloat16 alone with
// MSL 3.1, so that float32 and float16 run on systems before macOS 14, where Supports
// declines bfloat16 and says why. When the build provides a precompiled metallib of a
// library (Params.Metallibs, Params.MetallibDir or $ORCHARD_METALLIB_DIR; Bazel builds
// them, native/msl/metallib finds them), it is loaded instead of compiling; otherwise the
// embedded source is compiled on first use (or by Warmup) with the math mode made
// explicit (MathSafe by default). Info says which happened. Pipelines are built once per (kernel, function
// constants) and cached.
//
// # Where buffers live
//
// Inputs already in a Metal buffer of this device (go/allocator's MetalStorage, in any
// storage mode) are bound where they are, at their byte offset, with their own strides:
// no copy. A managed one is first marked modified over the bound range. Other host
// tensors are uploaded into pooled shared buffers (their span only). Results are written
// in place into destinations (into) that live in a buffer of this device, and otherwise
// into new MetalStorage in the mode the Policy chooses — shared on Apple silicon, so the
// returned tensor's bytes are the buffer's contents, managed on a discrete GPU
// (synchronised at the end of the command buffer), private when forced (the host then
// reads it through a counted staging copy). Delta, the float32 dK/dV partials of the
// GQA/MQA head split (mslplan.Plan.DKDVHeads: 2·B·H·M·D·4 bytes, at most
// mslplan.MaxDKDVScratch) and unused bindings come from the same pool, in the policy's
// intermediate mode (private). The partials are counted against the memory budget
// before anything is allocated; when they do not fit, the backward plans the serial dK/dV
// pass instead (mslplan.Request.SerialDKDV), which needs none. The pool keeps at most
// Params.PoolBytes of buffers between calls and is released by Close. Every copy the
// executor makes is counted in CopyStats, by a fixed set of kinds.
//
// A forward call is one command buffer; a backward call two (Delta and dK/dV — with the
// head split, the per-head partials and their reduction — then dQ),
// with the context checked before each. Nothing is returned unless every command buffer
// completed; on failure the output storage allocated for the call is released. Inputs
// are only read.
//
// # When it declines, when it fails
//
// Supports (and Forward and Backward) return an error wrapping spec.ErrUnsupported for
// valid problems the kernels cannot run — mslplan's verdict (float64, head dim above 256,
// strides the kernels cannot read, sizes past 32-bit offsets), bfloat16 before macOS 14,
// threadgroup memory beyond the device's, or storage the executor cannot read (private
// memory of another device) — so the engine moves on quietly. Failures wrap package
// metalrt's sentinels and carry a spec.Cause: ErrCompile, ErrFunctionNotFound and
// ErrPipeline are "compile"; ErrOutOfMemory "out of memory"; ErrCommandBuffer, ErrEncode
// and ErrTimeout "command buffer"; ErrDeviceLost and ErrNoDevice "device lost". After a
// lost device or a command buffer that outlived the wait limit (Params.WaitLimit) the
// executor declines every later call with cause "device lost", without touching the GPU
// again: the GPU may still be writing that call's buffers. A failed compilation is not
// retried.
//
// # Where it runs
//
// New opens a Metal device through package metalrt (native/objc). Outside macOS, in
// builds without cgo, on machines without a Metal device, or on GPUs older than apple7
// (the kernels use SIMD-group matrices), New returns an error wrapping ErrUnavailable,
// which the application treats as "leave Metal out, say why". The package itself has no
// build-tagged files: everything but metalrt's Objective-C compiles and is tested on
// every system, against a fake device that records the calls a real one would receive
// and fails on demand in each way a Metal device can. executor_darwin_test.go runs the
// kernels on a Mac's GPU against the reference, and drives every error class through the
// real shim with metalrt's fault hook.
package metal
