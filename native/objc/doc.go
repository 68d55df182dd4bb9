// Package metalrt is Orchard's thin runtime over Apple's Metal: devices, command
// queues, buffers in each storage mode, libraries compiled from Metal Shading
// Language source or loaded from a metallib, compute pipelines, and one call,
// Queue.Run, that encodes a sequence of dispatches and blit copies into a single
// command buffer, commits it, waits, and returns the command buffer's error.
//
// The import path is github.com/orchard-ml/orchard/native/objc; the package is
// named metalrt for what it does rather than the language it is written in.
//
// # How it is built
//
// On macOS (darwin, not ios) with cgo, metal_darwin.go calls Objective-C shims in
// shim_darwin.m (compiled with ARC; every shim body sits in an
// @autoreleasepool). Handles cross into Go as retained Core Foundation
// references; errors cross as a result code plus a message that Go frees and
// wraps in an *Error. Everywhere else, metal_other.go provides the same API and
// every constructor fails with an error wrapping ErrUnavailable.
//
// # Ownership and errors
//
// Every handle has an explicit Close that is nil-safe and idempotent;
// runtime.AddCleanup releases handles that are dropped without Close, as a leak
// backstop only. No Go pointer is kept by C: source text, metallib bytes and
// setBytes payloads are copied during the call that receives them, and Go reads
// and writes host-visible buffers through Buffer.Bytes, a slice over Metal's
// memory that is valid only while the *Buffer is reachable and open: hold the
// *Buffer for as long as the slice is used.
//
// Every error is an *Error whose Kind is a sentinel (ErrUnavailable,
// ErrNoDevice, ErrCompile, ErrFunctionNotFound, ErrPipeline, ErrOutOfMemory,
// ErrCommandBuffer, ErrDeviceLost, ErrTimeout, ErrEncode, ErrInvalid,
// ErrClosed), so callers decide with errors.Is. Queue.Run checks every command
// against Metal's limits before it encodes anything: Metal itself does not
// check most of them at run time. It makes its command buffer with
// MTLCommandBufferErrorOptionEncoderExecutionStatus (an error names the
// encoders that did not complete), and waits at most the queue's wait limit
// (DefaultWaitLimit unless SetWaitLimit). Command-buffer errors are classified:
// device removed, access revoked and not permitted are ErrDeviceLost (nothing
// on that device will work again in this process), out of memory is
// ErrOutOfMemory, the rest ErrCommandBuffer.
//
// Every method that passes a handle to C keeps its receiver and handle
// arguments reachable until the C call returns (runtime.KeepAlive), so the
// cleanup backstop cannot release an object the shim is using.
//
// # Math mode
//
// CompileOptions.Math means the same on every macOS version: MathSafe and
// MathRelaxed select precise FP32 math functions and MathFast fast ones, both
// through fastMathEnabled before macOS 15 and through mathMode plus
// mathFloatingPointFunctions from macOS 15 (where the functions would otherwise
// stay fast). Kernels that call fast:: or precise:: by name get that variant
// whatever the option.
//
// # Host memory without a copy
//
// NewBufferNoCopy hands Metal host memory that the shim mmaps itself (page
// aligned, whole pages, outside the Go heap) and that the buffer's deallocator
// unmaps when Metal destroys the buffer. A Go pointer is never given to Metal.
//
// # Fault injection
//
// Device.SetFaultHook makes the shim fail on purpose, per operation, taking the
// same branch as a real failure (a constructor returning nil, a command buffer
// completing with a given MTLCommandBufferError), so tests on a Mac can drive
// every error class through the real shim and everything above it.
//
// Not here: what the kernels compute, which kernels to run, tensors. Those are
// go/attention/mslplan's and go/attention/metal's.
package metalrt
