//go:build (!amd64 && !arm64) || purego

package cpuflash

// simdKernels returns nil: this build has only the pure-Go kernels.
func simdKernels() *kernels { return nil }
