// Package allocator owns where tensor memory comes from and how a tensor is made to fit
// an executor.
//
// A Strategy allocates storage of one kind. Host is Go memory. MetalStrategy allocates
// MetalStorage in one Metal storage mode on one device: shared (the tensor's bytes are
// the buffer's contents, read and written by the CPU with no copy), private (GPU only:
// the host reaches it through ReadAt and WriteAt, a shared staging buffer and a blit,
// each counted) or managed (for GPUs without unified memory: synchronizeResource before
// the CPU reads, didModifyRange after it writes). A Policy chooses the mode of each
// buffer an executor allocates — shared for what the host touches on unified memory,
// managed on a discrete GPU, private for GPU-only intermediates — unless the caller
// forces one. MetalDevice is the little a strategy needs of a device; NewMetalDevice
// provides it over package metalrt (native/objc), and tests provide fakes.
//
// A Preparer turns a tensor into one an executor can read — the right dtype, contiguous,
// in a storage kind the executor accepts — returning the very same tensor when it
// already fits and a copy only when it must; a source in private memory is read through
// a staging copy (HostView). Every copy is counted (CopyCounter, CopyStats, keyed by a
// fixed set of kinds), so tests and Engine stats can prove that nothing was copied
// needlessly.
//
// Not here: command queues for kernels, pipelines, kernels (go/attention/metal).
package allocator
