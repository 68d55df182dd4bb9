// The MSL features the project's kernels use for speed, each checked by
// features_test.go: function constants (with is_function_constant_defined and a
// parameter that exists only under one), launch hints, loop pragmas, fast:: and
// precise:: math, SIMD shuffles and broadcasts, and vector loads of packed and aligned
// types.
#include <metal_stdlib>
using namespace metal;

namespace feat {
constant bool use_bias [[function_constant(0)]];
constant int repeat_count [[function_constant(1)]];
constant float scale [[function_constant(2)]];
constant half half_offset [[function_constant(3)]];
constant uint maybe_shift [[function_constant(4)]];  // optional: tested below
}  // namespace feat

METAL_FUNC float scaled(float x) { return x * feat::scale; }

// out[i] = (in[i] + (use_bias ? bias[i] : 0)) * repeat_count * scale + half_offset
//          + (maybe_shift defined ? maybe_shift : 1000)
[[kernel]] void test_function_constants(device const float* in [[buffer(0)]],
                                        device const float* bias [[buffer(1), function_constant(feat::use_bias)]],
                                        device float* out [[buffer(2)]],
                                        uint gid [[thread_position_in_grid]]) {
  float x = in[gid];
  if (feat::use_bias) x += bias[gid];
  float acc = 0.0f;
#pragma clang loop unroll(disable)
  for (int i = 0; i < feat::repeat_count; i++) acc += x;
  float shift = is_function_constant_defined(feat::maybe_shift) ? float(feat::maybe_shift) : 1000.0f;
  out[gid] = scaled(acc) + float(feat::half_offset) + shift;
}

// A launch hint that depends on the template's parameters: BQ / 8 SIMD groups.
template <typename T, int BQ>
[[kernel, max_total_threads_per_threadgroup(BQ / 8 * 32)]] void test_hinted(
    device T* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = T(float(tid));
}
template [[host_name("test_hinted_bq16")]] [[kernel]] void test_hinted<float, 16>(
    device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]);

[[kernel]] [[max_total_threads_per_threadgroup(64)]] void test_hinted_plain(device float* out [[buffer(0)]],
                                                                             uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = float(tid);
}

// Loop pragmas and math namespaces. out[lane * 8 + j]:
//   j = 0: sum over 4 unrolled steps of fast::exp2(x)   (x = lane / 32)
//   j = 1: precise::tanh(x)
//   j = 2: fast::log2(1 + x)
//   j = 3: simd_shuffle(x, lane ^ 5)
//   j = 4: simd_shuffle_xor(x, 3)
//   j = 5: simd_broadcast(x, 7)
//   j = 6: simd_shuffle_down(x, 1)  (the last lane keeps its own)
//   j = 7: the sum of a packed_half4 and a float4 loaded as one vector
#define FEAT_UNROLL _Pragma("clang loop unroll(full)")
[[kernel]] void test_math_and_simd(device const half* h [[buffer(0)]], device const float* f [[buffer(1)]],
                                   device float* out [[buffer(2)]], uint lane [[thread_index_in_simdgroup]]) {
  const float x = float(lane) / 32.0f;
  float e = 0.0f;
  FEAT_UNROLL
  for (int i = 0; i < 4; i++) e += fast::exp2(x);
  float t = 0.0f;
#pragma clang loop unroll_count(2)
  for (int i = 0; i < 1; i++) t = precise::tanh(x);
  float l = 0.0f;
#pragma nounroll
  for (int i = 0; i < 1; i++) l = metal::fast::log2(1.0f + x);
  const packed_half4 ph = reinterpret_cast<device const packed_half4*>(h + 2)[lane];  // 2-byte aligned
  const float4 fv = *reinterpret_cast<device const float4*>(f + 4 * lane);
  const float4 sum = float4(half4(ph)) + fv;
  out[lane * 8 + 0] = e;
  out[lane * 8 + 1] = t;
  out[lane * 8 + 2] = l;
  out[lane * 8 + 3] = simd_shuffle(x, ushort(lane ^ 5));
  out[lane * 8 + 4] = simd_shuffle_xor(x, ushort(3));
  out[lane * 8 + 5] = simd_broadcast(x, ushort(7));
  out[lane * 8 + 6] = simd_shuffle_down(x, ushort(1));
  out[lane * 8 + 7] = sum.x + sum.y + sum.z + sum.w + float(ph[3]) * 0.0f;
}

// The lane layout through the MSL API: a matrix whose element (r, c) is r * 8 + c is loaded
// with simdgroup_load; lane l writes its thread_elements() to out[2l], out[2l + 1].
[[kernel]] void test_lane_layout(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float m[64];
  for (uint i = lane; i < 64u; i += 32u) m[i] = float(i);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 f;
  simdgroup_load(f, m, 8);
  out[2 * lane] = f.thread_elements()[0];
  out[2 * lane + 1] = f.thread_elements()[1];
}
