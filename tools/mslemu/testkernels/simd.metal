// Test kernels for the emulator: SIMD-group functions (also in a partial last SIMD
// group), vectors and swizzles, half and bfloat conversions, Philox with uint4 and mulhi.
#include <metal_stdlib>
using namespace metal;

// One output row of 16 floats per thread:
// 0 simd_sum, 1 simd_max, 2 simd_min, 3 simd_prefix_exclusive_sum,
// 4 simd_shuffle(x, 31 - lane), 5 simd_shuffle_xor(x, 1), 6 simd_shuffle_xor(x, 8),
// 7 simd_shuffle_down(x, 3), 8 simd_shuffle_up(x, 5), 9 simd_broadcast(x, 2),
// 10 simd_broadcast_first(x), 11 simd_all(x > -1), 12 simd_any(x > 1),
// 13 simd_sum(uint lane), 14 simd_sum(half(x)), 15 threadgroup-wide sum through
// threadgroup memory (one partial per SIMD group).
[[kernel]] void test_simd_functions(device const float* in [[buffer(0)]],
                                    device float* out [[buffer(1)]],
                                    uint tid [[thread_index_in_threadgroup]],
                                    uint lane [[thread_index_in_simdgroup]],
                                    uint sg [[simdgroup_index_in_threadgroup]],
                                    uint ntg [[threads_per_threadgroup]],
                                    uint nsg [[simdgroups_per_threadgroup]],
                                    uint3 tg [[threadgroup_position_in_grid]]) {
  threadgroup float partial[32];
  const uint g = tg.x * ntg + tid;
  const float x = in[g];
  device float* o = out + g * 16;
  o[0] = simd_sum(x);
  o[1] = simd_max(x);
  o[2] = simd_min(x);
  o[3] = simd_prefix_exclusive_sum(x);
  o[4] = simd_shuffle(x, ushort(31 - lane));
  o[5] = simd_shuffle_xor(x, ushort(1));
  o[6] = simd_shuffle_xor(x, ushort(8));
  o[7] = simd_shuffle_down(x, ushort(3));
  o[8] = simd_shuffle_up(x, ushort(5));
  o[9] = simd_broadcast(x, ushort(2));
  o[10] = simd_broadcast_first(x);
  o[11] = simd_all(x > -1.0f) ? 1.0f : 0.0f;
  o[12] = simd_any(x > 1.0f) ? 1.0f : 0.0f;
  o[13] = float(simd_sum(lane));
  o[14] = float(simd_sum(half(x)));
  const float s = simd_sum(x);
  if (lane == 0) partial[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float total = 0.0f;
  for (uint i = 0; i < nsg; i++) total += partial[i];
  o[15] = total;
}

// Vectors: out[tid] gets 8 floats from float4/half4/uint4 arithmetic, swizzles and
// conversions of in[4*tid .. 4*tid+3] = (a, b, c, d):
// 0 dot((a,b,c,d), (d,c,b,a)), 1 length of .xy, 2 (v.wzyx * 2).x, 3 sum of max(v, 0.5f),
// 4 half4(v) round trip .z, 5 select(v, -v, v < 0).y (= |b|), 6 v.xy = v.yx; then v.x,
// 7 all(v == v) + any(isnan(v)) * 10.
[[kernel]] void test_vectors(device const float4* in [[buffer(0)]], device float* out [[buffer(1)]],
                             uint tid [[thread_position_in_grid]]) {
  float4 v = in[tid];
  const float4 r = v.wzyx;
  device float* o = out + tid * 8;
  o[0] = dot(v, r);
  o[1] = length(v.xy);
  o[2] = (v.wzyx * 2.0f).x;
  const float4 m = max(v, 0.5f);
  o[3] = m.x + m.y + m.z + m.w;
  const half4 h = half4(v);
  o[4] = float4(h).z;
  o[5] = select(v, -v, v < 0.0f).y;
  float4 w = v;
  w.xy = w.yx;
  const float2 pick = tid % 2 == 0 ? w.xy : v.zw;  // two swizzle types
  o[6] = tid % 2 == 0 ? pick.x : w.x;
  o[7] = (all(v == v) ? 1.0f : 0.0f) + (any(isnan(v)) ? 10.0f : 0.0f);
}

// half and bfloat: each thread converts in[tid] (float) to half and to bfloat and back,
// and computes in each type: out[4*tid + 0] = float(half(x)), 1 = float(bfloat(x)),
// 2 = float(half(x) * half(x) + half(1)), 3 = float(bfloat(x) * bfloat(3)).
[[kernel]] void test_conversions(device const float* in [[buffer(0)]], device float* out [[buffer(1)]],
                                 device half* hout [[buffer(2)]], device bfloat* bout [[buffer(3)]],
                                 uint tid [[thread_position_in_grid]]) {
  const float x = in[tid];
  const half h = half(x);
  const bfloat b = bfloat(x);
  out[4 * tid + 0] = float(h);
  out[4 * tid + 1] = float(b);
  out[4 * tid + 2] = float(h * h + half(1.0f));
  out[4 * tid + 3] = float(b * bfloat(3.0f));
  hout[tid] = h;
  bout[tid] = b;
}

// Philox4x32-10 with uint4 arithmetic and mulhi, as the attention kernels use it: out[4*tid
// ..] = Philox(ctr = (tid, 1, 2, 3), key = (key.x, key.y)).
[[kernel]] void test_philox(constant uint2& key [[buffer(0)]], device uint4* out [[buffer(1)]],
                            uint tid [[thread_position_in_grid]]) {
  uint4 c = uint4(tid, 1u, 2u, 3u);
  uint2 k = key;
  for (int r = 0; r < 10; r++) {
    const uint hi0 = mulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint hi1 = mulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k += uint2(0x9E3779B9u, 0xBB67AE85u);
  }
  out[tid] = c;
}

// For benchmarks: `iters` threadgroup barriers (or SIMD sums) in a loop.
[[kernel]] void test_barrier_loop(constant uint& iters [[buffer(0)]], device float* out [[buffer(1)]],
                                  uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float t[1024];
  float acc = 0.0f;
  for (uint i = 0; i < iters; i++) {
    t[tid] = float(i);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    acc += t[0];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  out[tid] = acc;
}

[[kernel]] void test_simd_sum_loop(constant uint& iters [[buffer(0)]], device float* out [[buffer(1)]],
                                   uint tid [[thread_index_in_threadgroup]]) {
  float acc = 0.0f;
  for (uint i = 0; i < iters; i++) acc += simd_sum(float(i));
  out[tid] = acc;
}
