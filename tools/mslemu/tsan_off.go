//go:build !mslemu_tsan

package mslemu

// ThreadSanitizer reports whether the kernels were built with -fsanitize=thread (the
// mslemu_tsan build tag): a data race between emulated threads then stops the process.
const ThreadSanitizer = false
