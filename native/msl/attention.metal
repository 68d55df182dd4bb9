// Fused FlashAttention for Apple GPUs: forward (O and the row logsumexp L) and backward
// (Delta = rowsum(dO * O); dK and dV parallel over key blocks; dQ parallel over query
// blocks). No atomics anywhere, so gradients are bitwise reproducible.
//
// The semantics are go/attention/spec's; the dispatch geometry (grid, threadgroup size,
// buffers) is computed in one place, go/attention/mslplan, which also documents the block
// sizes and the register budget of every instantiation. The same file is compiled by Metal
// on a Mac and, as C++, by tools/mslemu on Linux.
//
// Conventions (the emulator relies on them; keep them):
//   - every tile lives in a threadgroup array declared inside the kernel with a constexpr
//     size, indexed with offsets; no threadgroup pointer variables or parameters;
//   - every barrier is reached by every thread of the threadgroup (loops around barriers
//     depend only on the threadgroup position);
//   - SIMD groups have 32 lanes; SIMD-group matrices are 8x8 float, and lane `lane` holds
//     elements (row, col) and (row, col + 1) of each (see attn::lane_coord);
//   - every loop over a register-resident array of fragments is fully unrolled
//     (ATTN_UNROLL: an array indexed by a loop counter stays in registers only then); the
//     loops over blocks of keys, queries and heads are explicitly not (ATTN_NO_UNROLL);
//     helpers are always inlined (ATTN_FUNC).
//
// Numerics: inputs are converted to float32 as they are loaded into SIMD-group matrices;
// every product, the online softmax and every accumulator are float32; outputs are
// rounded to T once (gradients to float32 instead when AttentionParams.grad_f32 is set).
// The softmax runs in the log2 domain (exp2 of logits scaled by log2(e)); L is stored as
// a natural log. Hidden logits are -FLT_MAX rather than -inf, biased logits are clamped
// to +-2^126 before scaling, and every exp2/log2 argument is finite or its result is
// discarded by a select, so fast::exp2 and fast::log2 are safe; a row with no visible key
// produces O = 0 and L = -inf.
//
// Libraries (B1): bfloat needs MSL 3.1 (macOS 14). Compiled with MSL 3.0 this file
// instantiates the float32 and float16 kernels only; with 3.1 or later also the bfloat16
// ones. With ATTN_LIBRARY_BFLOAT defined (MTLCompileOptions.preprocessorMacros) it
// instantiates only the bfloat16 kernels, so a host builds two libraries from this one
// source: "attention" (MSL 3.0, every macOS with Metal 3) and "attention_bf16" (MSL 3.1
// and ATTN_LIBRARY_BFLOAT=1); mslplan.Instance.Library says which holds a kernel. The
// ahead-of-time metallibs (//native/msl/metallib) are built the same two ways.
#include <metal_stdlib>
#include "attention_params.h"

using namespace metal;

#if defined(ATTN_LIBRARY_BFLOAT) && __METAL_VERSION__ < 310
#error "ATTN_LIBRARY_BFLOAT: bfloat kernels need Metal Shading Language 3.1 or later"
#endif

// Staging of a full block (S4): rows [R0, R0 + ROWS) of the (rows, D) matrix at SRC, row
// stride STRIDE elements, into the threadgroup array TILE (row stride kLD). Every row and
// column is in range (no bounds checks). With attn_fc_vec4 each thread copies 4-element
// vectors on a fixed 2-D map (a fixed column and every (kThreads / (D/4))-th row when
// D/4 divides the thread count); otherwise elements. Uses the kernel's T, D, kLD,
// kThreads and tid.
#define ATTN_STAGE_FULL(TILE, SRC, STRIDE, R0, ROWS)                                           \
  if (attn::fc_vec4()) {                                                                       \
    constexpr int kV = D / 4;                                                                  \
    if (kThreads % kV == 0) {                                                                  \
      const int c = (int(tid) % kV) * 4;                                                       \
      for (int r = int(tid) / kV; r < (ROWS); r += kThreads / kV) {                            \
        const vec<T, 4> x = *((device const vec<T, 4>*)((SRC) + uint((R0) + r) * (STRIDE) + uint(c))); \
        TILE[r * kLD + c] = x.x;                                                               \
        TILE[r * kLD + c + 1] = x.y;                                                           \
        TILE[r * kLD + c + 2] = x.z;                                                           \
        TILE[r * kLD + c + 3] = x.w;                                                           \
      }                                                                                        \
    } else {                                                                                   \
      for (int idx = int(tid); idx < (ROWS) * kV; idx += kThreads) {                           \
        const int r = idx / kV, c = (idx - r * kV) * 4;                                        \
        const vec<T, 4> x = *((device const vec<T, 4>*)((SRC) + uint((R0) + r) * (STRIDE) + uint(c))); \
        TILE[r * kLD + c] = x.x;                                                               \
        TILE[r * kLD + c + 1] = x.y;                                                           \
        TILE[r * kLD + c + 2] = x.z;                                                           \
        TILE[r * kLD + c + 3] = x.w;                                                           \
      }                                                                                        \
    }                                                                                          \
  } else {                                                                                     \
    for (int idx = int(tid); idx < (ROWS) * D; idx += kThreads) {                              \
      const int r = idx / D, c = idx % D;                                                      \
      TILE[r * kLD + c] = (SRC)[uint((R0) + r) * (STRIDE) + uint(c)];                          \
    }                                                                                          \
  }

// Always-inlined helpers (MSL's METAL_FUNC), and the loop pragmas of the conventions above.
#define ATTN_FUNC inline __attribute__((always_inline))
#define ATTN_UNROLL _Pragma("clang loop unroll(full)")
#define ATTN_NO_UNROLL _Pragma("clang loop unroll(disable)")

// Function constants (S6): set per plan by the host (mslplan.Plan.Constants, through
// MTLFunctionConstantValues when the pipeline is created; the emulator sets them per
// launch). Each says whether a feature may be present; false removes its code from the
// specialised kernel, so a plain causal kernel carries no mask, window, softcap, dropout
// or length code. Each feature is still tested against AttentionParams where it is used,
// so a constant that is true (or not set: see the attn::fc_* helpers) only keeps the code
// general, never wrong. The indices are ATTN_FC_* in attention_params.h.
constant bool attn_fc_causal [[function_constant(0)]];        // ATTN_FC_CAUSAL
constant bool attn_fc_window [[function_constant(1)]];        // ATTN_FC_WINDOW
constant bool attn_fc_mask_bool [[function_constant(2)]];     // ATTN_FC_MASK_BOOL
constant bool attn_fc_mask_additive [[function_constant(3)]]; // ATTN_FC_MASK_ADDITIVE
constant bool attn_fc_softcap [[function_constant(4)]];       // ATTN_FC_SOFTCAP
constant bool attn_fc_dropout [[function_constant(5)]];       // ATTN_FC_DROPOUT
constant bool attn_fc_lens_q [[function_constant(6)]];        // ATTN_FC_LENS_Q
constant bool attn_fc_lens_k [[function_constant(7)]];        // ATTN_FC_LENS_K
constant bool attn_fc_aligned [[function_constant(8)]];       // ATTN_FC_ALIGNED
constant bool attn_fc_vec4 [[function_constant(9)]];          // ATTN_FC_VEC4
constant bool attn_fc_split_dkdv [[function_constant(10)]];   // ATTN_FC_SPLIT_DKDV

namespace attn {

// The features a specialised kernel may meet. A constant the host did not set leaves the
// kernel general: every feature possible, no alignment assumed.
ATTN_FUNC bool fc_causal() { return is_function_constant_defined(attn_fc_causal) ? attn_fc_causal : true; }
ATTN_FUNC bool fc_window() { return is_function_constant_defined(attn_fc_window) ? attn_fc_window : true; }
ATTN_FUNC bool fc_mask_bool() {
  return is_function_constant_defined(attn_fc_mask_bool) ? attn_fc_mask_bool : true;
}
ATTN_FUNC bool fc_mask_additive() {
  return is_function_constant_defined(attn_fc_mask_additive) ? attn_fc_mask_additive : true;
}
ATTN_FUNC bool fc_softcap() { return is_function_constant_defined(attn_fc_softcap) ? attn_fc_softcap : true; }
ATTN_FUNC bool fc_dropout() { return is_function_constant_defined(attn_fc_dropout) ? attn_fc_dropout : true; }
ATTN_FUNC bool fc_lens_q() { return is_function_constant_defined(attn_fc_lens_q) ? attn_fc_lens_q : true; }
ATTN_FUNC bool fc_lens_k() { return is_function_constant_defined(attn_fc_lens_k) ? attn_fc_lens_k : true; }
// Aligned: N and M are multiples of every tile's rows and keys, the head dim is the
// instantiated one and there are no per-batch lengths, so no block has an edge.
ATTN_FUNC bool fc_aligned() {
  return is_function_constant_defined(attn_fc_aligned) ? attn_fc_aligned : false;
}
// Vec4: every staged tensor (K and V; Q and dO) starts 16 bytes aligned and has batch,
// head and row strides that are multiples of 4 elements, so 4-element vector loads of a
// full block are aligned.
ATTN_FUNC bool fc_vec4() { return is_function_constant_defined(attn_fc_vec4) ? attn_fc_vec4 : false; }
// Split dK/dV by output also at D <= 128 (where both accumulators fit), to double the
// threadgroups of a grid that would under-fill the GPU (few keys, MQA/GQA, small batch).
ATTN_FUNC bool fc_split_dkdv() {
  return is_function_constant_defined(attn_fc_split_dkdv) ? attn_fc_split_dkdv : false;
}

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
// reduction is a shuffle-xor by 1 and by 8. Lanes that differ only in bit 0 hold columns
// {0, 2} or {4, 6} of one row; lanes that differ only in bits 1 and 2 hold the same
// columns of rows 4a .. 4a + 3.
struct Lane {
  int row;
  int col;
};

ATTN_FUNC Lane lane_coord(uint lane) {
  const uint qid = lane / 4;
  Lane l;
  l.row = int((qid & 4) + (lane / 2) % 4);
  l.col = int((qid & 2) * 2 + (lane % 2) * 2);
  return l;
}

// Row reductions over the four lanes that hold one row of a SIMD-group matrix.
ATTN_FUNC float row_max(float x) {
  x = max(x, simd_shuffle_xor(x, ushort(1)));
  return max(x, simd_shuffle_xor(x, ushort(8)));
}

ATTN_FUNC float row_sum(float x) {
  x += simd_shuffle_xor(x, ushort(1));
  return x + simd_shuffle_xor(x, ushort(8));
}

ATTN_FUNC simdgroup_float8x8 zero_frag() { return make_filled_simdgroup_matrix<float, 8, 8>(0.0f); }

// This lane's two elements of a fragment, read and written one at a time through
// thread_elements()[i], the form widely used kernels rely on with Apple's compiler.
ATTN_FUNC float2 elems(thread simdgroup_float8x8& f) {
  return float2(f.thread_elements()[0], f.thread_elements()[1]);
}

ATTN_FUNC void set_elems(thread simdgroup_float8x8& f, float2 v) {
  f.thread_elements()[0] = v.x;
  f.thread_elements()[1] = v.y;
}

// A fragment whose lane elements are (x, y).
ATTN_FUNC simdgroup_float8x8 frag_of(float x, float y) {
  simdgroup_float8x8 f;
  set_elems(f, float2(x, y));
  return f;
}

// Loads this lane's two elements, (row, col) and (row, col + 1), of a row-major matrix in
// device memory; elements outside rows x cols read as zero.
template <typename T>
ATTN_FUNC simdgroup_float8x8 frag_load(device const T* base, uint row_stride, int row, int col,
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
ATTN_FUNC void frag_store(thread simdgroup_float8x8& f, float scale, device T* base, uint row_stride,
                          int row, int col, int rows, int cols) {
  const float2 e = elems(f);
  if (row < rows) {
    device T* r = base + uint(row) * row_stride;
    if (col < cols) r[col] = T(e.x * scale);
    if (col + 1 < cols) r[col + 1] = T(e.y * scale);
  }
}

// Stores a gradient fragment at element offset off of out: as T, or as float when
// grad_f32 (W2: float16 gradients can overflow 65504; the buffer then holds floats, with
// the same element strides).
template <typename T>
ATTN_FUNC void grad_store(thread simdgroup_float8x8& f, float scale, device T* out, bool grad_f32,
                          uint off, uint row_stride, int row, int col, int rows, int cols) {
  if (grad_f32) {
    frag_store(f, scale, (device float*)out + off, row_stride, row, col, rows, cols);
  } else {
    frag_store(f, scale, out + off, row_stride, row, col, rows, cols);
  }
}

// Component i (0..3) of w, by selects rather than a dynamically indexed vector.
ATTN_FUNC uint pick4(uint4 w, uint i) { return i == 0u ? w.x : i == 1u ? w.y : i == 2u ? w.z : w.w; }

// Philox4x32-10 (package philox): ten rounds, Weyl-incremented key.
ATTN_FUNC uint4 philox(uint4 c, uint2 key) {
  ATTN_UNROLL
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
ATTN_FUNC uint4 dropout_words(constant AttentionParams& p, uint row_id, int j) {
  return philox(uint4(uint(j) >> 2, row_id, p.offset_lo, p.offset_hi), uint2(p.seed_lo, p.seed_hi));
}

ATTN_FUNC bool dropout_keep(constant AttentionParams& p, uint4 w, int j) {
  return pick4(w, uint(j) & 3u) >= p.dropout_threshold;
}

ATTN_FUNC uint4 shuffle_xor4(uint4 w, ushort mask) {
  return uint4(simd_shuffle_xor(w.x, mask), simd_shuffle_xor(w.y, mask), simd_shuffle_xor(w.z, mask),
               simd_shuffle_xor(w.w, mask));
}

// Dropout words for a pair of fragments jj and jj + 1 of a row-major (8, keys) score
// block (forward, dQ): this lane holds columns j, j + 1 of fragment jj and j + 8, j + 9 of
// fragment jj + 1, all in one group of four columns per fragment. The lane pair that
// differs in lane bit 0 needs the same two Philox calls, so each lane computes one (bit 0
// clear: fragment jj; set: jj + 1) and they swap: one call per four columns, no
// redundancy, the same words as dropout_words. w0 and w1 are the words of jj and jj + 1.
ATTN_FUNC void dropout_words_pair(constant AttentionParams& p, uint row_id, int j, uint lane,
                                  thread uint4& w0, thread uint4& w1) {
  const bool odd = (lane & 1u) != 0;
  const uint4 mine = dropout_words(p, row_id, odd ? j + 8 : j);
  const uint4 theirs = shuffle_xor4(mine, ushort(1));
  w0 = odd ? theirs : mine;
  w1 = odd ? mine : theirs;
}

// The options of a dispatch: the function constant and the parameter block together.
ATTN_FUNC bool has_causal(constant AttentionParams& p) {
  return fc_causal() && p.causal != ATTN_CAUSAL_NONE;
}
ATTN_FUNC bool has_softcap(constant AttentionParams& p) { return fc_softcap() && p.softcap > 0.0f; }
ATTN_FUNC bool has_dropout(constant AttentionParams& p) { return fc_dropout() && p.dropout_on != 0; }
ATTN_FUNC bool has_mask(constant AttentionParams& p) {
  return (fc_mask_bool() && p.mask_kind == ATTN_MASK_BOOL) ||
         (fc_mask_additive() && p.mask_kind == ATTN_MASK_ADDITIVE);
}

// Valid query rows and key rows of batch b.
ATTN_FUNC int rows_q(constant AttentionParams& p, device const int* lens_q, uint b) {
  return fc_lens_q() && p.has_lens_q != 0 ? lens_q[b] : int(p.n);
}

ATTN_FUNC int rows_k(constant AttentionParams& p, device const int* lens_k, uint b) {
  return fc_lens_k() && p.has_lens_k != 0 ? lens_k[b] : int(p.m);
}

// The half-open range of keys that lengths, causal masking and the window leave visible
// to row i (spec.Problem.KeyRange); n and m are the batch's valid lengths.
ATTN_FUNC int2 key_range(constant AttentionParams& p, int n, int m, int i) {
  if (i >= n) return int2(0, 0);
  if (!fc_causal() && !fc_window()) return int2(0, m);
  const int d = i + (p.causal == ATTN_CAUSAL_BOTTOM_RIGHT ? m - n : 0);
  int lo = 0, hi = m;
  if (has_causal(p)) hi = min(hi, d + 1);
  if (fc_window() && p.window_left >= 0) lo = max(lo, d - p.window_left);
  if (fc_window() && p.window_right >= 0) hi = min(hi, d + p.window_right + 1);
  return int2(lo, max(hi, lo));
}

// The keys that any row of [q0, q1) may see: lo and hi of key_range are non-decreasing
// in i, so the union is [lo(first row), hi(last row)). Empty: (0, 0).
ATTN_FUNC int2 block_key_range(constant AttentionParams& p, int n, int m, int q0, int q1) {
  q1 = min(q1, n);
  if (q0 >= q1) return int2(0, 0);
  const int lo = key_range(p, n, m, q0).x, hi = key_range(p, n, m, q1 - 1).y;
  // Empty as (0, 0), so that a loop from lo rounded down to a block start runs no block
  // (with attn_fc_aligned, blocks are staged without bounds checks).
  return lo < hi ? int2(lo, hi) : int2(0, 0);
}

// The rows that may see any key of [k0, k1): the inverse of key_range. Empty: (0, 0).
ATTN_FUNC int2 block_query_range(constant AttentionParams& p, int n, int m, int k0, int k1) {
  k1 = min(k1, m);
  if (k0 >= k1) return int2(0, 0);
  const int off = p.causal == ATTN_CAUSAL_BOTTOM_RIGHT ? m - n : 0;
  int lo = 0, hi = n;
  // hi(i) > k0 needs i + off + 1 > k0 (causal) and i + off + right + 1 > k0 (window).
  if (has_causal(p)) lo = max(lo, k0 - off);
  if (fc_window() && p.window_right >= 0) lo = max(lo, k0 - off - p.window_right);
  // lo(i) < k1 needs i + off - left < k1 (window).
  if (fc_window() && p.window_left >= 0) hi = min(hi, k1 - off + p.window_left);
  return lo < hi ? int2(lo, hi) : int2(0, 0);  // empty as (0, 0), as in block_key_range
}

// Whether every element of rows [q0, q1) x keys [k0, k1) is visible with nothing to test
// per element: no mask, every row and key within the batch's lengths, and the key block
// inside every row's key range (lo is largest for the last row, hi smallest for the
// first). Interior blocks skip the per-element visibility tests (S6).
ATTN_FUNC bool block_interior(constant AttentionParams& p, int n, int m, int q0, int q1, int k0,
                              int k1) {
  if (has_mask(p)) return false;
  if (!fc_aligned() && (q1 > n || k1 > m)) return false;
  return key_range(p, n, m, q1 - 1).x <= k0 && key_range(p, n, m, q0).y >= k1;
}

// The scaled logit in the log2 domain of a visible element, from the raw dot product
// q_i.k_j. t is tanh(s / softcap) (the softcap derivative is 1 - t^2), 0 without softcap.
ATTN_FUNC float logit_visible(constant AttentionParams& p, float dot, thread float& t) {
  float x = dot * p.scale;
  t = 0.0f;
  if (has_softcap(p)) {
    t = precise::tanh(x * (1.0f / p.softcap));
    x = p.softcap * t;
  }
  return x * kLog2e;
}

// The logit of element (i, j) in the log2 domain, or kHidden when the element is hidden.
// kr is key_range(i). mask_base is the mask offset of the element's batch and head.
ATTN_FUNC float logit(constant AttentionParams& p, device const uchar* mask, uint mask_base,
                      float dot, int i, int j, int2 kr, thread float& t) {
  float x = dot * p.scale;
  t = 0.0f;
  if (has_softcap(p)) {
    t = precise::tanh(x * (1.0f / p.softcap));
    x = p.softcap * t;
  }
  bool vis = j >= kr.x && j < kr.y;
  if (vis && has_mask(p)) {
    const uint at = mask_base + uint(i) * p.mask_stride[2] + uint(j);
    if (fc_mask_bool() && p.mask_kind == ATTN_MASK_BOOL) {
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

// L (natural log) of a row in the log2 domain, or 0 for a row with no visible key
// (L = -inf): every probability of such a row is gated to 0 by its logits (all kHidden),
// and 0 keeps exp2's argument finite.
ATTN_FUNC float lse_log2(float l) { return as_type<uint>(l) == kNegInfBits ? 0.0f : l * kLog2e; }

}  // namespace attn

// ---------------------------------------------------------------------------- forward
//
// One threadgroup computes BQ query rows of one (batch, head): tgid = (query block,
// b*H + h). BQ/8 SIMD groups each own 8 rows. The key blocks any of the rows may see are
// walked in order; for each, K (BK x D) is staged in threadgroup memory and S = Q K^T
// (8 x BK per SIMD group) computed with 8x8 fragments; then V is staged while the
// softmax runs (its loads are in flight during the masking and exp2), and O (8 x D, in
// registers) is rescaled and accumulates P V. Two barriers per block: after K, and after
// V. Q (8 x D per SIMD group) stays in registers for D <= 128 and is re-read otherwise.
// Bounds checks on staging and per-element visibility tests run only on edge blocks.
//
// Outputs: O = acc / l ([B, H, N, D], T) and L = m ln 2 + ln l ([B, H, N], float);
// rows with no visible key get O = 0, L = -inf.
template <typename T, int BQ, int BK, int D>
[[kernel, max_total_threads_per_threadgroup(BQ / 8 * 32)]] void attention_fwd(
    device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
    device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],
    device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],
    device T* o [[buffer(6)]], device float* lse [[buffer(7)]],
    constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
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
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      qf[kCacheQ ? dd : 0] = attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
    }
  }
  simdgroup_float8x8 of[kDF];  // (8, D) unnormalised O
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) of[dd] = attn::zero_frag();
  float m_i = attn::kHidden;  // running row max (log2 domain)
  float l_i = 0.0f;           // running row sum of exp2(s - m_i)

  ATTN_NO_UNROLL
  for (int k0 = blk.x / BK * BK; k0 < blk.y; k0 += BK) {
    // Full blocks (every key valid, no padded head columns) skip the bounds checks.
    const bool full = attn::fc_aligned() || (k0 + BK <= m && dh == D);
    if (full) {
      ATTN_STAGE_FULL(k_tile, kp, p.k_stride[2], k0, BK)
    } else {
      for (int idx = int(tid); idx < BK * D; idx += kThreads) {
        const int r = idx / D, c = idx % D, key = k0 + r;
        k_tile[r * kLD + c] = key < m && c < dh ? kp[uint(key) * p.k_stride[2] + uint(c)] : T(0.0f);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S = Q K^T: (8, BK) per SIMD group.
    simdgroup_float8x8 sf[kKF];
    ATTN_UNROLL
    for (int jj = 0; jj < kKF; jj++) sf[jj] = attn::zero_frag();
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      simdgroup_float8x8 a = kCacheQ ? qf[kCacheQ ? dd : 0]
                                     : attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj++) {
        // K^T fragment: element (d, j) = K[j][d].
        const int at = (jj * 8 + ln.col) * kLD + dd * 8 + ln.row;
        simdgroup_float8x8 bt = attn::frag_of(float(k_tile[at]), float(k_tile[at + kLD]));
        simdgroup_multiply_accumulate(sf[jj], a, bt, sf[jj]);
      }
    }

    // Stage V now: the previous block's P V finished before this block's first barrier,
    // and nothing reads v_tile before the barrier below, so its loads overlap the softmax.
    if (full) {
      ATTN_STAGE_FULL(v_tile, vp, p.v_stride[2], k0, BK)
    } else {
      for (int idx = int(tid); idx < BK * D; idx += kThreads) {
        const int r = idx / D, c = idx % D, key = k0 + r;
        v_tile[r * kLD + c] = key < m && c < dh ? vp[uint(key) * p.v_stride[2] + uint(c)] : T(0.0f);
      }
    }

    // Mask, then fold the block into the online softmax.
    const bool interior = attn::block_interior(p, n, m, q0, q0 + BQ, k0, k0 + BK);
    float mx = attn::kHidden;
    ATTN_UNROLL
    for (int jj = 0; jj < kKF; jj++) {
      float2 s = attn::elems(sf[jj]);
      const int j = k0 + jj * 8 + ln.col;
      float t;
      if (interior) {
        s.x = attn::logit_visible(p, s.x, t);
        s.y = attn::logit_visible(p, s.y, t);
      } else {
        s.x = attn::logit(p, mask, mask_base, s.x, row, j, kr, t);
        s.y = attn::logit(p, mask, mask_base, s.y, row, j + 1, kr, t);
      }
      attn::set_elems(sf[jj], s);
      mx = max(mx, max(s.x, s.y));
    }
    const float m_new = max(m_i, attn::row_max(mx));
    // m_i is kHidden until the row has seen a visible key; then l_i and O are zero and
    // alpha must be 0, not exp2 of an overflowed difference.
    const float alpha = m_i > attn::kHidden ? fast::exp2(m_i - m_new) : 0.0f;
    float sum = 0.0f;
    ATTN_UNROLL
    for (int jj = 0; jj < kKF; jj++) {
      const float2 s = attn::elems(sf[jj]);
      float2 pr = float2(s.x > attn::kHidden ? fast::exp2(s.x - m_new) : 0.0f,
                         s.y > attn::kHidden ? fast::exp2(s.y - m_new) : 0.0f);
      sum += pr.x + pr.y;
      attn::set_elems(sf[jj], pr);
    }
    if (attn::has_dropout(p)) {  // L stays the logsumexp of the undropped logits
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj += 2) {
        const int j = k0 + jj * 8 + ln.col;
        uint4 w0, w1;
        if (jj + 1 < kKF) {
          attn::dropout_words_pair(p, drop_row, j, lane, w0, w1);
        } else {
          w0 = attn::dropout_words(p, drop_row, j);
          w1 = w0;
        }
        ATTN_UNROLL
        for (int e = 0; e < 2 && jj + e < kKF; e++) {
          const uint4 w = e == 0 ? w0 : w1;
          const int je = j + 8 * e;
          float2 pr = attn::elems(sf[jj + e]);
          pr.x = attn::dropout_keep(p, w, je) ? pr.x * p.dropout_scale : 0.0f;
          pr.y = attn::dropout_keep(p, w, je + 1) ? pr.y * p.dropout_scale : 0.0f;
          attn::set_elems(sf[jj + e], pr);
        }
      }
    }
    l_i = l_i * alpha + attn::row_sum(sum);
    m_i = m_new;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // O = alpha O + P V.
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      attn::set_elems(of[dd], attn::elems(of[dd]) * alpha);
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.row) * kLD + dd * 8 + ln.col;
        simdgroup_float8x8 vf = attn::frag_of(float(v_tile[at]), float(v_tile[at + 1]));
        simdgroup_multiply_accumulate(of[dd], sf[jj], vf, of[dd]);
      }
    }
  }

  const float inv = l_i > 0.0f ? 1.0f / l_i : 0.0f;
  device T* op = o + b * p.o_stride[0] + h * p.o_stride[1];  // (N, D)
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) {
    attn::frag_store(of[dd], inv, op, p.o_stride[2], row, dd * 8 + ln.col, int(p.n), dh);
  }
  if (ln.col == 0 && row < int(p.n)) {
    lse[(b * p.heads + h) * p.n + uint(row)] =
        l_i > 0.0f ? (m_i + fast::log2(l_i)) * attn::kLn2 : as_type<float>(attn::kNegInfBits);
  }
}

// -------------------------------------------------------------- backward: Delta
//
// Delta_i = sum_d dO[i][d] O[i][d] for every row of every (batch, head): one SIMD group
// per row, ATTN_DELTA_ROWS rows per threadgroup; tgid.x = row / ATTN_DELTA_ROWS over the
// B*H*N rows. Delta is [B, H, N] float (row r = (b*H + h)*N + i).
template <typename T>
[[kernel, max_total_threads_per_threadgroup(ATTN_DELTA_ROWS * 32)]] void attention_bwd_delta(
    device const T* o [[buffer(6)]], device const T* dout [[buffer(8)]],
    device float* delta [[buffer(9)]], constant AttentionParams& p [[buffer(13)]],
    uint3 tgid [[threadgroup_position_in_grid]], uint lane [[thread_index_in_simdgroup]],
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
// Q and dO (8 x D per SIMD group) stay in registers for D <= 64. dQ is written as T, or
// as float when p.grad_f32.
template <typename T, int BQ, int BK, int D>
[[kernel, max_total_threads_per_threadgroup(BQ / 8 * 32)]] void attention_bwd_dq(
    device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
    device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],
    device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],
    device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],
    device const float* delta [[buffer(9)]], device T* dq [[buffer(10)]],
    constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],
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
  const float l2 = row_in ? attn::lse_log2(lse[lrow]) : 0.0f;
  const float dlt = row_in ? delta[lrow] : 0.0f;

  device const T* qp = q + b * p.q_stride[0] + h * p.q_stride[1];       // (N, D)
  device const T* gp = dout + b * p.do_stride[0] + h * p.do_stride[1];  // (N, D)
  device const T* kp = k + b * p.k_stride[0] + hk * p.k_stride[1];      // (M, D)
  device const T* vp = v + b * p.v_stride[0] + hk * p.v_stride[1];      // (M, D)

  simdgroup_float8x8 qf[kCache ? kDF : 1], gf[kCache ? kDF : 1];
  if (kCache) {
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      qf[kCache ? dd : 0] = attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      gf[kCache ? dd : 0] = attn::frag_load(gp, p.do_stride[2], row, dd * 8 + ln.col, n, dh);
    }
  }
  simdgroup_float8x8 dqf[kDF];  // (8, D)
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) dqf[dd] = attn::zero_frag();

  ATTN_NO_UNROLL
  for (int k0 = blk.x / BK * BK; k0 < blk.y; k0 += BK) {
    if (attn::fc_aligned() || (k0 + BK <= m && dh == D)) {  // full block: no bounds checks
      ATTN_STAGE_FULL(k_tile, kp, p.k_stride[2], k0, BK)
      ATTN_STAGE_FULL(v_tile, vp, p.v_stride[2], k0, BK)
    } else {
      for (int idx = int(tid); idx < BK * D; idx += kThreads) {
        const int r = idx / D, c = idx % D, key = k0 + r;
        const bool in = key < m && c < dh;
        k_tile[r * kLD + c] = in ? kp[uint(key) * p.k_stride[2] + uint(c)] : T(0.0f);
        v_tile[r * kLD + c] = in ? vp[uint(key) * p.v_stride[2] + uint(c)] : T(0.0f);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // S = Q K^T and dP = dO V^T: (8, BK) each.
    simdgroup_float8x8 sf[kKF], pf[kKF];
    ATTN_UNROLL
    for (int jj = 0; jj < kKF; jj++) {
      sf[jj] = attn::zero_frag();
      pf[jj] = attn::zero_frag();
    }
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      simdgroup_float8x8 a = kCache ? qf[kCache ? dd : 0]
                                    : attn::frag_load(qp, p.q_stride[2], row, dd * 8 + ln.col, n, dh);
      simdgroup_float8x8 g = kCache ? gf[kCache ? dd : 0]
                                    : attn::frag_load(gp, p.do_stride[2], row, dd * 8 + ln.col, n, dh);
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.col) * kLD + dd * 8 + ln.row;
        simdgroup_float8x8 kt = attn::frag_of(float(k_tile[at]), float(k_tile[at + kLD]));
        simdgroup_float8x8 vt = attn::frag_of(float(v_tile[at]), float(v_tile[at + kLD]));
        simdgroup_multiply_accumulate(sf[jj], a, kt, sf[jj]);
        simdgroup_multiply_accumulate(pf[jj], g, vt, pf[jj]);
      }
    }

    // Dropout on dP: dP Z/(1-p), one Philox call per four columns (see dropout_words_pair).
    if (attn::has_dropout(p)) {
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj += 2) {
        const int j = k0 + jj * 8 + ln.col;
        uint4 w0, w1;
        if (jj + 1 < kKF) {
          attn::dropout_words_pair(p, lrow, j, lane, w0, w1);
        } else {
          w0 = attn::dropout_words(p, lrow, j);
          w1 = w0;
        }
        ATTN_UNROLL
        for (int e = 0; e < 2 && jj + e < kKF; e++) {
          const uint4 w = e == 0 ? w0 : w1;
          const int je = j + 8 * e;
          float2 dp = attn::elems(pf[jj + e]);
          dp.x = attn::dropout_keep(p, w, je) ? dp.x * p.dropout_scale : 0.0f;
          dp.y = attn::dropout_keep(p, w, je + 1) ? dp.y * p.dropout_scale : 0.0f;
          attn::set_elems(pf[jj + e], dp);
        }
      }
    }

    // dS = P (dP Z/(1-p) - Delta) (1 - t^2).
    const bool interior = attn::block_interior(p, n, m, q0, q0 + BQ, k0, k0 + BK);
    ATTN_UNROLL
    for (int jj = 0; jj < kKF; jj++) {
      const int j = k0 + jj * 8 + ln.col;
      const float2 s = attn::elems(sf[jj]);
      const float2 dp = attn::elems(pf[jj]);
      float t0, t1, s0, s1;
      if (interior) {
        s0 = attn::logit_visible(p, s.x, t0);
        s1 = attn::logit_visible(p, s.y, t1);
      } else {
        s0 = attn::logit(p, mask, mask_base, s.x, row, j, kr, t0);
        s1 = attn::logit(p, mask, mask_base, s.y, row, j + 1, kr, t1);
      }
      const float p0 = s0 > attn::kHidden ? fast::exp2(s0 - l2) : 0.0f;
      const float p1 = s1 > attn::kHidden ? fast::exp2(s1 - l2) : 0.0f;
      float ds0 = p0 * (dp.x - dlt), ds1 = p1 * (dp.y - dlt);
      if (attn::has_softcap(p)) {
        ds0 *= 1.0f - t0 * t0;
        ds1 *= 1.0f - t1 * t1;
      }
      attn::set_elems(sf[jj], float2(ds0, ds1));
    }

    // dQ += dS K.
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      ATTN_UNROLL
      for (int jj = 0; jj < kKF; jj++) {
        const int at = (jj * 8 + ln.row) * kLD + dd * 8 + ln.col;
        simdgroup_float8x8 kf = attn::frag_of(float(k_tile[at]), float(k_tile[at + 1]));
        simdgroup_multiply_accumulate(dqf[dd], sf[jj], kf, dqf[dd]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  const bool gf32 = p.grad_f32 != 0;
  const uint dq_off = b * p.dq_stride[0] + h * p.dq_stride[1];  // (N, D)
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) {
    attn::grad_store(dqf[dd], p.scale, dq, gf32, dq_off, p.dq_stride[2], row, dd * 8 + ln.col,
                     int(p.n), dh);
  }
}

// -------------------------------------------------------------- backward: dK, dV
//
// One threadgroup computes dK and dV for BK keys of one (batch, key/value head): tgid =
// (key block, b*Hkv + hk, part), BK/8 SIMD groups of 8 keys each. It walks every query
// head of the group (GQA: the sum over heads happens here, without atomics) and, in each,
// the query blocks of BQ rows that may see any of its keys. Per query block, with Q, dO
// (BQ x D), L and Delta (BQ) in threadgroup memory, transposed so that keys are rows:
//   S^T  = K Q^T, P^T = exp(S^T - L)
//   dV  += (P Z/(1-p))^T dO
//   dP^T = V dO^T, scaled by Z/(1-p)
//   dS^T = P^T (dP^T - Delta), times 1 - tanh^2 under softcap
//   dK  += dS^T Q                      (times scale at the end)
// K and V (8 x D per SIMD group) stay in registers for D <= 64.
//
// Head-dim blocking (S1): for D > 128 the two D-wide accumulators dK and dV do not fit
// the 128 registers of a lane together, so the kernel is split by output: the grid has
// two parts along z, part 0 computes dV (S^T and P only) and part 1 dK (S^T, dP^T, dS^T),
// each keeping one (8 x D) accumulator. The split recomputes S^T once more (5 of the
// 4 GEMMs' worth instead of 4) and doubles the threadgroups; mslplan sets the grid and
// counts the registers. With attn_fc_split_dkdv the same split runs at D <= 128, where
// mslplan finds the grid too small for the GPU (S11: MQA/GQA walk the group's heads
// serially, so few key blocks mean few threadgroups). dK and dV are written as T, or as
// float when p.grad_f32.
//
// GQA/MQA split over the group's heads (S11): with p.dkdv_heads the grid is (key block,
// b*H + h, part) and each threadgroup walks the query blocks of the one query head h,
// writing its unscaled float partials of dK and dV (rows of p.m keys, p.d columns) to
// dk_part and dv_part, [B, H, M, d] contiguous; attention_bwd_dkdv_reduce then sums the
// group's partials in head order into dK and dV. mslplan sets it where B*Hkv key-block
// threadgroups would under-fill the GPU. Every element of the partials is written (keys
// no query sees get zeros), so the scratch needs no clearing.
template <typename T, int BQ, int BK, int D>
[[kernel, max_total_threads_per_threadgroup(BK / 8 * 32)]] void attention_bwd_dkdv(
    device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],
    device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],
    device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],
    device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],
    device const float* delta [[buffer(9)]], device T* dk [[buffer(11)]],
    device T* dv [[buffer(12)]], constant AttentionParams& p [[buffer(13)]],
    device float* dk_part [[buffer(14)]], device float* dv_part [[buffer(15)]],
    uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]) {
  static_assert(BQ % 8 == 0 && BK % 8 == 0 && D % 8 == 0, "tiles are made of 8x8 fragments");
  constexpr int kThreads = BK / 8 * 32;
  constexpr int kLD = D + 16 / int(sizeof(T));
  constexpr int kDF = D / 8;
  constexpr int kQF = BQ / 8;  // fragments across a query block
  constexpr bool kCache = D <= 64;
  constexpr bool kSplit = D > 128;  // always split: one output per threadgroup

  threadgroup T q_tile[BQ * kLD];  // (BQ, D)
  threadgroup T g_tile[BQ * kLD];  // (BQ, D) dO
  threadgroup float l_tile[BQ];    // (BQ) L, log2 domain
  threadgroup float d_tile[BQ];    // (BQ) Delta

  // The query heads this threadgroup walks: the whole group of key/value head hk, or with
  // p.dkdv_heads the one head h0 (tgid.y = b*H + h0).
  const bool heads = p.dkdv_heads != 0;
  const uint b = tgid.y / (heads ? p.heads : p.kv_heads);
  const uint h0 = heads ? tgid.y % p.heads : (tgid.y % p.kv_heads) * p.group;
  const uint hk = h0 / p.group, nheads = heads ? 1u : p.group;
  // Split by output: tgid.z 0 computes dV, 1 computes dK, each in acc.
  const bool split = kSplit || attn::fc_split_dkdv();
  // A grid of two parts run without the constant (a host that sets no constants): part 0
  // computes both outputs, part 1 has nothing to do. Uniform per threadgroup, before any
  // barrier.
  if (!split && tgid.z != 0) return;
  const bool want_v = !split || tgid.z == 0, want_k = !split || tgid.z != 0;
  const int n = attn::rows_q(p, lens_q, b), m = attn::rows_k(p, lens_k, b);
  const int dh = int(p.d);
  const attn::Lane ln = attn::lane_coord(lane);
  const int k0 = int(tgid.x) * BK;
  const int key = k0 + int(sg) * 8 + ln.row;  // this lane's key row
  const int2 blk = attn::block_query_range(p, n, m, k0, k0 + BK);
  // Dropout sharing: the four lanes that differ in lane bits 1 and 2 hold the same query
  // columns of keys 4a .. 4a + 3 (one Philox call's four words); sq is this lane's place
  // among them (= key & 3).
  const uint sq = (lane >> 1) & 3u;

  device const T* kp = k + b * p.k_stride[0] + hk * p.k_stride[1];  // (M, D)
  device const T* vp = v + b * p.v_stride[0] + hk * p.v_stride[1];  // (M, D)

  simdgroup_float8x8 kf[kCache ? kDF : 1], vf[kCache ? kDF : 1];
  if (kCache) {
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      kf[kCache ? dd : 0] = attn::frag_load(kp, p.k_stride[2], key, dd * 8 + ln.col, m, dh);
      vf[kCache ? dd : 0] = attn::frag_load(vp, p.v_stride[2], key, dd * 8 + ln.col, m, dh);
    }
  }
  simdgroup_float8x8 acc[kDF];                // (8, D) dV; split: this part's output
  simdgroup_float8x8 acck[kSplit ? 1 : kDF];  // (8, D) dK when not split
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) {
    acc[dd] = attn::zero_frag();
    acck[kSplit ? 0 : dd] = attn::zero_frag();
  }

  ATTN_NO_UNROLL
  for (uint hh = 0; hh < nheads; hh++) {
    const uint h = h0 + hh;
    const uint mask_base = b * p.mask_stride[0] + h * p.mask_stride[1];
    const uint lbase = (b * p.heads + h) * p.n;  // L, Delta and dropout rows of (b, h)
    device const T* qp = q + b * p.q_stride[0] + h * p.q_stride[1];       // (N, D)
    device const T* gp = dout + b * p.do_stride[0] + h * p.do_stride[1];  // (N, D)

    ATTN_NO_UNROLL
    for (int q0 = blk.x / BQ * BQ; q0 < blk.y; q0 += BQ) {
      if (attn::fc_aligned() || (q0 + BQ <= n && dh == D)) {  // full block: no bounds checks
        ATTN_STAGE_FULL(q_tile, qp, p.q_stride[2], q0, BQ)
        ATTN_STAGE_FULL(g_tile, gp, p.do_stride[2], q0, BQ)
      } else {
        for (int idx = int(tid); idx < BQ * D; idx += kThreads) {
          const int r = idx / D, c = idx % D, i = q0 + r;
          const bool in = i < n && c < dh;
          q_tile[r * kLD + c] = in ? qp[uint(i) * p.q_stride[2] + uint(c)] : T(0.0f);
          g_tile[r * kLD + c] = in ? gp[uint(i) * p.do_stride[2] + uint(c)] : T(0.0f);
        }
      }
      for (int r = int(tid); r < BQ; r += kThreads) {
        const int i = q0 + r;
        l_tile[r] = i < n ? attn::lse_log2(lse[lbase + uint(i)]) : 0.0f;
        d_tile[r] = i < n ? delta[lbase + uint(i)] : 0.0f;
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);

      // S^T = K Q^T and (for dK) dP^T = V dO^T: (8, BQ) each.
      simdgroup_float8x8 sf[kQF], pf[kQF];
      ATTN_UNROLL
      for (int ii = 0; ii < kQF; ii++) {
        sf[ii] = attn::zero_frag();
        pf[ii] = attn::zero_frag();
      }
      ATTN_UNROLL
      for (int dd = 0; dd < kDF; dd++) {
        simdgroup_float8x8 a = kCache ? kf[kCache ? dd : 0]
                                      : attn::frag_load(kp, p.k_stride[2], key, dd * 8 + ln.col, m, dh);
        ATTN_UNROLL
        for (int ii = 0; ii < kQF; ii++) {
          const int at = (ii * 8 + ln.col) * kLD + dd * 8 + ln.row;
          simdgroup_float8x8 qt = attn::frag_of(float(q_tile[at]), float(q_tile[at + kLD]));
          simdgroup_multiply_accumulate(sf[ii], a, qt, sf[ii]);
        }
        if (want_k) {
          simdgroup_float8x8 c = kCache ? vf[kCache ? dd : 0]
                                        : attn::frag_load(vp, p.v_stride[2], key, dd * 8 + ln.col, m, dh);
          ATTN_UNROLL
          for (int ii = 0; ii < kQF; ii++) {
            const int at = (ii * 8 + ln.col) * kLD + dd * 8 + ln.row;
            simdgroup_float8x8 gt = attn::frag_of(float(g_tile[at]), float(g_tile[at + kLD]));
            simdgroup_multiply_accumulate(pf[ii], c, gt, pf[ii]);
          }
        }
      }

      // Element (key, i): sf becomes P Z/(1-p) (for dV), pf becomes dS (for dK).
      const bool interior = attn::block_interior(p, n, m, q0, q0 + BQ, k0, k0 + BK);
      ATTN_UNROLL
      for (int ii = 0; ii < kQF; ii += 2) {
        // Dropout words of fragments ii and ii + 1: four Philox calls (fragment f, column
        // e) shared by the four lanes of this key group; lane sq computes call sq, and four
        // rotations hand each lane word sq (its key & 3) of every call: kw[c].
        uint4 kw = uint4(0u);
        if (attn::has_dropout(p)) {
          const int f = ii + 1 < kQF ? int(sq >> 1) : 0, e = int(sq & 1u);
          const int i = q0 + (ii + f) * 8 + ln.col + e;
          const uint4 w = attn::dropout_words(p, lbase + uint(i), key);
          // Round r: give word (sq + r) & 3 of my call, take from the lane whose call is
          // (sq - r) & 3, which gives word sq of its call.
          uint4 got;
          ATTN_UNROLL
          for (uint r = 0; r < 4; r++) {
            const uint src = (sq - r) & 3u;
            got[r] = simd_shuffle(attn::pick4(w, (sq + r) & 3u), ushort((lane & ~6u) | (src << 1)));
          }
          kw = uint4(attn::pick4(got, sq & 3u), attn::pick4(got, (sq - 1u) & 3u),
                     attn::pick4(got, (sq - 2u) & 3u), attn::pick4(got, (sq - 3u) & 3u));
        }
        ATTN_UNROLL
        for (int f = 0; f < 2 && ii + f < kQF; f++) {
          const float2 s = attn::elems(sf[ii + f]);
          const float2 dp = attn::elems(pf[ii + f]);
          float pd[2], ds[2];
          ATTN_UNROLL
          for (int e = 0; e < 2; e++) {
            const int r = (ii + f) * 8 + ln.col + e, i = q0 + r;
            float t;
            const float x = interior ? attn::logit_visible(p, e == 0 ? s.x : s.y, t)
                                     : attn::logit(p, mask, mask_base, e == 0 ? s.x : s.y, i, key,
                                                   attn::key_range(p, n, m, i), t);
            const float pr = x > attn::kHidden ? fast::exp2(x - l_tile[r]) : 0.0f;
            float g = e == 0 ? dp.x : dp.y;
            pd[e] = pr;
            if (attn::has_dropout(p)) {
              const bool keep = attn::pick4(kw, uint(2 * f + e)) >= p.dropout_threshold;
              pd[e] = keep ? pr * p.dropout_scale : 0.0f;
              g = keep ? g * p.dropout_scale : 0.0f;
            }
            ds[e] = pr * (g - d_tile[r]);
            if (attn::has_softcap(p)) ds[e] *= 1.0f - t * t;
          }
          attn::set_elems(sf[ii + f], float2(pd[0], pd[1]));
          attn::set_elems(pf[ii + f], float2(ds[0], ds[1]));
        }
      }

      // dV += P^T dO, dK += dS^T Q.
      if (want_v) {
        ATTN_UNROLL
        for (int dd = 0; dd < kDF; dd++) {
          ATTN_UNROLL
          for (int ii = 0; ii < kQF; ii++) {
            const int at = (ii * 8 + ln.row) * kLD + dd * 8 + ln.col;
            simdgroup_float8x8 gq = attn::frag_of(float(g_tile[at]), float(g_tile[at + 1]));
            simdgroup_multiply_accumulate(acc[dd], sf[ii], gq, acc[dd]);
          }
        }
      }
      if (want_k) {
        ATTN_UNROLL
        for (int dd = 0; dd < kDF; dd++) {
          ATTN_UNROLL
          for (int ii = 0; ii < kQF; ii++) {
            const int at = (ii * 8 + ln.row) * kLD + dd * 8 + ln.col;
            simdgroup_float8x8 qq = attn::frag_of(float(q_tile[at]), float(q_tile[at + 1]));
            if (split) {
              simdgroup_multiply_accumulate(acc[dd], pf[ii], qq, acc[dd]);
            } else {
              simdgroup_multiply_accumulate(acck[kSplit ? 0 : dd], pf[ii], qq, acck[kSplit ? 0 : dd]);
            }
          }
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
  }

  if (heads) {
    // Partials of head h0, unscaled float: rows of p.d columns (the reduction scales dK).
    const uint off = (b * p.heads + h0) * p.m * uint(dh);
    ATTN_UNROLL
    for (int dd = 0; dd < kDF; dd++) {
      const int col = dd * 8 + ln.col;
      if (!split) {
        attn::frag_store(acck[kSplit ? 0 : dd], 1.0f, dk_part + off, uint(dh), key, col, int(p.m), dh);
        attn::frag_store(acc[dd], 1.0f, dv_part + off, uint(dh), key, col, int(p.m), dh);
      } else if (want_k) {
        attn::frag_store(acc[dd], 1.0f, dk_part + off, uint(dh), key, col, int(p.m), dh);
      } else {
        attn::frag_store(acc[dd], 1.0f, dv_part + off, uint(dh), key, col, int(p.m), dh);
      }
    }
    return;
  }
  const bool gf32 = p.grad_f32 != 0;
  const uint dk_off = b * p.dk_stride[0] + hk * p.dk_stride[1];  // (M, D)
  const uint dv_off = b * p.dv_stride[0] + hk * p.dv_stride[1];  // (M, D)
  ATTN_UNROLL
  for (int dd = 0; dd < kDF; dd++) {
    const int col = dd * 8 + ln.col;
    if (!split) {
      attn::grad_store(acck[kSplit ? 0 : dd], p.scale, dk, gf32, dk_off, p.dk_stride[2], key, col,
                       int(p.m), dh);
      attn::grad_store(acc[dd], 1.0f, dv, gf32, dv_off, p.dv_stride[2], key, col, int(p.m), dh);
    } else if (want_k) {
      attn::grad_store(acc[dd], p.scale, dk, gf32, dk_off, p.dk_stride[2], key, col, int(p.m), dh);
    } else {
      attn::grad_store(acc[dd], 1.0f, dv, gf32, dv_off, p.dv_stride[2], key, col, int(p.m), dh);
    }
  }
}

// -------------------------------------------------------------- backward: dK/dV reduction
//
// After attention_bwd_dkdv with p.dkdv_heads: dK = scale * sum_g dk_part[b, hk*G + g] and
// dV = sum_g dv_part[b, hk*G + g] over the G = p.group query heads of key/value head hk,
// summed in head order (no atomics: the same inputs give the same bits). One thread per
// element of [B, Hkv, M, d]: tgid.x = element / ATTN_REDUCE_THREADS. dK and dV are
// written as T, or as float when p.grad_f32, with their strides.
template <typename T>
[[kernel, max_total_threads_per_threadgroup(ATTN_REDUCE_THREADS)]] void attention_bwd_dkdv_reduce(
    device T* dk [[buffer(11)]], device T* dv [[buffer(12)]],
    constant AttentionParams& p [[buffer(13)]], device const float* dk_part [[buffer(14)]],
    device const float* dv_part [[buffer(15)]], uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]]) {
  const uint d = p.d;
  const uint idx = tgid.x * ATTN_REDUCE_THREADS + tid;
  if (idx >= p.batch * p.kv_heads * p.m * d) return;
  const uint c = idx % d, row = idx / d, key = row % p.m, bhk = row / p.m;
  const uint b = bhk / p.kv_heads, hk = bhk % p.kv_heads;
  const uint head_stride = p.m * d;  // one query head of the partials
  uint at = ((b * p.heads + hk * p.group) * p.m + key) * d + c;
  float sk = 0.0f, sv = 0.0f;
  ATTN_NO_UNROLL
  for (uint g = 0; g < p.group; g++) {
    sk += dk_part[at];
    sv += dv_part[at];
    at += head_stride;
  }
  const uint ko = b * p.dk_stride[0] + hk * p.dk_stride[1] + key * p.dk_stride[2] + c;
  const uint vo = b * p.dv_stride[0] + hk * p.dv_stride[1] + key * p.dv_stride[2] + c;
  if (p.grad_f32 != 0) {
    ((device float*)dk)[ko] = sk * p.scale;
    ((device float*)dv)[vo] = sv;
  } else {
    dk[ko] = T(sk * p.scale);
    dv[vo] = T(sv);
  }
}

// -------------------------------------------------------------- instantiations
//
// Names encode the kernel, the tile and the stored type: attention_fwd_bq32_bk32_d64_f16
// is the forward with 32 query rows per threadgroup, key blocks of 32 and head dim 64 on
// float16 data. go/attention/mslplan picks among them (its tile table is the list below;
// a test there keeps the two in step). ATTN_KEEP_<type> drops an instantiation the
// library being compiled does not hold (see "Libraries" at the top of the file).

#if defined(ATTN_LIBRARY_BFLOAT)
#define ATTN_KEEP_f32(...)
#define ATTN_KEEP_f16(...)
#else
#define ATTN_KEEP_f32(...) __VA_ARGS__
#define ATTN_KEEP_f16(...) __VA_ARGS__
#endif
#if __METAL_VERSION__ >= 310
#define ATTN_KEEP_bf16(...) __VA_ARGS__
#else
#define ATTN_KEEP_bf16(...)
#endif

#define ATTN_INSTANTIATE_FWD(T, TN, BQ, BK, D)                                                  \
  ATTN_KEEP_##TN(                                                                               \
  template [[host_name("attention_fwd_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void      \
  attention_fwd<T, BQ, BK, D>(                                                                  \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device T* o [[buffer(6)]], device float* lse [[buffer(7)]],                               \
      constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],  \
      uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],        \
      uint sg [[simdgroup_index_in_threadgroup]]);)

#define ATTN_INSTANTIATE_DELTA(T, TN)                                                           \
  ATTN_KEEP_##TN(                                                                               \
  template [[host_name("attention_bwd_delta_" #TN)]] [[kernel]] void attention_bwd_delta<T>(    \
      device const T* o [[buffer(6)]], device const T* dout [[buffer(8)]],                      \
      device float* delta [[buffer(9)]], constant AttentionParams& p [[buffer(13)]],            \
      uint3 tgid [[threadgroup_position_in_grid]], uint lane [[thread_index_in_simdgroup]],     \
      uint sg [[simdgroup_index_in_threadgroup]]);)

#define ATTN_INSTANTIATE_DQ(T, TN, BQ, BK, D)                                                   \
  ATTN_KEEP_##TN(                                                                               \
  template [[host_name("attention_bwd_dq_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void   \
  attention_bwd_dq<T, BQ, BK, D>(                                                               \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],                \
      device const float* delta [[buffer(9)]], device T* dq [[buffer(10)]],                     \
      constant AttentionParams& p [[buffer(13)]], uint3 tgid [[threadgroup_position_in_grid]],  \
      uint tid [[thread_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]],        \
      uint sg [[simdgroup_index_in_threadgroup]]);)

#define ATTN_INSTANTIATE_DKDV(T, TN, BQ, BK, D)                                                 \
  ATTN_KEEP_##TN(                                                                               \
  template [[host_name("attention_bwd_dkdv_bq" #BQ "_bk" #BK "_d" #D "_" #TN)]] [[kernel]] void \
  attention_bwd_dkdv<T, BQ, BK, D>(                                                             \
      device const T* q [[buffer(0)]], device const T* k [[buffer(1)]],                         \
      device const T* v [[buffer(2)]], device const uchar* mask [[buffer(3)]],                  \
      device const int* lens_q [[buffer(4)]], device const int* lens_k [[buffer(5)]],           \
      device const float* lse [[buffer(7)]], device const T* dout [[buffer(8)]],                \
      device const float* delta [[buffer(9)]], device T* dk [[buffer(11)]],                     \
      device T* dv [[buffer(12)]], constant AttentionParams& p [[buffer(13)]],                  \
      device float* dk_part [[buffer(14)]], device float* dv_part [[buffer(15)]],               \
      uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],    \
      uint lane [[thread_index_in_simdgroup]], uint sg [[simdgroup_index_in_threadgroup]]);)

#define ATTN_INSTANTIATE_DKDV_REDUCE(T, TN)                                                     \
  ATTN_KEEP_##TN(                                                                               \
  template [[host_name("attention_bwd_dkdv_reduce_" #TN)]] [[kernel]] void                      \
  attention_bwd_dkdv_reduce<T>(                                                                 \
      device T* dk [[buffer(11)]], device T* dv [[buffer(12)]],                                 \
      constant AttentionParams& p [[buffer(13)]], device const float* dk_part [[buffer(14)]],   \
      device const float* dv_part [[buffer(15)]], uint3 tgid [[threadgroup_position_in_grid]],  \
      uint tid [[thread_index_in_threadgroup]]);)

// BEGIN GENERATED INSTANTIATIONS
// Written by `go test ./tools/msltest -run TestInstantiations -update` from the tile
// table of go/attention/mslplan (every instance, for Metal and for tools/mslemu) and the
// test tiles in tools/msltest/instantiations_test.go (tools/mslemu only). Do not edit by
// hand. tools/mslemu spreads what MSLEMU_KGEN_SHARD hides over several translation units.
#ifndef MSLEMU_KGEN_SHARD
#ifdef MSLEMU
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 128)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 192)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(half, f16, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 32)
ATTN_INSTANTIATE_DKDV(float, f32, 8, 16, 64)
ATTN_INSTANTIATE_DKDV(half, f16, 8, 16, 80)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 8, 16, 96)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 128)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 192)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 8, 32)
ATTN_INSTANTIATE_DQ(half, f16, 16, 8, 32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 8, 64)
ATTN_INSTANTIATE_DQ(half, f16, 16, 8, 80)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 8, 96)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 128)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 192)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 8, 32)
ATTN_INSTANTIATE_FWD(half, f16, 16, 8, 32)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 32)
ATTN_INSTANTIATE_FWD(float, f32, 16, 8, 64)
ATTN_INSTANTIATE_FWD(half, f16, 16, 8, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 8, 96)
#endif
ATTN_INSTANTIATE_DELTA(bfloat, bf16)
ATTN_INSTANTIATE_DELTA(half, f16)
ATTN_INSTANTIATE_DELTA(float, f32)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 32, 128)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 16, 32, 192)
ATTN_INSTANTIATE_DKDV(half, f16, 16, 32, 192)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 16, 32, 256)
ATTN_INSTANTIATE_DKDV(half, f16, 16, 32, 256)
ATTN_INSTANTIATE_DKDV(float, f32, 16, 32, 96)
ATTN_INSTANTIATE_DKDV(float, f32, 24, 16, 128)
ATTN_INSTANTIATE_DKDV(bfloat, bf16, 24, 16, 256)
ATTN_INSTANTIATE_DKDV(half, f16, 24, 16, 256)
ATTN_INSTANTIATE_DKDV(float, f32, 24, 32, 80)
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
ATTN_INSTANTIATE_DKDV_REDUCE(bfloat, bf16)
ATTN_INSTANTIATE_DKDV_REDUCE(half, f16)
ATTN_INSTANTIATE_DKDV_REDUCE(float, f32)
ATTN_INSTANTIATE_DQ(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_DQ(float, f32, 16, 24, 128)
ATTN_INSTANTIATE_DQ(bfloat, bf16, 16, 24, 256)
ATTN_INSTANTIATE_DQ(half, f16, 16, 24, 256)
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
ATTN_INSTANTIATE_DQ(float, f32, 32, 16, 96)
ATTN_INSTANTIATE_DQ(float, f32, 32, 24, 80)
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
ATTN_INSTANTIATE_FWD(float, f32, 16, 16, 192)
ATTN_INSTANTIATE_FWD(float, f32, 16, 24, 128)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 24, 256)
ATTN_INSTANTIATE_FWD(half, f16, 16, 24, 256)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 32, 192)
ATTN_INSTANTIATE_FWD(half, f16, 16, 32, 192)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 80)
ATTN_INSTANTIATE_FWD(float, f32, 16, 32, 96)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 16, 48, 128)
ATTN_INSTANTIATE_FWD(half, f16, 16, 48, 128)
ATTN_INSTANTIATE_FWD(float, f32, 16, 48, 64)
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
ATTN_INSTANTIATE_FWD(float, f32, 32, 16, 96)
ATTN_INSTANTIATE_FWD(float, f32, 32, 24, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 32, 128)
ATTN_INSTANTIATE_FWD(half, f16, 32, 32, 128)
ATTN_INSTANTIATE_FWD(float, f32, 32, 32, 64)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 40, 96)
ATTN_INSTANTIATE_FWD(half, f16, 32, 40, 96)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 48, 80)
ATTN_INSTANTIATE_FWD(half, f16, 32, 48, 80)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 64, 32)
ATTN_INSTANTIATE_FWD(half, f16, 32, 64, 32)
ATTN_INSTANTIATE_FWD(float, f32, 32, 64, 32)
ATTN_INSTANTIATE_FWD(bfloat, bf16, 32, 64, 64)
ATTN_INSTANTIATE_FWD(half, f16, 32, 64, 64)
ATTN_INSTANTIATE_FWD(float, f32, 32, 8, 192)
ATTN_INSTANTIATE_FWD(float, f32, 32, 8, 256)
#endif
// END GENERATED INSTANTIATIONS
