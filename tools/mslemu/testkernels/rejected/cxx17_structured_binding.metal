// REJECT g++: structured bindings only available
// MSL 3.x is C++14-based: no structured bindings.
#include <metal_stdlib>
using namespace metal;

struct Pair {
  float a;
  float b;
};

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  Pair p = {1.0f, 2.0f};
  auto [x, y] = p;
  out[tid] = x + y;
}
