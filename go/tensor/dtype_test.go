package tensor_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

// halfValue decodes an IEEE binary16 from its definition, independently of the package:
// (−1)^s · m · 2^−24 for subnormals, (−1)^s · (1024 + m) · 2^(e−25) for normals.
func halfValue(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>10)&0x1F, float64(h&0x3FF)
	switch e {
	case 0:
		return s * math.Ldexp(m, -24)
	case 0x1F:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	}
	return s * math.Ldexp(1024+m, e-25)
}

// bf16Value decodes a bfloat16 from its definition: 8 exponent bits as float32's, 7
// mantissa bits.
func bf16Value(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e, m := int(h>>7)&0xFF, float64(h&0x7F)
	switch e {
	case 0:
		return s * math.Ldexp(m, -133)
	case 0xFF:
		if m == 0 {
			return math.Inf(int(s))
		}
		return math.NaN()
	}
	return s * math.Ldexp(128+m, e-134)
}

func TestDTypeBasics(t *testing.T) {
	cases := []struct {
		d    tensor.DType
		size int
		name string
	}{
		{tensor.Float32, 4, "float32"},
		{tensor.Float16, 2, "float16"},
		{tensor.BFloat16, 2, "bfloat16"},
		{tensor.Float64, 8, "float64"},
		{0, 0, "dtype(0)"},
		{tensor.Float64 + 1, 0, "dtype(5)"},
	}
	for _, c := range cases {
		assert.Equal(t, c.size, c.d.Size(), c.name)
		assert.Equal(t, c.size > 0, c.d.Valid(), c.name)
		assert.Equal(t, c.name, c.d.String())
	}
}

// Widening is exact for every one of the 65536 half patterns, and narrowing the result
// gives the pattern back; NaNs stay NaN with their sign.
func TestFloat16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := tensor.Float16ToFloat32(h)
		want := halfValue(h)
		back := tensor.Float32ToFloat16(f)
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(float64(f)), "%#04x widens to %v", h, f)
			require.Equal(t, uint16(0x7C00), back&0x7C00, "%#04x: NaN narrows to %#04x", h, back)
			require.NotZero(t, back&0x3FF, "%#04x: NaN narrows to Inf", h)
			require.Equal(t, h&0x8000, back&0x8000, "%#04x: NaN keeps its sign", h)
			continue
		}
		require.Equal(t, want, float64(f), "%#04x widens exactly", h)
		require.Equal(t, math.Signbit(want), math.Signbit(float64(f)), "%#04x keeps the sign of zero", h)
		require.Equal(t, h, back, "%#04x round trip", h)
	}
}

func TestBFloat16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := tensor.BFloat16ToFloat32(h)
		want := bf16Value(h)
		back := tensor.Float32ToBFloat16(f)
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(float64(f)))
			require.Equal(t, h|0x0040, back, "%#04x: NaN is quieted, sign and payload kept", h)
			continue
		}
		require.Equal(t, want, float64(f), "%#04x widens exactly", h)
		require.Equal(t, h, back, "%#04x round trip", h)
	}
}

func TestFloat16EdgeValues(t *testing.T) {
	p := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"+0", 0, 0x0000},
		{"−0", float32(math.Copysign(0, -1)), 0x8000},
		{"1", 1, 0x3C00},
		{"−2", -2, 0xC000},
		{"max 65504", 65504, 0x7BFF},
		{"just below the overflow tie", 65519.996, 0x7BFF},
		{"overflow tie 65520 rounds to even: Inf", 65520, 0x7C00},
		{"overflow", 1e6, 0x7C00},
		{"negative overflow", -70000, 0xFC00},
		{"float32 max", math.MaxFloat32, 0x7C00},
		{"+Inf", float32(math.Inf(1)), 0x7C00},
		{"−Inf", float32(math.Inf(-1)), 0xFC00},
		{"smallest normal 2^-14", p(-14), 0x0400},
		{"largest subnormal", p(-14) - p(-24), 0x03FF},
		{"tie below the smallest normal rounds up to even", p(-14) - p(-25), 0x0400},
		{"smallest subnormal 2^-24", p(-24), 0x0001},
		{"half the smallest subnormal ties to 0", p(-25), 0x0000},
		{"just above half the smallest subnormal", p(-25) + p(-40), 0x0001},
		{"negative tie to −0", -p(-25), 0x8000},
		{"3·2^-25 ties to even 2·2^-24", 3 * p(-25), 0x0002},
		{"5·2^-25 ties to even 2·2^-24", 5 * p(-25), 0x0002},
		{"below 2^-25 flushes to 0", p(-26), 0x0000},
		{"float32 subnormal", math.SmallestNonzeroFloat32, 0x0000},
		{"1 + 2^-11 ties to even 1", 1 + p(-11), 0x3C00},
		{"1 + 3·2^-11 ties to even 1 + 2^-9", 1 + 3*p(-11), 0x3C02},
		{"1 + 2^-11 + 2^-23 rounds up", 1 + p(-11) + p(-23), 0x3C01},
		{"carry into the exponent: 2 − 2^-12 → 2", 2 - p(-12), 0x4000},
		{"carry at 2047.5 → 2048", 2047.5, 0x6800},
		{"2046.5 ties to even 2046", 2046.5, 0x67FE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, fmt.Sprintf("%#04x", c.want), fmt.Sprintf("%#04x", tensor.Float32ToFloat16(c.in)))
		})
	}
	for _, nan := range []uint32{0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF} { // quiet, negative, signalling
		f := math.Float32frombits(nan)
		h := tensor.Float32ToFloat16(f)
		assert.True(t, math.IsNaN(halfValue(h)), "%#08x gives %#04x", nan, h)
		assert.Equal(t, uint16(nan>>16)&0x8000, h&0x8000, "NaN sign")
	}
}

func TestBFloat16EdgeValues(t *testing.T) {
	p := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"+0", 0, 0x0000},
		{"−0", float32(math.Copysign(0, -1)), 0x8000},
		{"1", 1, 0x3F80},
		{"1 + 2^-8 ties to even 1", 1 + p(-8), 0x3F80},
		{"1 + 3·2^-8 ties to even 1 + 2^-6", 1 + 3*p(-8), 0x3F82},
		{"1 + 2^-8 + 2^-23 rounds up", 1 + p(-8) + p(-23), 0x3F81},
		{"carry into the exponent", math.Float32frombits(0x3FFFFFFF), 0x4000},
		{"largest bfloat16", bfMax(), 0x7F7F},
		{"float32 max overflows to Inf", math.MaxFloat32, 0x7F80},
		{"overflow tie rounds to even: Inf", math.Float32frombits(0x7F7F8000), 0x7F80},
		{"just below the overflow tie", math.Float32frombits(0x7F7F7FFF), 0x7F7F},
		{"−float32 max", -math.MaxFloat32, 0xFF80},
		{"+Inf", float32(math.Inf(1)), 0x7F80},
		{"−Inf", float32(math.Inf(-1)), 0xFF80},
		{"float32 subnormal rounds to 0", math.SmallestNonzeroFloat32, 0x0000},
		{"subnormal kept", math.Float32frombits(0x00010000), 0x0001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, fmt.Sprintf("%#04x", c.want), fmt.Sprintf("%#04x", tensor.Float32ToBFloat16(c.in)))
		})
	}
	for _, nan := range []uint32{0x7FC00000, 0xFFC00001, 0x7F800001, 0xFF800001} {
		h := tensor.Float32ToBFloat16(math.Float32frombits(nan))
		assert.True(t, math.IsNaN(bf16Value(h)), "%#08x gives %#04x, want a NaN (a signalling NaN must not become Inf)", nan, h)
		assert.Equal(t, uint16(nan>>16)&0x8000, h&0x8000, "NaN sign")
	}
}

func bfMax() float32 { return math.Float32frombits(0x7F7F0000) }

// nearestError says why narrow(x) is not the representable value nearest x (ties to an
// even mantissa), or returns nil. It compares with the neighbours in magnitude: value is
// monotone in the magnitude bits, so beating both neighbours means beating every value.
// maxMag is the largest finite magnitude pattern; from overflow on, x must become Inf.
// (Plain comparisons rather than testify: this runs about a million times.)
func nearestError(x float32, narrow func(float32) uint16, value func(uint16) float64, maxMag uint16, overflow float64) error {
	h := narrow(x)
	xv := float64(x)
	sign := uint16(0)
	if math.Signbit(xv) {
		sign = 0x8000
	}
	if h&0x8000 != sign {
		return fmt.Errorf("%v (%#08x) → %#04x: wrong sign", x, math.Float32bits(x), h)
	}
	got := value(h)
	if math.Abs(xv) >= overflow {
		if !math.IsInf(got, 0) {
			return fmt.Errorf("%v → %#04x, want Inf", x, h)
		}
		return nil
	}
	mag := h & 0x7FFF
	if mag > maxMag {
		return fmt.Errorf("%v (%#08x) → %#04x is not finite", x, math.Float32bits(x), h)
	}
	dg := math.Abs(xv - got)
	for _, m := range []int{int(mag) - 1, int(mag) + 1} {
		if m < 0 || m > int(maxMag) {
			continue
		}
		dc := math.Abs(xv - value(sign|uint16(m)))
		if dg > dc {
			return fmt.Errorf("%v (%#08x) → %#04x = %v, but %#04x is nearer", x, math.Float32bits(x), h, got, sign|uint16(m))
		}
		if dg == dc && h&1 != 0 {
			return fmt.Errorf("%v is a tie: %#04x must have an even mantissa", x, h)
		}
	}
	return nil
}

// Every midpoint between neighbouring finite values (the ties) and the float32 values
// just around it, then random float32 values across and beyond the format's range.
func TestFloat16RoundsToNearest(t *testing.T) {
	narrow, value := tensor.Float32ToFloat16, halfValue
	const maxMag, overflow = 0x7BFF, 65520
	for m := uint16(0); m < maxMag; m++ {
		for _, s := range []float64{1, -1} {
			mid := float32(s * (math.Abs(value(m)) + math.Abs(value(m+1))) / 2) // exact in float32
			for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(s)*math.MaxFloat32)} {
				require.NoError(t, nearestError(x, narrow, value, maxMag, overflow))
			}
		}
	}
	r := rand.New(rand.NewPCG(16, 16))
	for range 200000 {
		require.NoError(t, nearestError(randFloat32(r, -30, 17), narrow, value, maxMag, overflow))
	}
}

func TestBFloat16RoundsToNearest(t *testing.T) {
	narrow, value := tensor.Float32ToBFloat16, bf16Value
	const maxMag = 0x7F7F
	overflow := math.Ldexp(1, 128) - math.Ldexp(1, 119) // midpoint of bfloat16 max and 2^128
	for m := uint16(0); m < maxMag; m++ {
		for _, s := range []float64{1, -1} {
			mid := float32(s * (math.Abs(value(m)) + math.Abs(value(m+1))) / 2)
			for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(s)*math.MaxFloat32)} {
				require.NoError(t, nearestError(x, narrow, value, maxMag, overflow))
			}
		}
	}
	r := rand.New(rand.NewPCG(17, 17))
	for range 200000 {
		x := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			continue
		}
		require.NoError(t, nearestError(x, narrow, value, maxMag, overflow))
	}
}

// randFloat32 returns a float32 with a random sign, a binary exponent uniform in
// [lo, hi) and a random mantissa.
func randFloat32(r *rand.Rand, lo, hi int) float32 {
	e := lo + r.IntN(hi-lo)
	bits := uint32(e+127)<<23 | r.Uint32()&0x7FFFFF
	if r.IntN(2) == 0 {
		bits |= 0x80000000
	}
	return math.Float32frombits(bits)
}
