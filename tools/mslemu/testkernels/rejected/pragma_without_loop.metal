// REJECT kgen: must be followed by a for, while or do loop
// clang (and so Metal's compiler) rejects a loop pragma that no loop follows; g++ ignores it.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
#pragma clang loop unroll(full)
  out[tid] = 1.0f;
}
