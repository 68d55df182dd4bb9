// REJECT g++: fold-expressions only available
// MSL 3.x is C++14-based: no fold expressions.
#include <metal_stdlib>
using namespace metal;

template <class... X> inline float total(X... x) { return (0.0f + ... + x); }

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = total(1.0f, 2.0f, 3.0f);
}
