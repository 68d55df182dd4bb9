// REJECT g++: 'if constexpr' only available
// MSL 3.x is C++14-based: C++17's if constexpr does not compile for Metal.
#include <metal_stdlib>
using namespace metal;

template <int N> inline float pick(float a, float b) {
  if constexpr (N > 0) return a;
  return b;
}

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = pick<1>(1.0f, 2.0f);
}
