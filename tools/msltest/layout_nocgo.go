//go:build !cgo || !linux

package msltest

// cLayout reports ok = false: the header is read through cgo on Linux only (as the
// emulator runs), so that the macOS Bazel build need not declare a header of another
// package.
func cLayout() (layout, bool) { return layout{}, false }
