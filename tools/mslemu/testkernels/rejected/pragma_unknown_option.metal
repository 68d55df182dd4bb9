// REJECT kgen: unknown option "unrol"
// A misspelt loop pragma is an error for clang; g++ would ignore it silently.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  float s = 0.0f;
#pragma clang loop unrol(full)
  for (int i = 0; i < 4; i++) s += float(i);
  out[tid] = s;
}
