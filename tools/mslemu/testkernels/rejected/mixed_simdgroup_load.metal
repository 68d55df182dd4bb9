// REJECT g++: no matching function for call to 'simdgroup_load(metal::simdgroup_float8x8&, metal::half [64]
// simdgroup_load reads elements of the matrix's own type: a half buffer cannot be loaded
// into a simdgroup_float8x8 (Metal's signature takes `const threadgroup T*` for
// simdgroup_matrix<T, ...>).
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup half tile[64];
  for (uint i = lane; i < 64u; i += 32u) tile[i] = half(float(i));
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 m;
  simdgroup_load(m, tile, 8);
  out[lane] = m.thread_elements()[0];
}
