// Package metal is Orchard's Metal executor: FlashAttention forward and backward on
// Apple GPUs, behind the spec.Executor interface, named "metal".
//
// # What it runs
//
// The kernels are native/msl's attention.metal, compiled once per executor from
// source on first use (or by Warmup), with the local headers inlined since Metal
// compiles from a string without an include path. Which kernel runs, on what grid,
// with what threadgroup size and buffer bindings, comes from go/attention/mslplan —
// the same plan the CPU emulation of the kernels (tools/msltest) is tested with — so
// the GPU runs exactly what the emulator checked. This package only allocates
// buffers, binds them as the plan says and runs the dispatches.
//
// A forward call copies Q, K, V (and the mask and lengths) into fresh shared buffers,
// encodes the forward kernel, commits, waits and checks the command buffer's status;
// only then does it build O (Q's dtype) and L (float32) as new host tensors. A
// backward call runs Delta = rowsum(dO ∘ O), dK/dV and dQ in one command buffer, with
// Delta in private memory. Inputs held in private Metal memory (storage implementing
// BufferStorage) are copied by a blit at the start of the same command buffer. Every
// buffer a call allocates is released when it returns, whatever happened; a failure
// returns no output at all. Inputs are only read.
//
// # When it declines, when it fails
//
// Supports (and Forward and Backward) return an error wrapping spec.ErrUnsupported
// for valid problems the kernels cannot run — mslplan's verdict (float64, head dim
// above 256, strides the kernels cannot read, sizes past 32-bit offsets), threadgroup
// memory beyond the device's, or storage the executor cannot read — so the engine
// moves on quietly. A kernel that fails to compile, a missing function, a pipeline
// that cannot be built, an allocation or a command buffer that fails are errors that
// do not wrap ErrUnsupported: they wrap package metalrt's sentinels (ErrCompile,
// ErrFunctionNotFound, ErrPipeline, ErrOutOfMemory, ErrCommandBuffer, …), and the
// engine falls back visibly. A failed compilation is not retried.
//
// # Where it runs
//
// New opens a Metal device through package metalrt (native/objc). Outside macOS, in
// builds without cgo, on machines without a Metal device, or on GPUs older than
// apple7 (the kernels use SIMD-group matrices), New returns an error wrapping
// ErrUnavailable, which the application treats as "leave Metal out, say why". The
// package itself has no build-tagged files: everything but metalrt's Objective-C
// compiles and is tested on every system, against a fake device that fails on demand
// in each way a Metal device can. The comparison with the reference on a real GPU is
// executor_darwin_test.go, run by the macOS CI workflow.
package metal
