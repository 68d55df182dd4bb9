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
// memory that is valid until the buffer is closed.
//
// Every error is an *Error whose Kind is a sentinel (ErrUnavailable,
// ErrNoDevice, ErrCompile, ErrFunctionNotFound, ErrPipeline, ErrOutOfMemory,
// ErrCommandBuffer, ErrEncode, ErrInvalid, ErrClosed), so callers decide with
// errors.Is. Queue.Run checks every command against Metal's limits before it
// encodes anything: Metal itself does not check most of them at run time.
//
// Not here: what the kernels compute, which kernels to run, tensors. Those are
// go/attention/mslplan's and go/attention/metal's.
package metalrt
