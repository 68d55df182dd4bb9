//go:build !cgo || !linux

package msltest

import "github.com/orchard-ml/orchard/go/attention/mslplan"

// cLayout reports ok = false: the header is read through cgo on Linux only (as the
// emulator runs), so that the macOS Bazel build need not declare a header of another
// package.
func cLayout() (fields []mslplan.Field, size int, consts map[string]int, ok bool) {
	return nil, 0, nil, false
}
