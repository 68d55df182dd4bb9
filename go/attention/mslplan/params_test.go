package mslplan

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFieldsMirrorTheGoStruct: Fields (the C names, checked against the header by
// tools/msltest) and the Go struct (what Encode writes) list the same fields in the same
// order with the same sizes.
func TestFieldsMirrorTheGoStruct(t *testing.T) {
	fields := Fields()
	typ := reflect.TypeOf(Params{})
	require.Equal(t, typ.NumField(), len(fields))
	off := 0
	for i, f := range fields {
		sf := typ.Field(i)
		assert.Equal(t, int(sf.Offset), f.Offset, "%s (%s) offset", f.Name, sf.Name)
		assert.Equal(t, int(sf.Type.Size()), f.Size, "%s (%s) size", f.Name, sf.Name)
		assert.Equal(t, off, f.Offset, "%s follows the previous field without padding", f.Name)
		off += f.Size
	}
	assert.Equal(t, ParamsSize, off)
	assert.Equal(t, 204, ParamsSize)
}

func TestEncodeLaysOutEveryField(t *testing.T) {
	p := Params{
		Batch: 1, Heads: 2, KVHeads: 3, Group: 4, N: 5, M: 6, D: 7,
		QStride: [3]uint32{8, 9, 10}, KStride: [3]uint32{11, 12, 13}, VStride: [3]uint32{14, 15, 16},
		OStride: [3]uint32{17, 18, 19}, DOStride: [3]uint32{20, 21, 22}, DQStride: [3]uint32{23, 24, 25},
		DKStride: [3]uint32{26, 27, 28}, DVStride: [3]uint32{29, 30, 31},
		Scale: 0.125, Softcap: 30,
		Causal: CausalBottomRight, WindowLeft: -1, WindowRight: 7, MaskKind: MaskAdditive,
		MaskStride: [3]uint32{32, 33, 34}, HasLensQ: 1, HasLensK: 0,
		DropoutOn: 1, DropoutThreshold: 0x80000000, DropoutScale: 2,
		SeedLo: 0xdeadbeef, SeedHi: 0xfeedface, OffsetLo: 35, OffsetHi: 36,
	}
	b := p.Encode()
	require.Len(t, b, ParamsSize)
	word := func(name string, i int) uint32 {
		for _, f := range Fields() {
			if f.Name == name {
				return binary.LittleEndian.Uint32(b[f.Offset+4*i:])
			}
		}
		t.Fatalf("no field %s", name)
		return 0
	}
	assert.Equal(t, uint32(3), word("kv_heads", 0))
	assert.Equal(t, uint32(7), word("d", 0))
	assert.Equal(t, uint32(10), word("q_stride", 2))
	assert.Equal(t, uint32(21), word("do_stride", 1))
	assert.Equal(t, uint32(29), word("dv_stride", 0))
	assert.Equal(t, math.Float32bits(0.125), word("scale", 0))
	assert.Equal(t, math.Float32bits(30), word("softcap", 0))
	assert.Equal(t, uint32(2), word("causal", 0))
	assert.Equal(t, uint32(0xFFFFFFFF), word("window_left", 0), "-1 in two's complement")
	assert.Equal(t, uint32(7), word("window_right", 0))
	assert.Equal(t, uint32(34), word("mask_stride", 2))
	assert.Equal(t, uint32(1), word("has_lens_q", 0))
	assert.Equal(t, uint32(0x80000000), word("dropout_threshold", 0))
	assert.Equal(t, math.Float32bits(2), word("dropout_scale", 0))
	assert.Equal(t, uint32(0xfeedface), word("seed_hi", 0))
	assert.Equal(t, uint32(36), word("offset_hi", 0))
}

// The clamp must keep two scaled logits' difference finite in float32 and must not touch
// any logit a realistic problem produces.
func TestLogitLimit(t *testing.T) {
	scaled := float32(LogitLimit) * float32(math.Log2E)
	if d := float64(scaled) * 2; d >= math.MaxFloat32 {
		t.Fatalf("2·LogitLimit·log2(e) = %g overflows float32", d)
	}
	if float64(float32(LogitLimit)) != LogitLimit {
		t.Fatalf("LogitLimit %g is not a float32", LogitLimit)
	}
	if LogitLimit < 1e30 {
		t.Fatalf("LogitLimit %g would clamp finite logits a problem can produce", LogitLimit)
	}
	bias, log2e := float32(-math.MaxFloat32), float32(math.Log2E)
	if !math.IsInf(float64(bias*log2e), -1) {
		t.Fatalf("−MaxFloat32·log2(e) should overflow in float32; the clamp would be pointless")
	}
}
