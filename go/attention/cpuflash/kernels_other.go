//go:build (!amd64 && !arm64) || purego

package cpuflash

// simdKernelSets returns nil: this build has only the pure-Go kernels.
func simdKernelSets() []*kernels { return nil }
