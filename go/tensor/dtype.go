package tensor

import (
	"fmt"
	"math"
)

// DType is an element type.
type DType uint8

// The element types Orchard stores. Float64 exists for the exact reference and its
// oracle tests; executors other than the reference compute in float32.
const (
	Float32 DType = iota + 1
	Float16
	BFloat16
	Float64
)

// Size returns the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Float16, BFloat16:
		return 2
	case Float64:
		return 8
	}
	return 0
}

// Valid reports whether d is one of the known dtypes.
func (d DType) Valid() bool { return d.Size() > 0 }

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Float32ToBFloat16 rounds f to the nearest bfloat16, ties to even. NaN stays NaN (quiet).
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f { // NaN: keep sign and set a quiet mantissa bit
		return uint16(b>>16) | 0x0040
	}
	// Round to nearest even on the 16 bits that are dropped.
	rounding := uint32(0x7FFF) + ((b >> 16) & 1)
	return uint16((b + rounding) >> 16)
}

// BFloat16ToFloat32 widens a bfloat16 exactly.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToFloat16 rounds f to the nearest IEEE 754 binary16, ties to even, with
// subnormals, overflow to ±Inf and NaN preserved.
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xFF
	man := b & 0x7FFFFF
	switch {
	case exp == 0xFF: // Inf or NaN
		if man != 0 {
			return sign | 0x7E00
		}
		return sign | 0x7C00
	case exp == 0 && man == 0:
		return sign
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1F {
		return sign | 0x7C00
	}
	if e <= 0 {
		// Subnormal half (or underflow to zero): value = man24 * 2^(exp-150); the half's
		// unit is 2^-24, so shift the 24-bit significand right by (126 - exp) - 24 + 24...
		if e < -10 {
			return sign // below half the smallest subnormal: rounds to zero
		}
		m := man | 0x800000 // 24-bit significand
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & ((1 << shift) - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | man>>13
	rem := man & 0x1FFF
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, up to Inf: that is the right rounding
	}
	return sign | uint16(half)
}

// Float16ToFloat32 widens a binary16 exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1F
	man := uint32(h & 0x3FF)
	switch {
	case exp == 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalise.
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		man &= 0x3FF
		return math.Float32frombits(sign | e<<23 | man<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}
