// Fused FlashAttention for Apple GPUs: forward (O and the row logsumexp L) and backward
// (Delta = rowsum(dO * O); dK and dV parallel over key blocks; dQ parallel over query
// blocks). No atomics anywhere, so gradients are bitwise reproducible.
//
// The semantics are go/attention/spec's; the dispatch geometry (grid, threadgroup size,
// buffers) is computed in one place, go/attention/mslplan, which also documents the block
// sizes. The same file is compiled by Metal on a Mac and, as C++, by tools/mslemu on Linux.
//
// Conventions (the emulator relies on them; keep them):
//   - every tile lives in a threadgroup array declared inside the kernel with a constexpr
//     size, indexed with offsets; no threadgroup pointer variables or parameters;
//   - every barrier is reached by every thread of the threadgroup (loops around barriers
//     depend only on the threadgroup position);
//   - SIMD groups have 32 lanes; SIMD-group matrices are 8x8 float, and lane `lane` holds
//     elements (row, col) and (row, col + 1) of each (see attn::lane_coord).
//
// Numerics: inputs are converted to float32 as they are loaded into SIMD-group matrices;
// every product, the online softmax and every accumulator are float32; outputs are
// rounded to T once. The softmax runs in the log2 domain (exp2 of logits scaled by
// log2(e)); L is stored as a natural log. Hidden logits are -FLT_MAX rather than -inf so
// that the arithmetic stays finite under Metal's default fast math; a row with no visible
// key produces O = 0 and L = -inf.
#include <metal_stdlib>
#include "attention_params.h"

using namespace metal;

namespace attn {

constant constexpr float kLog2e = 1.4426950408889634f;
constant constexpr float kLn2 = 0.6931471805599453f;
// The logit of a hidden element, in the log2 domain. Visible logits are larger.
constant constexpr float kHidden = -FLT_MAX;
// Biased logits (natural log domain) are clamped to [-kLogitLimit, kLogitLimit] = 2^126
// (mslplan.LogitLimit) before the log2(e) scaling, so that a finite bias such as
// -FLT_MAX (torch.finfo(float32).min) stays finite: x * log2(e) <= 1.23e38 and the
// difference of two scaled logits stays below FLT_MAX. A row whose visible keys all carry
// such a bias gets uniform attention, as in the reference; only -inf hides an element.
constant constexpr float kLogitLimit = 8.507059173023462e37f;  // 2^126, exactly
// IEEE -inf, written as bits so that fast math cannot fold it away.
constant constexpr uint kNegInfBits = 0xff800000u;

// Where a lane sits in an 8x8 SIMD-group matrix: it holds M[row][col] and M[row][col + 1]
// (Apple's layout). The four lanes that share a row differ in lane bits 0 and 3, so a row
// reduction is a shuffle-xor by 1 and by 8.
struct Lane {
  int row;
  int col;
};

inline Lane lane_coord(uint lane) {
  const uint qid = lane / 4;
  Lane l;
  l.row = int((qid & 4) + (lane / 2) % 4);
  l.col = int((qid & 2) * 2 + (lane % 2) * 2);
  return l;
}

// Row reductions over the four lanes that hold one row of a SIMD-group matrix.
inline float row_max(float x) {
  x = max(x, simd_shuffle_xor(x, ushort(1)));
  return max(x, simd_shuffle_xor(x, ushort(8)));
}

inline float row_sum(float x) {
  x += simd_shuffle_xor(x, ushort(1));
  return x + simd_shuffle_xor(x, ushort(8));
}

inline simdgroup_float8x8 zero_frag() { return make_filled_simdgroup_matrix<float, 8, 8>(0.0f); }

// This lane's two elements of a fragment, read and written one at a time through
// thread_elements()[i], the form widely used kernels rely on with Apple's compiler.
inline float2 elems(thread simdgroup_float8x8& f) {
  return float2(f.thread_elements()[0], f.thread_elements()[1]);
}

inline void set_elems(thread simdgroup_float8x8& f, float2 v) {
  f.thread_elements()[0] = v.x;
  f.thread_elements()[1] = v.y;
}

// A fragment whose lane elements are (x, y).
inline simdgroup_float8x8 frag_of(float x, float y) {
  simdgroup_float8x8 f;
  set_elems(f, float2(x, y));
  return f;
}

// Loads this lane's two elements, (row, col) and (row, col + 1), of a row-major matrix in
// device memory; elements outside rows x cols read as zero.
template <typename T>
inline simdgroup_float8x8 frag_load(device const T* base, uint row_stride, int row, int col,
                                    int rows, int cols) {
  float x = 0.0f, y = 0.0f;
  if (row < rows) {
    device const T* r = base + uint(row) * row_stride;
    if (col < cols) x = float(r[col]);
    if (col + 1 < cols) y = float(r[col + 1]);
  }
  return frag_of(x, y);
}

// Stores this lane's two elements times scale, skipping those outside rows x cols.
template <typename T>
inline void frag_store(thread simdgroup_float8x8& f, float scale, device T* base, uint row_stride,
                       int row, int col, int rows, int cols) {
  const float2 e = elems(f);
  if (row < rows) {
    device T* r = base + uint(row) * row_stride;
    if (col < cols) r[col] = T(e.x * scale);
    if (col + 1 < cols) r[col + 1] = T(e.y * scale);
  }
}

// Philox4x32-10 (package philox): ten rounds, Weyl-incremented key.
inline uint4 philox(uint4 c, uint2 key) {
  for (int r = 0; r < 10; r++) {
    const uint hi0 = mulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint hi1 = mulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = uint4(hi1 ^ c.y ^ key.x, lo1, hi0 ^ c.w ^ key.y, lo0);
    key += uint2(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

// The four dropout words for columns 4*(j >> 2) ... 4*(j >> 2) + 3 of dropout row row_id
// = (b*H + h)*N + i.
inline uint4 dropout_words(constant AttentionParams& p, uint row_id, int j) {
  return philox(uint4(uint(j) >> 2, row_id, p.offset_lo, p.offset_hi), uint2(p.seed_lo, p.seed_hi));
}

inline bool dropout_keep(constant AttentionParams& p, uint4 w, int j) {
  return w[uint(j) & 3u] >= p.dropout_threshold;
}

// Valid query rows and key rows of batch b.
inline int rows_q(constant AttentionParams& p, device const int* lens_q, uint b) {
  return p.has_lens_q != 0 ? lens_q[b] : int(p.n);
}

inline int rows_k(constant AttentionParams& p, device const int* lens_k, uint b) {
  return p.has_lens_k != 0 ? lens_k[b] : int(p.m);
}

// The half-open range of keys that lengths, causal masking and the window leave visible
// to row i (spec.Problem.KeyRange); n and m are the batch's valid lengths.
inline int2 key_range(constant AttentionParams& p, int n, int m, int i) {
  if (i >= n) return int2(0, 0);
  const int d = i + (p.causal == ATTN_CAUSAL_BOTTOM_RIGHT ? m - n : 0);
  int lo = 0, hi = m;
  if (p.causal != ATTN_CAUSAL_NONE) hi = min(hi, d + 1);
  if (p.window_left >= 0) lo = max(lo, d - p.window_left);
  if (p.window_right >= 0) hi = min(hi, d + p.window_right + 1);
  return int2(lo, max(hi, lo));
}

// The keys that any row of [q0, q1) may see: lo and hi of key_range are non-decreasing
// in i, so the union is [lo(first row), hi(last row)). Empty: lo >= hi.
inline int2 block_key_range(constant AttentionParams& p, int n, int m, int q0, int q1) {
  q1 = min(q1, n);
  if (q0 >= q1) return int2(0, 0);
  return int2(key_range(p, n, m, q0).x, key_range(p, n, m, q1 - 1).y);
}

// The rows that may see any key of [k0, k1): the inverse of key_range. Empty: lo >= hi.
inline int2 block_query_range(constant AttentionParams& p, int n, int m, int k0, int k1) {
  k1 = min(k1, m);
  if (k0 >= k1) return int2(0, 0);
  const int off = p.causal == ATTN_CAUSAL_BOTTOM_RIGHT ? m - n : 0;
  int lo = 0, hi = n;
  // hi(i) > k0 needs i + off + 1 > k0 (causal) and i + off + right + 1 > k0 (window).
  if (p.causal != ATTN_CAUSAL_NONE) lo = max(lo, k0 - off);
  if (p.window_right >= 0) lo = max(lo, k0 - off - p.window_right);
  // lo(i) < k1 needs i + off - left < k1 (window).
  if (p.window_left >= 0) hi = min(hi, k1 - off + p.window_left);
  return int2(lo, max(hi, lo));
}

// The logit of element (i, j) in the log2 domain, from the raw dot product q_i.k_j, or
// kHidden when the element is hidden. kr is key_range(i). t is tanh(s / softcap) (the
// softcap derivative is 1 - t^2), 0 without softcap. mask_base is the mask offset of the
// element's batch and head.
inline float logit(constant AttentionParams& p, device const uchar* mask, uint mask_base,
                   float dot, int i, int j, int2 kr, thread float& t) {
  float x = dot * p.scale;
  t = 0.0f;
  if (p.softcap > 0.0f) {
    t = precise::tanh(x / p.softcap);
    x = p.softcap * t;
  }
  bool vis = j >= kr.x && j < kr.y;
  if (vis && p.mask_kind != ATTN_MASK_NONE) {
    const uint at = mask_base + uint(i) * p.mask_stride[2] + uint(j);
    if (p.mask_kind == ATTN_MASK_BOOL) {
      vis = mask[at] != 0;
    } else {
      const float bias = ((device const float*)mask)[at];
      // -inf hides the element. Tested on the bits: under fast math a float compare
      // with -FLT_MAX may be folded away as if no value could be -inf.
      vis = as_type<uint>(bias) != kNegInfBits;
      x = clamp(x + bias, -kLogitLimit, kLogitLimit);
    }
  }
  return vis ? x * kLog2e : kHidden;
}

}  // namespace attn

// ---------------------------------------------------------------------------- forward
//
// One threadgroup computes BQ query rows of one (batch, head): tgid = (query block,
// b*H + h). BQ/8 SIMD groups each own 8 rows. The key blocks any of the rows may see are
// walked in order; for each, K and V (BK x D) are staged in threadgroup memory and shared
// by the SIMD groups, S = Q K^T (8 x BK per SIMD group) is computed with 8x8 fragments,
// masked, and folded into the running row max m, row sum l and O (8 x D, in registers).
// Q (8 x D per SIMD group) stays in registers for D <= 128 and is re-read otherwise.
//
// Outputs: O = acc / l ([B, H, N, D], T) and L = m ln 2 + ln l ([B, H, N], float);
// rows with no visible key get O = 0, L = -inf.
template <typename T, int BQ, int BK, int D>
[[kernel]] void attention_fwd(device const T* q [[buffer(0)]],
                              device const T* k [[buffer(1)]],
                              device const T* v [[buffer(2)]],
                              device const uchar* mask [[buffer(3)]],
                              device const int* lens_q [[buffer(4)]],
                              device const int* lens_k [[buffer(5)]],
                              device T* o [[buffer(6)]],
                              device float* lse [[buffer(7)]],
                              constant AttentionParams& p [[buffer(13)]],
                              uint3 tgid [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]],
                              uint lane [[thread_index_in_simdgroup]],
                              uint sg [[simdgroup_index_in_threadgroup]]) {
  static_assert(BQ % 8 == 0 && BK % 8 == 0 && D % 8 == 0, "tiles are made of 8x8 fragments");
  constexpr int kThreads = BQ / 8 * 32;
  constexpr int kLD = D + 16 / int(sizeof(T));  // padded tile row: 16 bytes against bank conflicts
  constexpr int kDF = D / 8;                    // fragments across the head dim
  constexpr int kKF = BK / 8;                   // fragments across a key block
  constexpr bool kCacheQ = D <= 128;

  threadgroup T k_tile[BK * kLD];  // (BK, D) keys of the current block
  threadgroup T v_tile[BK * kLD];  // (BK, D) values of the current block

  const uint b = tgid.y / p.heads, h = tgid.y % p.heads, hk = h / p.group;
  const int n = attn::rows_q(p, lens_q, b), m = attn::rows_k(p, lens_k, b);
  const int dh = int(p.d);
  const attn::Lane ln = attn::lane_coord(lane);
  const int q0 = int(tgid.x) * BQ;
  const int row = q0 + int(sg) * 8 + ln.row;  // this lane's query row
  const int2 kr = attn::key_range(p, n, m, row);
  const int2 blk = attn::block_key_range(p, n, m, q0, q0 + BQ);
  const uint mask_base = b * p.mask_stride[0] + h * p.mask_stride[1];
  const uint drop_row = (b * p.heads + h) * p.n + uint(row);

  device const T* qp = q + b * p.q_stride[0] + h * p.q_stride[1];   // (N, D)
  device const T* kp = k + b * p.k_stride[0] + hk * p.k_stride[1];  // (M, D)
  device const T* vp = v + b * p.v_stride[0] + hk * p.v_stride[1];  // (M, D)

  simdgroup_float8x8 qf[kCacheQ ? kDF : 1];  // (8, D) rows of Q, when cached
  if (kCacheQ) {
    for (int dd = 0; dd < kDF; dd++) {
      qf[kCacheQ ? dd : 0] = attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
    }
  }
  simdgroup_float8x8 of[kDF];  // (8, D) unnormalised O
  for (int dd = 0; dd < kDF; dd++) of[dd] = attn::zero_frag();
  float m_i = attn::kHidden;  // running row max (log2 domain)
  float l_i = 0.0f;           // running row sum of exp2(s - m_i)

  for (int k0 = blk.x / BK * BK; k0 < blk.y; k0 += BK) {
    for (int idx = int(tid); idx < BK * D; idx += kThreads) {
      const int r = idx / D, c = idx % D, key = k0 + r;
      const bool in = key < m && c < dh;
      k_tile[r * kLD + c] = in ? kp[uint(key) * p.k_stride[2] + uint(c)] : T(0.0f);
      v_tile[r * kLD + c] = in ? vp[uint(key) * p.v_stride[2] + uint(c)] : T(0.0f);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S = Q K^T: (8, BK) per SIMD group.
    simdgroup_float8x8 sf[kKF];
    for (int jj = 0; jj < kKF; jj++) sf[jj] = attn::zero_frag();
    for (int dd = 0; dd < kDF; dd++) {
      simdgroup_float8x8 a = kCacheQ ? qf[kCacheQ ? dd : 0]
                                     : attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      for (int jj = 0; jj < kKF; jj++) {
        // K^T fragment: element (d, j) = K[j][d].
        const int at = (jj * 8 + ln.col) * kLD + dd * 8 + ln.row;
        simdgroup_float8x8 bt = attn::frag_of(float(k_tile[at]), float(k_tile[at + kLD]));
        simdgroup_multiply_accumulate(sf[jj], a, bt, sf[jj]);
      }
    }

    // Mask, then fold the block into the online softmax.
    float mx = attn::kHidden;
    for (int jj = 0; jj < kKF; jj++) {
      float2 s = attn::elems(sf[jj]);
      const int j = k0 + jj * 8 + ln.col;
      float t;
      s.x = attn::logit(p, mask, mask_base, s.x, row, j, kr, t);
      s.y = attn::logit(p, mask, mask_base, s.y, row, j + 1, kr, t);
      attn::set_elems(sf[jj], s);
      mx = max(mx, max(s.x, s.y));
    }
    const float m_new = max(m_i, attn::row_max(mx));
    // m_i is kHidden until the row has seen a visible key; then l_i and O are zero and
    // alpha must be 0, not exp2 of an overflowed difference.
    const float alpha = m_i > attn::kHidden ? exp2(m_i - m_new) : 0.0f;
    float sum = 0.0f;
    for (int jj = 0; jj < kKF; jj++) {
      const float2 s = attn::elems(sf[jj]);
      float2 pr = float2(s.x > attn::kHidden ? exp2(s.x - m_new) : 0.0f,
                         s.y > attn::kHidden ? exp2(s.y - m_new) : 0.0f);
      sum += pr.x + pr.y;
      if (p.dropout_on != 0) {  // L stays the logsumexp of the undropped logits
        const int j = k0 + jj * 8 + ln.col;
        const uint4 w = attn::dropout_words(p, drop_row, j);
        pr.x = attn::dropout_keep(p, w, j) ? pr.x * p.dropout_scale : 0.0f;
        pr.y = attn::dropout_keep(p, w, j + 1) ? pr.y * p.dropout_scale : 0.0f;
      }
      attn::set_elems(sf[jj], pr);
    }
    l_i = l_i * alpha + attn::row_sum(sum);
    m_i = m_new;

    // O = alpha O + P V.
    for (int dd = 0; dd < kDF; dd++) {
      attn::set_elems(of[dd], attn::elems(of[dd]) * alpha);
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.row) * kLD + dd * 8 + ln.col;
        simdgroup_float8x8 vf = attn::frag_of(float(v_tile[at]), float(v_tile[at + 1]));
        simdgroup_multiply_accumulate(of[dd], sf[jj], vf, of[dd]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  const float inv = l_i > 0.0f ? 1.0f / l_i : 0.0f;
  device T* op = o + b * p.o_stride[0] + h * p.o_stride[1];  // (N, D)
  for (int dd = 0; dd < kDF; dd++) {
    attn::frag_store(of[dd], inv, op, p.o_stride[2], row, dd * 8 + ln.col, int(p.n), dh);
  }
  if (ln.col == 0 && row < int(p.n)) {
    lse[(b * p.heads + h) * p.n + uint(row)] =
        l_i > 0.0f ? (m_i + log2(l_i)) * attn::kLn2 : as_type<float>(attn::kNegInfBits);
  }
}

// -------------------------------------------------------------- backward: Delta
//
// Delta_i = sum_d dO[i][d] O[i][d] for every row of every (batch, head): one SIMD group
// per row, ATTN_DELTA_ROWS rows per threadgroup; tgid.x = row / ATTN_DELTA_ROWS over the
// B*H*N rows. Delta is [B, H, N] float (row r = (b*H + h)*N + i).
template <typename T>
[[kernel]] void attention_bwd_delta(device const T* o [[buffer(6)]],
                                    device const T* dout [[buffer(8)]],
                                    device float* delta [[buffer(9)]],
                                    constant AttentionParams& p [[buffer(13)]],
                                    uint3 tgid [[threadgroup_position_in_grid]],
                                    uint lane [[thread_index_in_simdgroup]],
                                    uint sg [[simdgroup_index_in_threadgroup]]) {
  const uint r = tgid.x * ATTN_DELTA_ROWS + sg;
  if (r >= p.batch * p.heads * p.n) return;  // the whole SIMD group leaves together
  const uint i = r % p.n, bh = r / p.n, b = bh / p.heads, h = bh % p.heads;
  device const T* orow = o + b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
  device const T* grow = dout + b * p.do_stride[0] + h * p.do_stride[1] + i * p.do_stride[2];
  float acc = 0.0f;
  for (uint c = lane; c < p.d; c += 32) acc += float(orow[c]) * float(grow[c]);
  acc = simd_sum(acc);
  if (lane == 0) delta[r] = acc;
}

// -------------------------------------------------------------- backward: dQ
//
// One threadgroup computes dQ for BQ query rows of one (batch, head): tgid = (query
// block, b*H + h), BQ/8 SIMD groups of 8 rows each, walking the same key blocks as the
// forward. Per block, with K and V (BK x D) in threadgroup memory:
//   S  = Q K^T, P = exp(S - L)          (the forward's logits and probabilities)
//   dP = dO V^T, scaled by the dropout mask Z / (1 - p)
//   dS = P (dP - Delta), times 1 - tanh^2 under softcap
//   dQ += dS K                          (times scale at the end)
// Q and dO (8 x D per SIMD group) stay in registers for D <= 64.
template <typename T, int BQ, int BK, int D>
[[kernel]] void attention_bwd_dq(device const T* q [[buffer(0)]],
                                 device const T* k [[buffer(1)]],
                                 device const T* v [[buffer(2)]],
                                 device const uchar* mask [[buffer(3)]],
                                 device const int* lens_q [[buffer(4)]],
                                 device const int* lens_k [[buffer(5)]],
                                 device const float* lse [[buffer(7)]],
                                 device const T* dout [[buffer(8)]],
                                 device const float* delta [[buffer(9)]],
                                 device T* dq [[buffer(10)]],
                                 constant AttentionParams& p [[buffer(13)]],
                                 uint3 tgid [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]]) {
  static_assert(BQ % 8 == 0 && BK % 8 == 0 && D % 8 == 0, "tiles are made of 8x8 fragments");
  constexpr int kThreads = BQ / 8 * 32;
  constexpr int kLD = D + 16 / int(sizeof(T));
  constexpr int kDF = D / 8;
  constexpr int kKF = BK / 8;
  constexpr bool kCache = D <= 64;

  threadgroup T k_tile[BK * kLD];  // (BK, D)
  threadgroup T v_tile[BK * kLD];  // (BK, D)

  const uint b = tgid.y / p.heads, h = tgid.y % p.heads, hk = h / p.group;
  const int n = attn::rows_q(p, lens_q, b), m = attn::rows_k(p, lens_k, b);
  const int dh = int(p.d);
  const attn::Lane ln = attn::lane_coord(lane);
  const int q0 = int(tgid.x) * BQ;
  const int row = q0 + int(sg) * 8 + ln.row;
  const int2 kr = attn::key_range(p, n, m, row);
  const int2 blk = attn::block_key_range(p, n, m, q0, q0 + BQ);
  const uint mask_base = b * p.mask_stride[0] + h * p.mask_stride[1];
  const uint lrow = (b * p.heads + h) * p.n + uint(row);  // L, Delta and dropout row
  const bool row_in = row < int(p.n);
  const float l2 = row_in ? lse[lrow] * attn::kLog2e : 0.0f;
  const float dlt = row_in ? delta[lrow] : 0.0f;

  device const T* qp = q + b * p.q_stride[0] + h * p.q_stride[1];       // (N, D)
  device const T* gp = dout + b * p.do_stride[0] + h * p.do_stride[1];  // (N, D)
  device const T* kp = k + b * p.k_stride[0] + hk * p.k_stride[1];      // (M, D)
  device const T* vp = v + b * p.v_stride[0] + hk * p.v_stride[1];      // (M, D)

  simdgroup_float8x8 qf[kCache ? kDF : 1], gf[kCache ? kDF : 1];
  if (kCache) {
    for (int dd = 0; dd < kDF; dd++) {
      qf[kCache ? dd : 0] = attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      gf[kCache ? dd : 0] = attn::frag_load(gp, p.do_stride[2], row, dd * 8 + ln.col, n, dh);
    }
  }
  simdgroup_float8x8 dqf[kDF];  // (8, D)
  for (int dd = 0; dd < kDF; dd++) dqf[dd] = attn::zero_frag();

  for (int k0 = blk.x / BK * BK; k0 < blk.y; k0 += BK) {
    for (int idx = int(tid); idx < BK * D; idx += kThreads) {
      const int r = idx / D, c = idx % D, key = k0 + r;
      const bool in = key < m && c < dh;
      k_tile[r * kLD + c] = in ? kp[uint(key) * p.k_stride[2] + uint(c)] : T(0.0f);
      v_tile[r * kLD + c] = in ? vp[uint(key) * p.v_stride[2] + uint(c)] : T(0.0f);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S = Q K^T and dP = dO V^T: (8, BK) each.
    simdgroup_float8x8 sf[kKF], pf[kKF];
    for (int jj = 0; jj < kKF; jj++) {
      sf[jj] = attn::zero_frag();
      pf[jj] = attn::zero_frag();
    }
    for (int dd = 0; dd < kDF; dd++) {
      simdgroup_float8x8 a = kCache ? qf[kCache ? dd : 0]
                                    : attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      simdgroup_float8x8 g = kCache ? gf[kCache ? dd : 0]
                                    : attn::frag_load(gp, p.do_stride[2], row, dd * 8 + ln.col, n, dh);
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.col) * kLD + dd * 8 + ln.row;
        simdgroup_float8x8 kt = attn::frag_of(float(k_tile[at]), float(k_tile[at + kLD]));
        simdgroup_float8x8 vt = attn::frag_of(float(v_tile[at]), float(v_tile[at + kLD]));
        simdgroup_multiply_accumulate(sf[jj], a, kt, sf[jj]);
        simdgroup_multiply_accumulate(pf[jj], g, vt, pf[jj]);
      }
    }

    // dS = P (dP Z/(1-p) - Delta) (1 - t^2).
    for (int jj = 0; jj < kKF; jj++) {
      const int j = k0 + jj * 8 + ln.col;
      const float2 s = attn::elems(sf[jj]);
      float2 dp = attn::elems(pf[jj]);
      float t0, t1;
      const float s0 = attn::logit(p, mask, mask_base, s.x, row, j, kr, t0);
      const float s1 = attn::logit(p, mask, mask_base, s.y, row, j + 1, kr, t1);
      const float p0 = s0 > attn::kHidden ? exp2(s0 - l2) : 0.0f;
      const float p1 = s1 > attn::kHidden ? exp2(s1 - l2) : 0.0f;
      if (p.dropout_on != 0) {
        const uint4 w = attn::dropout_words(p, lrow, j);
        dp.x = attn::dropout_keep(p, w, j) ? dp.x * p.dropout_scale : 0.0f;
        dp.y = attn::dropout_keep(p, w, j + 1) ? dp.y * p.dropout_scale : 0.0f;
      }
      float ds0 = p0 * (dp.x - dlt), ds1 = p1 * (dp.y - dlt);
      if (p.softcap > 0.0f) {
        ds0 *= 1.0f - t0 * t0;
        ds1 *= 1.0f - t1 * t1;
      }
      attn::set_elems(sf[jj], float2(ds0, ds1));
    }

    // dQ += dS K.
    for (int dd = 0; dd < kDF; dd++) {
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.row) * kLD + dd * 8 + ln.col;
        simdgroup_float8x8 kf = attn::frag_of(float(k_tile[at]), float(k_tile[at + 1]));
        simdgroup_multiply_accumulate(dqf[dd], sf[jj], kf, dqf[dd]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  device T* dqp = dq + b * p.dq_stride[0] + h * p.dq_stride[1];  // (N, D)
  for (int dd = 0; dd < kDF; dd++) {
    attn::frag_store(dqf[dd], p.scale, dqp, p.dq_stride[2], row, dd * 8 + ln.col, int(p.n), dh);
  }
}

// -------------------------------------------------------------- backward: dK, dV
//
// One threadgroup computes dK and dV for BK keys of one (batch, key/value head): tgid =
// (key block, b*Hkv + hk), BK/8 SIMD groups of 8 keys each. It walks every query head of
// the group (GQA: the sum over heads happens here, without atomics) and, in each, the
// query blocks of BQ rows that may see any of its keys. Per query block, with Q, dO
// (BQ x D), L and Delta (BQ) in threadgroup memory, transposed so that keys are rows:
//   S^T  = K Q^T, P^T = exp(S^T - L)
//   dV  += (P Z/(1-p))^T dO
//   dP^T = V dO^T, scaled by Z/(1-p)
//   dS^T = P^T (dP^T - Delta), times 1 - tanh^2 under softcap
//   dK  += dS^T Q                      (times scale at the end)
// K and V (8 x D per SIMD group) stay in registers for D <= 64.
template <typename T, int BQ, int BK, int D>
[[kernel]] void attention_bwd_dkdv(device const T* q [[buffer(0)]],
                                   device const T* k [[buffer(1)]],
                                   device const T* v [[buffer(2)]],
                                   device const uchar* mask [[buffer(3)]],
                                   device const int* lens_q [[buffer(4)]],
                                   device const int* lens_k [[buffer(5)]],
                                   device const float* lse [[buffer(7)]],
                                   device const T* dout [[buffer(8)]],
                                   device const float* delta [[buffer(9)]],
                                   device T* dk [[buffer(11)]],
                                   device T* dv [[buffer(12)]],
                                   constant AttentionParams& p [[buffer(13)]],
                                   uint3 tgid [[threadgroup_position_in_grid]],
                                   uint tid [[thread_index_in_threadgroup]],
                                   uint lane [[thread_index_in_simdgroup]],
                                   uint sg [[simdgroup_index_in_threadgroup]]) {
  static_assert(BQ % 8 == 0 && BK % 8 == 0 && D % 8 == 0, "tiles are made of 8x8 fragments");
  constexpr int kThreads = BK / 8 * 32;
  constexpr int kLD = D + 16 / int(sizeof(T));
  constexpr int kDF = D / 8;
  constexpr int kQF = BQ / 8;  // fragments across a query block
  constexpr bool kCache = D <= 64;

  threadgroup T q_tile[BQ * kLD];  // (BQ, D)
  threadgroup T g_tile[BQ * kLD];  // (BQ, D) dO
  threadgroup float l_tile[BQ];    // (BQ) L, log2 domain
  threadgroup float d_tile[BQ];    // (BQ) Delta

  const uint b = tgid.y / p.kv_heads, hk = tgid.y % p.kv_heads;
  const int n = attn::rows_q(p, lens_q, b), m = attn::rows_k(p, lens_k, b);
  const int dh = int(p.d);
  const attn::Lane ln = attn::lane_coord(lane);
  const int k0 = int(tgid.x) * BK;
  const int key = k0 + int(sg) * 8 + ln.row;  // this lane's key row
  const int2 blk = attn::block_query_range(p, n, m, k0, k0 + BK);

  device const T* kp = k + b * p.k_stride[0] + hk * p.k_stride[1];  // (M, D)
  device const T* vp = v + b * p.v_stride[0] + hk * p.v_stride[1];  // (M, D)

  simdgroup_float8x8 kf[kCache ? kDF : 1], vf[kCache ? kDF : 1];
  if (kCache) {
    for (int dd = 0; dd < kDF; dd++) {
      kf[kCache ? dd : 0] = attn::frag_load(kp, p.k_stride[2], key, dd * 8 + ln.col, m, dh);
      vf[kCache ? dd : 0] = attn::frag_load(vp, p.v_stride[2], key, dd * 8 + ln.col, m, dh);
    }
  }
  simdgroup_float8x8 dkf[kDF], dvf[kDF];  // (8, D) each
  for (int dd = 0; dd < kDF; dd++) {
    dkf[dd] = attn::zero_frag();
    dvf[dd] = attn::zero_frag();
  }

  for (uint hh = 0; hh < p.group; hh++) {
    const uint h = hk * p.group + hh;
    const uint mask_base = b * p.mask_stride[0] + h * p.mask_stride[1];
    const uint lbase = (b * p.heads + h) * p.n;  // L, Delta and dropout rows of (b, h)
    device const T* qp = q + b * p.q_stride[0] + h * p.q_stride[1];       // (N, D)
    device const T* gp = dout + b * p.do_stride[0] + h * p.do_stride[1];  // (N, D)

    for (int q0 = blk.x / BQ * BQ; q0 < blk.y; q0 += BQ) {
      for (int idx = int(tid); idx < BQ * D; idx += kThreads) {
        const int r = idx / D, c = idx % D, i = q0 + r;
        const bool in = i < n && c < dh;
        q_tile[r * kLD + c] = in ? qp[uint(i) * p.q_stride[2] + uint(c)] : T(0.0f);
        g_tile[r * kLD + c] = in ? gp[uint(i) * p.do_stride[2] + uint(c)] : T(0.0f);
      }
      for (int r = int(tid); r < BQ; r += kThreads) {
        const int i = q0 + r;
        l_tile[r] = i < n ? lse[lbase + uint(i)] * attn::kLog2e : 0.0f;
        d_tile[r] = i < n ? delta[lbase + uint(i)] : 0.0f;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);

      // S^T = K Q^T and dP^T = V dO^T: (8, BQ) each.
      simdgroup_float8x8 sf[kQF], pf[kQF];
      for (int ii = 0; ii < kQF; ii++) {
        sf[ii] = attn::zero_frag();
        pf[ii] = attn::zero_frag();
      }
      for (int dd = 0; dd < kDF; dd++) {
        simdgroup_float8x8 a = kCache ? kf[kCache ? dd : 0]
                                      : attn::frag_load(kp, p.k_stride[2], key, dd * 8 + ln.col, m, dh);
        simdgroup_float8x8 c = kCache ? vf[kCache ? dd : 0]
                                      : attn::frag_load(vp, p.v_stride[2], key, dd * 8 + ln.col, m, dh);
        for (int ii = 0; ii < kQF; ii++) {
          const int at = (ii * 8 + ln.col) * kLD + dd * 8 + ln.row;
          simdgroup_float8x8 qt = attn::frag_of(float(q_tile[at]), float(q_tile[at + kLD]));
          simdgroup_float8x8 gt = attn::frag_of(float(g_tile[at]), float(g_tile[at + kLD]));
          simdgroup_multiply_accumulate(sf[ii], a, qt, sf[ii]);
          simdgroup_multiply_accumulate(pf[ii], c, gt, pf[ii]);
        }
      }

      // Element (key, i): sf becomes P Z/(1-p) (for dV), pf becomes dS (for dK).
      for (int ii = 0; ii < kQF; ii++) {
        const float2 s = attn::elems(sf[ii]);
        const float2 dp = attn::elems(pf[ii]);
        float pd[2], ds[2];
        for (int e = 0; e < 2; e++) {
          const int r = ii * 8 + ln.col + e, i = q0 + r;
          float t;
          const float x = attn::logit(p, mask, mask_base, e == 0 ? s.x : s.y, i, key,
                                      attn::key_range(p, n, m, i), t);
          const float pr = x > attn::kHidden ? exp2(x - l_tile[r]) : 0.0f;
          float g = e == 0 ? dp.x : dp.y;
          pd[e] = pr;
          if (p.dropout_on != 0) {
            const bool keep = attn::dropout_keep(p, attn::dropout_words(p, lbase + uint(i), key), key);
            pd[e] = keep ? pr * p.dropout_scale : 0.0f;
            g = keep ? g * p.dropout_scale : 0.0f;
          }
          ds[e] = pr * (g - d_tile[r]);
          if (p.softcap > 0.0f) ds[e] *= 1.0f - t * t;
        }
        attn::set_elems(sf[ii], float2(pd[0], pd[1]));
        attn::set_elems(pf[ii], float2(ds[0], ds[1]));
      }

      // dV += P^T dO, dK += dS^T Q.
      for (int dd = 0; dd < kDF; dd++) {
        for (int ii = 0; ii < kQF; ii++) {
          const int at = (ii * 8 + ln.row) * kLD + dd * 8 + ln.col;
          simdgroup_float8x8 gq = attn::frag_of(float(g_tile[at]), float(g_tile[at + 1]));
          simdgroup_float8x8 qq = attn::frag_of(float(q_tile[at]), float(q_tile[at + 1]));
          simdgroup_multiply_accumulate(dvf[dd], sf[ii], gq, dvf[dd]);
          simdgroup_multiply_accumulate(dkf[dd], pf[ii], qq, dkf[dd]);
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
  }

  device T* dkp = dk + b * p.dk_stride[0] + hk * p.dk_stride[1];  // (M, D)
  device T* dvp = dv + b * p.dv_stride[0] + hk * p.dv_stride[1];  // (M, D)
  for (int dd = 0; dd < kDF; dd++) {
    attn::frag_store(dkf[dd], p.scale, dkp, p.dk_stride[2], key, dd * 8 + ln.col, int(p.m), dh);
    attn::frag_store(dvf[dd], 1.0f, dvp, p.dv_stride[2], key, dd * 8 + ln.col, int(p.m), dh);
  }
}

// -------------------------------------------------------------- instantiations
//
// Names encode the kernel, the tile and the stored type: attention_fwd_bq32_bk32_d64_f16
// is the forward with 32 query rows per threadgroup, key blocks of 32 and head dim 64 on
// float16 data. go/attention/mslplan picks among them (its tile table is the list below;
// a test there keeps the two in step).

#define ATTN_INSTANTIATE_FWD(T, TN, BQ, BK, D)                                                  \
  template [[host_name("attention_fwd_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void      \
  attention_fwd<T, BQ, BK, D>(                                                                  \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device T* o [[buffer(6)]], device float* lse [[buffer(7)]],                               \
      constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],  \
      uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],        \
      uint sg [[simdgroup_index_in_threadgroup]]);

#define ATTN_INSTANTIATE_DELTA(T, TN)                                                           \
  template [[host_name("attention_bwd_delta_" #TN)]] [[kernel]] void attention_bwd_delta<T>(    \
      device const T* o [[buffer(6)]], device const T* dout [[buffer(8)]],                      \
      device float* delta [[buffer(9)]], constant AttentionParams& p [[buffer(13)]],            \
      uint3 tgid [[threadgroup_position_in_grid]], uint lane [[thread_index_in_simdgroup]],     \
      uint sg [[simdgroup_index_in_threadgroup]]);

#define ATTN_INSTANTIATE_DQ(T, TN, BQ, BK, D)                                                   \
  template [[host_name("attention_bwd_dq_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void   \
  attention_bwd_dq<T, BQ, BK, D>(                                                               \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],                \
      device const float* delta [[buffer(9)]], device T* dq [[buffer(10)]],                     \
      constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],  \
      uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],        \
      uint sg [[simdgroup_index_in_threadgroup]]);

#define ATTN_INSTANTIATE_DKDV(T, TN, BQ, BK, D)                                                 \
  template [[host_name("attention_bwd_dkdv_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void \
  attention_bwd_dkdv<T, BQ, BK, D>(                                                             \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],                \
      device const float* delta [[buffer(9)]], device T* dk [[buffer(11)]],                     \
      device T* dv [[buffer(12)]], constant AttentionParams& p [[buffer(13)]],                  \
      uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],    \
      uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]);

// BEGIN GENERATED INSTANTIATIONS
// Written by `go test ./tools/msltest -run TestInstantiations -update` from the tile
// table of go/attention/mslplan (for Metal) and the emulated subset in
// tools/msltest/instantiations_test.go (for tools/mslemu). Do not edit by hand.
#ifdef MSLEMU
ATTN_INSTANTIATE_DELTA(bfloat, bf16)
ATTN_INSTANTIATE_DELTA(half, f16)
ATTN_INSTANTIATE_DELTA(float, f32)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 128)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 16, 64)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 32, 32)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 64)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 64)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 128)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 192)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 256)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(half, f16, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 64)
ATTN_INSTANTIATE_DKDV(half, f16, 8, 16, 80)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 8, 16, 96)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 128)
ATTN_INSTANTIATE_DQ(float, f32, 16, 32, 64)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 128)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 192)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 256)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 8, 32)
ATTN_INSTANTIATE_DQ(half, f16, 16, 8, 32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 64)
ATTN_INSTANTIATE_DQ(half, f16, 16, 8, 80)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 8, 96)
ATTN_INSTANTIATE_DQ(float, f32, 32, 32, 32)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 64)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 64)
ATTN_INSTANTIATE_FWD(half, f16, 16, 32, 128)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 64)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 128)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 192)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 256)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 8, 32)
ATTN_INSTANTIATE_FWD(half, f16, 16, 8, 32)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 32)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 64)
ATTN_INSTANTIATE_FWD(half, f16, 16, 8, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 8, 96)
ATTN_INSTANTIATE_FWD(float, f32, 32, 64, 32)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 64, 64)
ATTN_INSTANTIATE_FWD(half, f16, 32, 64, 64)
#else
ATTN_INSTANTIATE_DELTA(bfloat, bf16)
ATTN_INSTANTIATE_DELTA(half, f16)
ATTN_INSTANTIATE_DELTA(float, f32)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 16, 128)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 16, 16, 256)
ATTN_INSTANTIATE_DKDV(half, f16, 16, 16, 256)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 32, 128)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 16, 32, 192)
ATTN_INSTANTIATE_DKDV(half, f16, 16, 32, 192)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 16, 32, 256)
ATTN_INSTANTIATE_DKDV(half, f16, 16, 32, 256)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 32, 80)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 32, 96)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 128)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 128)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 192)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 192)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 32)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 16, 32)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 64)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 64)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 16, 64)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 80)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 80)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 16, 80)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 16, 96)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 16, 96)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 16, 96)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 128)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 128)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 32)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 32, 32)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 64)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 64)
ATTN_INSTANTIATE_DKDV(float, f32, 32, 32, 64)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 80)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 80)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 32, 32, 96)
ATTN_INSTANTIATE_DKDV(half, f16, 32, 32, 96)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 256)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 32, 192)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 32, 256)
ATTN_INSTANTIATE_DQ(float, f32, 16, 16, 128)
ATTN_INSTANTIATE_DQ(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 16, 256)
ATTN_INSTANTIATE_DQ(half, f16, 16, 16, 256)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 128)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 128)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 192)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 192)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 32)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 32, 32)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 64)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 64)
ATTN_INSTANTIATE_DQ(float, f32, 16, 32, 64)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 80)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 80)
ATTN_INSTANTIATE_DQ(float, f32, 16, 32, 80)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 32, 96)
ATTN_INSTANTIATE_DQ(half, f16, 16, 32, 96)
ATTN_INSTANTIATE_DQ(float, f32, 16, 32, 96)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 256)
ATTN_INSTANTIATE_DQ(float, f32, 32, 16, 128)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 16, 192)
ATTN_INSTANTIATE_DQ(half, f16, 32, 16, 192)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 16, 256)
ATTN_INSTANTIATE_DQ(half, f16, 32, 16, 256)
ATTN_INSTANTIATE_DQ(float, f32, 32, 16, 80)
ATTN_INSTANTIATE_DQ(float, f32, 32, 16, 96)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 128)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 128)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 32)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 32)
ATTN_INSTANTIATE_DQ(float, f32, 32, 32, 32)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 64)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 64)
ATTN_INSTANTIATE_DQ(float, f32, 32, 32, 64)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 80)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 80)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 32, 32, 96)
ATTN_INSTANTIATE_DQ(half, f16, 32, 32, 96)
ATTN_INSTANTIATE_DQ(float, f32, 32, 8, 192)
ATTN_INSTANTIATE_DQ(float, f32, 32, 8, 256)
ATTN_INSTANTIATE_FWD(float, f32, 16, 16, 128)
ATTN_INSTANTIATE_FWD(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 16, 256)
ATTN_INSTANTIATE_FWD(half, f16, 16, 16, 256)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 32, 128)
ATTN_INSTANTIATE_FWD(half, f16, 16, 32, 128)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 32, 192)
ATTN_INSTANTIATE_FWD(half, f16, 16, 32, 192)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 64)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 80)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 96)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 64, 32)
ATTN_INSTANTIATE_FWD(half, f16, 16, 64, 32)
ATTN_INSTANTIATE_FWD(float, f32, 16, 64, 32)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 64, 64)
ATTN_INSTANTIATE_FWD(half, f16, 16, 64, 64)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 64, 80)
ATTN_INSTANTIATE_FWD(half, f16, 16, 64, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 64, 96)
ATTN_INSTANTIATE_FWD(half, f16, 16, 64, 96)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 256)
ATTN_INSTANTIATE_FWD(float, f32, 32, 16, 128)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 16, 192)
ATTN_INSTANTIATE_FWD(half, f16, 32, 16, 192)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 16, 256)
ATTN_INSTANTIATE_FWD(half, f16, 32, 16, 256)
ATTN_INSTANTIATE_FWD(float, f32, 32, 16, 80)
ATTN_INSTANTIATE_FWD(float, f32, 32, 16, 96)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 32, 128)
ATTN_INSTANTIATE_FWD(half, f16, 32, 32, 128)
ATTN_INSTANTIATE_FWD(float, f32, 32, 32, 64)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 32, 80)
ATTN_INSTANTIATE_FWD(half, f16, 32, 32, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 32, 96)
ATTN_INSTANTIATE_FWD(half, f16, 32, 32, 96)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 64, 32)
ATTN_INSTANTIATE_FWD(half, f16, 32, 64, 32)
ATTN_INSTANTIATE_FWD(float, f32, 32, 64, 32)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 64, 64)
ATTN_INSTANTIATE_FWD(half, f16, 32, 64, 64)
ATTN_INSTANTIATE_FWD(float, f32, 32, 8, 192)
ATTN_INSTANTIATE_FWD(float, f32, 32, 8, 256)
#endif
// END GENERATED INSTANTIATIONS
