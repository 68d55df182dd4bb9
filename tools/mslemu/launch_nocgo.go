//go:build !cgo

package mslemu

// LaunchWith returns ErrUnavailable: the emulator needs cgo.
func LaunchWith(kernel string, groups, threadsPerGroup [3]int, buffers []Buffer, o Options) error {
	return ErrUnavailable
}

// Kernels returns nil: without cgo no kernel is compiled.
func Kernels() []string { return nil }

// Available reports whether kernels can be launched.
func Available() bool { return false }
