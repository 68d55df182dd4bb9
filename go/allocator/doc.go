// Package allocator owns where tensor memory comes from and how a tensor is made to fit
// an executor. A Strategy allocates storage of one kind (host now; Metal's shared,
// private and managed modes implement the same interface on darwin). A Preparer turns a
// tensor into one an executor can read — the right dtype, contiguous, in a storage kind
// the executor accepts — returning the very same tensor when it already fits and a copy
// only when it must, and counts every copy and its bytes so tests and Engine stats can
// prove that nothing was copied needlessly.
//
// Not here: device handles, command queues, kernels.
package allocator
