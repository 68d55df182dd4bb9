// REJECT clang: no matching function for call to 'store_row'
// A helper taking device memory cannot be given threadgroup memory.
#include <metal_stdlib>
using namespace metal;

inline void store_row(device float* dst, float v) { dst[0] = v; }

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float tile[64];
  store_row(tile, float(tid));
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tile[0];
}
