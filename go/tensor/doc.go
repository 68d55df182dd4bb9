// Package tensor holds Orchard's dense tensors: a dtype, a shape, strides and an offset
// (both in elements) over a Storage. Views (Permute, Transpose, Slice, Reshape where the
// strides allow it) share storage; Contiguous copies only when it must; Clone always copies.
//
// Storage is an interface so that device memory (a Metal shared buffer, say) can back a
// tensor without a copy; Host storage is a plain byte slice. Element access (At, Set) and
// the float32 fast path (Float32s) are for host-visible storage only.
//
// Not here: arithmetic beyond conversions, broadcasting, autograd. Executors and layers do
// their own loops on the contiguous data this package hands them.
package tensor
