package mslemu_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// featureConstants are the function constants of testkernels/features.metal.
func featureConstants(bias bool, repeat int32, scale float32, offset float32, shift *uint32) []mslemu.Constant {
	cs := []mslemu.Constant{
		{Index: 0, Value: bias},
		{Index: 1, Value: repeat},
		{Index: 2, Value: scale},
		{Index: 3, Value: mslemu.Half(tensor.Float32ToFloat16(offset))},
	}
	if shift != nil {
		cs = append(cs, mslemu.Constant{Index: 4, Value: *shift})
	}
	return cs
}

func TestFunctionConstants(t *testing.T) {
	requireEmulator(t)
	const n = 64
	in := make([]float32, n)
	bias := make([]float32, n)
	for i := range in {
		in[i] = float32(i)*0.25 - 3
		bias[i] = float32(i%7) + 0.5
	}
	shift := uint32(7)
	for _, tc := range []struct {
		bias   bool
		repeat int32
		scale  float32
		offset float32
		shift  *uint32
	}{
		{true, 3, 0.5, 1.5, &shift},
		{false, 2, -2, 0.25, nil},
		{true, 0, 1, -4, nil},
		{false, 5, 3, 2, &shift},
	} {
		out := make([]byte, 4*n)
		bufs := []mslemu.Buffer{{Data: mslemu.Float32Bytes(in)}, {}, {Data: out}}
		if tc.bias {
			bufs[1].Data = mslemu.Float32Bytes(bias)
		}
		o := mslemu.Options{Constants: featureConstants(tc.bias, tc.repeat, tc.scale, tc.offset, tc.shift)}
		require.NoError(t, mslemu.LaunchWith("test_function_constants", [3]int{2, 1, 1}, [3]int{32, 1, 1}, bufs, o))
		got := mslemu.BytesFloat32(out)
		for i := range got {
			x := in[i]
			if tc.bias {
				x += bias[i]
			}
			var acc float32
			for r := int32(0); r < tc.repeat; r++ {
				acc += x
			}
			sh := float32(1000)
			if tc.shift != nil {
				sh = float32(*tc.shift)
			}
			want := acc*tc.scale + tc.offset + sh
			assert.InDelta(t, want, got[i], 1e-3, "case %+v element %d", tc, i)
		}
	}
}

func TestFunctionConstantErrors(t *testing.T) {
	requireEmulator(t)
	bufs := []mslemu.Buffer{{Data: make([]byte, 4*32)}, {Data: make([]byte, 4*32)}, {Data: make([]byte, 4*32)}}
	launch := func(cs []mslemu.Constant) error {
		return mslemu.LaunchWith("test_function_constants", [3]int{1, 1, 1}, [3]int{32, 1, 1}, bufs, mslemu.Options{Constants: cs})
	}
	full := featureConstants(true, 1, 1, 0, nil)
	for _, tc := range []struct {
		cs   []mslemu.Constant
		want string
	}{
		{nil, "feat::use_bias [[function_constant(0)]] is not given"},
		{full[1:], "feat::use_bias [[function_constant(0)]] is not given"},
		{append(append([]mslemu.Constant(nil), full...), mslemu.Constant{Index: 9, Value: true}), "no function constant has index 9"},
		{[]mslemu.Constant{{Index: 0, Value: int32(1)}, full[1], full[2], full[3]}, "feat::use_bias [[function_constant(0)]]: given a value of kind 'i' and 4 bytes, declared kind 'b'"},
		{[]mslemu.Constant{full[0], {Index: 1, Value: uint32(1)}, full[2], full[3]}, "declared kind 'i'"},
		{[]mslemu.Constant{full[0], full[1], {Index: 2, Value: 1.0}, full[3]}, "value of Go type float64"},
		{[]mslemu.Constant{full[0], full[0], full[2], full[3]}, "given twice"},
	} {
		err := launch(tc.cs)
		assert.ErrorContains(t, err, tc.want)
	}
	// A correct launch still works after the failures.
	require.NoError(t, launch(full))
}

func TestMaxTotalThreadsPerThreadgroup(t *testing.T) {
	requireEmulator(t)
	cs := featureConstants(false, 1, 1, 0, nil)
	for _, tc := range []struct {
		kernel  string
		limit   int
		threads int
	}{
		{"test_hinted_bq16", 64, 64}, // BQ / 8 * 32 with BQ = 16
		{"test_hinted_bq16", 64, 65},
		{"test_hinted_bq16", 64, 32},
		{"test_hinted_plain", 64, 64},
		{"test_hinted_plain", 64, 128},
	} {
		out := make([]byte, 4*tc.threads)
		err := mslemu.LaunchWith(tc.kernel, [3]int{1, 1, 1}, [3]int{tc.threads, 1, 1},
			[]mslemu.Buffer{{Data: out}}, mslemu.Options{Constants: cs})
		if tc.threads <= tc.limit {
			require.NoError(t, err, "%s with %d threads", tc.kernel, tc.threads)
			assert.Equal(t, float32(tc.threads-1), mslemu.BytesFloat32(out)[tc.threads-1])
		} else {
			assert.ErrorContains(t, err, "exceed the kernel's [[max_total_threads_per_threadgroup(64)]]", "%s", tc.kernel)
		}
	}
}

func TestMathNamespacesShufflesAndVectorLoads(t *testing.T) {
	requireEmulator(t)
	h := make([]uint16, 2+4*32)
	f := make([]float32, 4*32)
	for i := range h {
		h[i] = tensor.Float32ToFloat16(float32(i%11) * 0.5)
	}
	for i := range f {
		f[i] = float32(i) * 0.125
	}
	hb := make([]byte, 2*len(h))
	for i, v := range h {
		hb[2*i], hb[2*i+1] = byte(v), byte(v>>8)
	}
	out := make([]byte, 4*8*32)
	require.NoError(t, mslemu.LaunchWith("test_math_and_simd", [3]int{1, 1, 1}, [3]int{32, 1, 1},
		[]mslemu.Buffer{{Data: hb}, {Data: mslemu.Float32Bytes(f)}, {Data: out}},
		mslemu.Options{Constants: featureConstants(false, 1, 1, 0, nil)}))
	got := mslemu.BytesFloat32(out)
	x := func(lane int) float64 { return float64(lane) / 32 }
	for lane := 0; lane < 32; lane++ {
		row := got[lane*8 : lane*8+8]
		assert.InDelta(t, 4*math.Exp2(x(lane)), float64(row[0]), 1e-5, "exp2 lane %d", lane)
		assert.InDelta(t, math.Tanh(x(lane)), float64(row[1]), 1e-6, "tanh lane %d", lane)
		assert.InDelta(t, math.Log2(1+x(lane)), float64(row[2]), 1e-6, "log2 lane %d", lane)
		assert.Equal(t, float32(x(lane^5)), row[3], "simd_shuffle lane %d", lane)
		assert.Equal(t, float32(x(lane^3)), row[4], "simd_shuffle_xor lane %d", lane)
		assert.Equal(t, float32(x(7)), row[5], "simd_broadcast lane %d", lane)
		down := lane + 1
		if down == 32 {
			down = lane
		}
		assert.Equal(t, float32(x(down)), row[6], "simd_shuffle_down lane %d", lane)
		var sum float32
		for j := 0; j < 4; j++ {
			sum += tensor.Float16ToFloat32(h[2+4*lane+j]) + f[4*lane+j]
		}
		assert.Equal(t, sum, row[7], "vector loads lane %d", lane)
	}
}

// The emulator's lane layout is MLX's BaseMMAFrag layout (written out here independently),
// and LaneLayout reports the one the kernels see through thread_elements().
func TestLaneLayout(t *testing.T) {
	requireEmulator(t)
	out := make([]byte, 4*64)
	require.NoError(t, mslemu.LaunchWith("test_lane_layout", [3]int{1, 1, 1}, [3]int{32, 1, 1},
		[]mslemu.Buffer{{Data: out}}, mslemu.Options{Constants: featureConstants(false, 1, 1, 0, nil)}))
	got := mslemu.BytesFloat32(out)
	seen := map[int]bool{}
	for lane := 0; lane < 32; lane++ {
		qid := lane / 4
		wantRow, wantCol := (qid&4)+(lane/2)%4, (qid&2)*2+(lane%2)*2
		row, col, err := mslemu.LaneLayout(lane)
		require.NoError(t, err)
		assert.Equal(t, [2]int{wantRow, wantCol}, [2]int{row, col}, "lane %d", lane)
		assert.Equal(t, float32(row*8+col), got[2*lane], "lane %d element 0", lane)
		assert.Equal(t, float32(row*8+col+1), got[2*lane+1], "lane %d element 1", lane)
		seen[row*8+col], seen[row*8+col+1] = true, true
	}
	assert.Len(t, seen, 64, "the 32 lanes hold the 64 elements once each")
	_, _, err := mslemu.LaneLayout(32)
	assert.Error(t, err)
}
