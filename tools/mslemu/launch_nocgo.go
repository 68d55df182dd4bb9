//go:build !cgo || !linux

package mslemu

// LaunchWith returns ErrUnavailable: the emulator needs cgo on Linux.
func LaunchWith(kernel string, groups, threadsPerGroup [3]int, buffers []Buffer, o Options) error {
	return ErrUnavailable
}

// Kernels returns nil: no kernel is compiled here.
func Kernels() []string { return nil }

// Available reports whether kernels can be launched.
func Available() bool { return false }

// LaneLayout returns ErrUnavailable: the emulator needs cgo on Linux.
func LaneLayout(lane int) (row, col int, err error) { return 0, 0, ErrUnavailable }
