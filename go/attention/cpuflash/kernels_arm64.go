//go:build !purego

package cpuflash

// simdKernels returns nil until the NEON kernels land: arm64 runs the pure-Go kernels.
func simdKernels() *kernels { return nil }
