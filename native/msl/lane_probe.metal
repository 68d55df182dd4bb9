// The lane-layout probe: one dispatch of one SIMD group (32 threads) that records which
// elements of an 8x8 SIMD-group matrix each lane holds through thread_elements(), the
// accessor the attention kernels read and write fragments with. Apple does not document
// that layout; the kernels assume MLX's (BaseMMAFrag::get_coord, also MFA's): with
// qid = lane / 4, lane holds (row, col) and (row, col + 1) where
// row = (qid & 4) + (lane / 2) % 4 and col = (qid & 2) * 2 + (lane % 2) * 2.
// tools/gpucheck runs this kernel first on a Mac and decodes out; under emulation the
// same kernel checks the emulator.
//
// out is 6 sections of 64 floats, two per lane (thread_elements()[0], [1]):
//   0  a float matrix loaded from an 8x16 array whose element (r, c) is 16r + c;
//   1  the same array loaded at matrix_origin (8, 0): 16r + 8 + c if origin.x is the
//      column;
//   2  the array loaded with transpose_matrix: element (r, c) is 16c + r;
//   3  a half matrix loaded from an 8x8 array with element (r, c) = 8r + c;
//   4  the array simdgroup_store writes from a matrix whose lane elements were set
//      through thread_elements() to 2·lane and 2·lane + 1 (out[4·64 + i] = array[i]);
//   5  the product of matrix 0 and matrix 2 (simdgroup_multiply): row r, column c is
//      Σ_k (16r + k)(16c + k).
#include <metal_stdlib>
using namespace metal;

[[kernel]] void lane_layout_probe(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float wide[128];   // 8 rows of 16
  threadgroup half narrow[64];   // 8 rows of 8
  threadgroup float stored[64];  // 8 rows of 8
  for (uint i = lane; i < 128u; i += 32u) wide[i] = float(i);
  for (uint i = lane; i < 64u; i += 32u) {
    narrow[i] = half(float(i));
    stored[i] = -1.0f;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);

  simdgroup_float8x8 a;
  simdgroup_load(a, wide, 16);
  out[0 * 64 + 2 * lane] = a.thread_elements()[0];
  out[0 * 64 + 2 * lane + 1] = a.thread_elements()[1];

  simdgroup_float8x8 shifted;
  simdgroup_load(shifted, wide, 16, ulong2(8, 0));
  out[1 * 64 + 2 * lane] = shifted.thread_elements()[0];
  out[1 * 64 + 2 * lane + 1] = shifted.thread_elements()[1];

  simdgroup_float8x8 t;
  simdgroup_load(t, wide, 16, ulong2(0, 0), true);
  out[2 * 64 + 2 * lane] = t.thread_elements()[0];
  out[2 * 64 + 2 * lane + 1] = t.thread_elements()[1];

  simdgroup_half8x8 h;
  simdgroup_load(h, narrow, 8);
  out[3 * 64 + 2 * lane] = float(h.thread_elements()[0]);
  out[3 * 64 + 2 * lane + 1] = float(h.thread_elements()[1]);

  simdgroup_float8x8 s = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  s.thread_elements()[0] = float(2u * lane);
  s.thread_elements()[1] = float(2u * lane + 1u);
  simdgroup_store(s, stored, 8);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint i = lane; i < 64u; i += 32u) out[4 * 64 + i] = stored[i];

  simdgroup_float8x8 c;
  simdgroup_multiply(c, a, t);
  out[5 * 64 + 2 * lane] = c.thread_elements()[0];
  out[5 * 64 + 2 * lane + 1] = c.thread_elements()[1];
}
