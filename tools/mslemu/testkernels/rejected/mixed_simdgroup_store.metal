// REJECT g++: no matching function for call to 'simdgroup_store(metal::simdgroup_float8x8&, metal::half*&
// simdgroup_store writes elements of the matrix's own type: a simdgroup_float8x8 cannot be
// stored into a half buffer.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device half* out [[buffer(0)]]) {
  simdgroup_float8x8 m = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
  simdgroup_store(m, out, 8);
}
