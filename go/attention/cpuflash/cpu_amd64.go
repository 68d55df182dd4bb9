//go:build !purego

package cpuflash

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

func xgetbv0() (lo, hi uint32)

// hasAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves the YMM registers
// (CPUID leaf 1 ECX: FMA bit 12, OSXSAVE bit 27, AVX bit 28; XCR0 bits 1 and 2; CPUID
// leaf 7 EBX: AVX2 bit 5). It is what golang.org/x/sys/cpu reports as X86.HasAVX2 &&
// X86.HasFMA; see the package doc for why the package asks the CPU itself.
func hasAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&fma == 0 || c1&osxsave == 0 || c1&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv0(); xcr0&6 != 6 {
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	return b7&(1<<5) != 0
}
