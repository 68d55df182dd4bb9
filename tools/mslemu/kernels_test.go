package mslemu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

func f16(x float32) float32 { return tensor.Float16ToFloat32(tensor.Float32ToFloat16(x)) }
func bf16(x float32) float32 {
	return tensor.BFloat16ToFloat32(tensor.Float32ToBFloat16(x))
}

func TestSimdFunctions(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(3, 4))
	// 40 threads: a full SIMD group and a partial one of 8 lanes.
	for _, threads := range []int{128, 40, 32, 1} {
		const groups = 2
		n := groups * threads
		in := randMatrix(rng, n)
		out := make([]byte, 4*16*n)
		require.NoError(t, mslemu.Launch("test_simd_functions", [3]int{groups, 1, 1}, [3]int{threads, 1, 1},
			[]mslemu.Buffer{{Data: mslemu.Float32Bytes(in)}, {Data: out}}))
		got := mslemu.BytesFloat32(out)
		for g := 0; g < n; g++ {
			tg, tid := g/threads, g%threads
			sg, lane := tid/32, tid%32
			active := min(32, threads-sg*32)
			x := in[tg*threads+sg*32 : tg*threads+sg*32+active]
			from := func(src int) float64 {
				if src < 0 || src >= active {
					return float64(x[lane])
				}
				return float64(x[src])
			}
			var sum, pre, maxv, minv, hsum float64
			maxv, minv = math.Inf(-1), math.Inf(1)
			all, any := 1.0, 0.0
			for l, v := range x {
				sum += float64(v)
				hsum += float64(f16(v))
				if l < lane {
					pre += float64(v)
				}
				maxv = math.Max(maxv, float64(v))
				minv = math.Min(minv, float64(v))
				if !(v > -1) {
					all = 0
				}
				if v > 1 {
					any = 1
				}
			}
			var total float64
			for _, v := range in[tg*threads : (tg+1)*threads] {
				total += float64(v)
			}
			want := []float64{sum, maxv, minv, pre, from(31 - lane), from(lane ^ 1), from(lane ^ 8),
				from(lane + 3), from(lane - 5), from(2), from(0), all, any,
				float64(active * (active - 1) / 2), hsum, total}
			tol := []float64{1e-4, 0, 0, 1e-4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1, 1e-3}
			for j := range want {
				assert.InDelta(t, want[j], float64(got[16*g+j]), tol[j], "threads %d, thread %d, output %d", threads, g, j)
			}
		}
	}
}

func TestVectors(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 64
	in := randMatrix(rng, 4*n)
	out := make([]byte, 4*8*n)
	require.NoError(t, mslemu.Launch("test_vectors", [3]int{2, 1, 1}, [3]int{32, 1, 1},
		[]mslemu.Buffer{{Data: mslemu.Float32Bytes(in)}, {Data: out}}))
	got := mslemu.BytesFloat32(out)
	for i := 0; i < n; i++ {
		a, b, c, d := float64(in[4*i]), float64(in[4*i+1]), float64(in[4*i+2]), float64(in[4*i+3])
		m := func(v float64) float64 { return math.Max(v, 0.5) }
		want := []float64{2 * (a*d + b*c), math.Hypot(a, b), 2 * d, m(a) + m(b) + m(c) + m(d),
			float64(f16(float32(c))), math.Abs(b), b, 1}
		for j := range want {
			assert.InDelta(t, want[j], float64(got[8*i+j]), 1e-5, "vector %d output %d", i, j)
		}
	}
}

func TestConversions(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 256
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
	}
	in[0], in[1], in[2] = 65519, 1e-8, float32(math.Inf(-1)) // overflow edge, underflow, inf
	out := make([]byte, 16*n)
	hout := make([]byte, 2*n)
	bout := make([]byte, 2*n)
	require.NoError(t, mslemu.Launch("test_conversions", [3]int{1, 1, 1}, [3]int{n, 1, 1},
		[]mslemu.Buffer{{Data: mslemu.Float32Bytes(in)}, {Data: out}, {Data: hout}, {Data: bout}}))
	got := mslemu.BytesFloat32(out)
	for i, x := range in {
		h, b := f16(x), bf16(x)
		want := []float32{h, b, f16(f16(h*h) + 1), bf16(b * 3)}
		for j := range want {
			assert.Equal(t, math.Float32bits(want[j]), math.Float32bits(got[4*i+j]), "x=%g output %d: want %g got %g", x, j, want[j], got[4*i+j])
		}
		assert.Equal(t, tensor.Float32ToFloat16(x), uint16(hout[2*i])|uint16(hout[2*i+1])<<8, "half bits of %g", x)
		assert.Equal(t, tensor.Float32ToBFloat16(x), uint16(bout[2*i])|uint16(bout[2*i+1])<<8, "bfloat bits of %g", x)
	}
}

func TestPhilox(t *testing.T) {
	requireEmulator(t)
	key := [2]uint32{0xdeadbeef, 12345}
	const n = 100
	out := make([]byte, 16*n)
	require.NoError(t, mslemu.Launch("test_philox", [3]int{1, 1, 1}, [3]int{n, 1, 1},
		[]mslemu.Buffer{{Data: mslemu.Uint32Bytes(key[:])}, {Data: out}}))
	got := mslemu.BytesUint32(out)
	for i := 0; i < n; i++ {
		want := philox.Block([4]uint32{uint32(i), 1, 2, 3}, key)
		assert.Equal(t, want[:], got[4*i:4*i+4], "counter %d", i)
	}
}

// quantize rounds v to the element type of a kernel and returns it and its bytes.
func quantize(v []float32, typ string) ([]float32, []byte) {
	q := make([]float32, len(v))
	switch typ {
	case "f32":
		copy(q, v)
		return q, mslemu.Float32Bytes(q)
	case "f16":
		b := make([]byte, 2*len(v))
		for i, x := range v {
			h := tensor.Float32ToFloat16(x)
			q[i] = tensor.Float16ToFloat32(h)
			b[2*i], b[2*i+1] = byte(h), byte(h>>8)
		}
		return q, b
	default:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			h := tensor.Float32ToBFloat16(x)
			q[i] = tensor.BFloat16ToFloat32(h)
			b[2*i], b[2*i+1] = byte(h), byte(h>>8)
		}
		return q, b
	}
}

func TestSimdgroupOps(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for _, typ := range []string{"f32", "f16", "bf16"} {
		a, ab := quantize(randMatrix(rng, 64), typ)
		b, bb := quantize(randMatrix(rng, 64), typ)
		c, cb := quantize(randMatrix(rng, 64), typ)
		out := make([]byte, 4*5*64)
		require.NoError(t, mslemu.Launch("test_simdgroup_ops_"+typ, [3]int{1, 1, 1}, [3]int{32, 1, 1},
			[]mslemu.Buffer{{Data: ab}, {Data: bb}, {Data: cb}, {Data: out}}))
		got := mslemu.BytesFloat32(out)
		for r := 0; r < 8; r++ {
			for col := 0; col < 8; col++ {
				var abc, atb float64
				for k := 0; k < 8; k++ {
					abc += float64(a[r*8+k]) * float64(b[k*8+col])
					atb += float64(a[k*8+r]) * float64(b[k*8+col])
				}
				abc += float64(c[r*8+col])
				i := r*8 + col
				assert.InDelta(t, abc, float64(got[i]), 1e-5, "%s A*B+C (%d,%d)", typ, r, col)
				assert.InDelta(t, atb, float64(got[64+i]), 1e-5, "%s A^T*B (%d,%d)", typ, r, col)
				assert.InDelta(t, 2*float64(a[i]), float64(got[128+i]), 1e-6, "%s 2I*A (%d,%d)", typ, r, col)
				assert.InDelta(t, 3.0, float64(got[192+i]), 0, "%s filled(3)*I (%d,%d)", typ, r, col)
				assert.InDelta(t, 2*float64(a[i]), float64(got[256+i]), 1e-6, "%s thread_elements*2 (%d,%d)", typ, r, col)
			}
		}
	}
}

func TestSimdgroupMatmul(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, sz := range [][3]int{{16, 16, 8}, {24, 40, 32}, {64, 64, 64}} {
		m, n, k := sz[0], sz[1], sz[2]
		a := randMatrix(rng, m*k)
		b := randMatrix(rng, k*n)
		c0 := randMatrix(rng, m*n)
		bt := make([]float32, n*k)
		for i := 0; i < k; i++ {
			for j := 0; j < n; j++ {
				bt[j*k+i] = b[i*n+j]
			}
		}
		c := mslemu.Float32Bytes(c0)
		require.NoError(t, mslemu.Launch("test_simdgroup_matmul", [3]int{(n + 15) / 16, (m + 15) / 16, 1}, [3]int{128, 1, 1},
			[]mslemu.Buffer{{Data: mslemu.Float32Bytes(a)}, {Data: mslemu.Float32Bytes(bt)}, {Data: c},
				{Data: mslemu.Uint32Bytes([]uint32{uint32(m), uint32(n), uint32(k)})}}))
		got := mslemu.BytesFloat32(c)
		want := matmulRef(a, b, m, n, k)
		for i := range want {
			assert.InDelta(t, want[i]+float64(c0[i]), float64(got[i]), 1e-4*float64(k), "%v at %d", sz, i)
		}
	}
}
