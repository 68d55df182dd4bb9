// REJECT kgen: threadgroup pointer or reference
// The emulator's threadgroup memory is `static`: a threadgroup pointer variable would be
// one pointer shared by every thread, so the generator refuses it.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[128];
  threadgroup float* row = tile + tid;
  *row = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tile[tid];
}
