package tensor

import (
	"math"
	"math/bits"
	"strconv"
)

// MaxBytes is the largest byte size New allocates and FromStorage accepts a view to reach:
// 2^48 − 1 on 64-bit systems (the Go runtime refuses larger allocations with a panic inside
// make), math.MaxInt on 32-bit ones. Size computations that would exceed it are refused
// with ErrShape instead of wrapping around.
const MaxBytes = math.MaxInt >> (strconv.IntSize / 64 * 15)

// mulInt returns a·b and whether it did not overflow an int. a, b ≥ 0.
func mulInt(a, b int) (int, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt {
		return 0, false
	}
	return int(lo), true
}

// addInt returns a+b and whether it did not overflow an int.
func addInt(a, b int) (int, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// byteSize returns n elements of d in bytes, or an error naming op when that exceeds
// MaxBytes.
func byteSize(op string, shape []int, n int, d DType) (int, error) {
	b, ok := mulInt(n, d.Size())
	if !ok || b > MaxBytes {
		return 0, shapeErr(op, "shape %v of %v needs more than %d bytes", shape, d, MaxBytes)
	}
	return b, nil
}

// checkedSpan is span with overflow checks: the half-open range of storage elements the
// view can touch, and false when computing it overflows an int.
func (t *Tensor) checkedSpan() (lo, hi int, ok bool) {
	lo, hi = t.offset, t.offset
	for _, d := range t.shape {
		if d == 0 {
			return t.offset, t.offset, true
		}
	}
	if hi, ok = addInt(hi, 1); !ok {
		return 0, 0, false
	}
	for i, d := range t.shape {
		st := t.strides[i]
		mag := st
		if st < 0 {
			if st == math.MinInt {
				return 0, 0, false
			}
			mag = -st
		}
		ext, ok := mulInt(mag, d-1)
		if !ok {
			return 0, 0, false
		}
		if st < 0 {
			lo, ok = addInt(lo, -ext)
		} else {
			hi, ok = addInt(hi, ext)
		}
		if !ok {
			return 0, 0, false
		}
	}
	return lo, hi, true
}
