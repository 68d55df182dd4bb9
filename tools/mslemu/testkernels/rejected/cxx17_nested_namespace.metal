// REJECT g++: nested namespace definitions only available
// MSL 3.x is C++14-based: no `namespace a::b`.
#include <metal_stdlib>
using namespace metal;

namespace attn::detail {
inline float one() { return 1.0f; }
}

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = attn::detail::one();
}
