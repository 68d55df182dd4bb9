//go:build !linux && !darwin

package spec

// physicalMemory returns 0: this system's RAM is not looked up, so the 4 GiB default applies.
func physicalMemory() uint64 { return 0 }
