// Test kernels for the emulator: tiled matrix products with threadgroup arrays, barriers
// and SIMD-group matrices.
#include <metal_stdlib>
using namespace metal;

struct MatmulParams {
  uint m, n, k;  // C (m x n) = A (m x k) * B (k x n), row-major
};

// C = A * B with TILE x TILE threadgroups, one output element per thread, the operands
// staged through threadgroup memory.
template <typename T, int TILE>
[[kernel]] void matmul_tiled(device const T* a [[buffer(0)]],
                             device const T* b [[buffer(1)]],
                             device T* c [[buffer(2)]],
                             constant MatmulParams& p [[buffer(3)]],
                             uint2 tid [[thread_position_in_threadgroup]],
                             uint2 tg [[threadgroup_position_in_grid]]) {
  threadgroup T ta[TILE * TILE];
  threadgroup T tb[TILE * TILE];
  const uint row = tg.y * TILE + tid.y;
  const uint col = tg.x * TILE + tid.x;
  float acc = 0.0f;
  for (uint k0 = 0; k0 < p.k; k0 += TILE) {
    ta[tid.y * TILE + tid.x] = (row < p.m && k0 + tid.x < p.k) ? a[row * p.k + k0 + tid.x] : T(0);
    tb[tid.y * TILE + tid.x] = (col < p.n && k0 + tid.y < p.k) ? b[(k0 + tid.y) * p.n + col] : T(0);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int i = 0; i < TILE; i++) {
      acc += float(ta[tid.y * TILE + i]) * float(tb[i * TILE + tid.x]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (row < p.m && col < p.n) {
    c[row * p.n + col] = T(acc);
  }
}

#define INSTANTIATE_MATMUL(name, T, TILE)                                                    \
  template [[host_name(name)]] [[kernel]] void matmul_tiled<T, TILE>(                       \
      device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],                     \
      device T* c [[buffer(2)]], constant MatmulParams& p [[buffer(3)]],                     \
      uint2 tid [[thread_position_in_threadgroup]], uint2 tg [[threadgroup_position_in_grid]]);

INSTANTIATE_MATMUL("test_matmul_tiled_f32_t8", float, 8)
INSTANTIATE_MATMUL("test_matmul_tiled_f32_t16", float, 16)
INSTANTIATE_MATMUL("test_matmul_tiled_f16_t16", half, 16)

// C = A * B with SIMD-group matrices: a threadgroup of 4 SIMD groups computes a 16 x 16
// block of C, each SIMD group one 8 x 8 quarter. A is staged through threadgroup memory,
// B is read from device memory transposed (BT holds B^T, n x k), and the accumulator
// starts as C's old value read through thread_elements(). m, n, k are multiples of 8.
[[kernel]] void test_simdgroup_matmul(device const float* a [[buffer(0)]],
                                      device const float* bt [[buffer(1)]],
                                      device float* c [[buffer(2)]],
                                      constant MatmulParams& p [[buffer(3)]],
                                      uint2 tg [[threadgroup_position_in_grid]],
                                      uint tid [[thread_index_in_threadgroup]],
                                      uint sg [[simdgroup_index_in_threadgroup]],
                                      uint lane [[thread_index_in_simdgroup]]) {
  constexpr int BM = 16;
  constexpr int BK = 8;
  threadgroup float ta[BM * BK];
  const uint row0 = tg.y * BM;
  const uint col0 = tg.x * BM;
  const uint sr = (sg / 2) * 8;  // this SIMD group's quarter
  const uint sc = (sg % 2) * 8;

  simdgroup_float8x8 acc;
  // Start from C through thread_elements (Apple's lane layout).
  {
    const uint qid = lane / 4;
    const uint r = (qid & 4) + (lane / 2) % 4;
    const uint cc = (qid & 2) * 2 + (lane % 2) * 2;
    const bool in = row0 + sr + r < p.m && col0 + sc + cc < p.n;
    const uint at = (row0 + sr + r) * p.n + col0 + sc + cc;
    acc.thread_elements()[0] = in ? c[at] : 0.0f;
    acc.thread_elements()[1] = in ? c[at + 1] : 0.0f;
  }
  for (uint k0 = 0; k0 < p.k; k0 += BK) {
    for (uint i = tid; i < BM * BK; i += 128) {
      const uint r = i / BK, kk = i % BK;
      ta[i] = row0 + r < p.m ? a[(row0 + r) * p.k + k0 + kk] : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (row0 + sr < p.m && col0 + sc < p.n) {  // the same for every lane of the SIMD group
      simdgroup_float8x8 ma, mb;
      simdgroup_load(ma, ta, BK, ulong2(0, sr));
      simdgroup_load(mb, bt + (col0 + sc) * p.k, p.k, ulong2(k0, 0), true);
      simdgroup_multiply_accumulate(acc, ma, mb, acc);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  if (row0 + sr < p.m && col0 + sc < p.n) {
    simdgroup_store(acc, c + (row0 + sr) * p.n + col0 + sc, p.n);
  }
}

// D = A * B + C on one 8x8 block of each type, all through threadgroup memory: checks
// loads and stores (with and without transpose), make_filled, the diagonal constructor
// and thread_elements writes before a multiply. Buffers: 0 A, 1 B, 2 C (all 8x8 T),
// 3 out (5 blocks of 8x8 float): A*B+C, A^T*B, 2*I*A, filled(3)*I, A with
// thread_elements doubled.
template <typename T>
[[kernel]] void simdgroup_ops(device const T* a [[buffer(0)]], device const T* b [[buffer(1)]],
                              device const T* c [[buffer(2)]], device float* out [[buffer(3)]],
                              uint lane [[thread_index_in_simdgroup]]) {
  threadgroup T ta[64];
  threadgroup float tout[64];
  for (uint i = lane; i < 64; i += 32) ta[i] = a[i];
  threadgroup_barrier(mem_flags::mem_threadgroup);

  simdgroup_matrix<T, 8, 8> ma, mat, mb, mc;
  simdgroup_load(ma, ta, 8);
  simdgroup_load(mat, ta, 8, ulong2(0, 0), true);
  simdgroup_load(mb, b);
  simdgroup_load(mc, c, 8);

  simdgroup_float8x8 d;
  simdgroup_multiply_accumulate(d, ma, mb, mc);
  simdgroup_store(d, tout, 8);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint i = lane; i < 64; i += 32) out[i] = tout[i];

  simdgroup_multiply(d, mat, mb);
  simdgroup_store(d, out + 64, 8);

  simdgroup_matrix<T, 8, 8> two(T(2));
  simdgroup_multiply(d, two, ma);
  simdgroup_store(d, out, 8, ulong2(0, 16));

  simdgroup_float8x8 three = make_filled_simdgroup_matrix<float, 8, 8>(3.0f);
  simdgroup_float8x8 eye(1.0f);
  simdgroup_multiply(d, three, eye);
  simdgroup_store(d, out + 192, 8);

  ma.thread_elements() *= T(2);
  simdgroup_multiply(d, ma, eye);
  simdgroup_store(d, out + 256, 8);
}

template [[host_name("test_simdgroup_ops_f32")]] [[kernel]] void simdgroup_ops<float>(
    device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
    device const float* c [[buffer(2)]], device float* out [[buffer(3)]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("test_simdgroup_ops_f16")]] [[kernel]] void simdgroup_ops<half>(
    device const half* a [[buffer(0)]], device const half* b [[buffer(1)]],
    device const half* c [[buffer(2)]], device float* out [[buffer(3)]],
    uint lane [[thread_index_in_simdgroup]]);
template [[host_name("test_simdgroup_ops_bf16")]] [[kernel]] void simdgroup_ops<bfloat>(
    device const bfloat* a [[buffer(0)]], device const bfloat* b [[buffer(1)]],
    device const bfloat* c [[buffer(2)]], device float* out [[buffer(3)]],
    uint lane [[thread_index_in_simdgroup]]);
