// The parameters of one attention dispatch, shared by the Metal kernels (attention.metal),
// the host code that fills them (go/attention/mslplan mirrors this struct byte for byte;
// tools/msltest checks every offset against this file through cgo) and the Objective-C
// shims.
//
// Plain C: every field is a 4-byte unsigned int, int or float, so the layout is the same
// for MSL, C, C++ and Go (no padding, 4-byte alignment, no bool, no 64-bit field). The
// kernels read it as `constant AttentionParams&` bound with setBytes.
//
// Shapes (see go/attention/spec): Q, O, dO, dQ are [B, H, N, D]; K, V, dK, dV are
// [B, Hkv, M, D]; L and Delta are [B, H, N], float32, contiguous; the mask is
// [Bm, Hm, N, M] with Bm in {1, B}, Hm in {1, H}.
#ifndef ORCHARD_ATTENTION_PARAMS_H
#define ORCHARD_ATTENTION_PARAMS_H

// Buffer indices, the same in every kernel (a kernel binds only the ones it reads or
// writes; see go/attention/mslplan for the list per kernel).
#define ATTN_BUF_Q 0       // [B, H, N, D] T
#define ATTN_BUF_K 1       // [B, Hkv, M, D] T
#define ATTN_BUF_V 2       // [B, Hkv, M, D] T
#define ATTN_BUF_MASK 3    // bool mask: uchar 0/1; additive mask: float; see mask_kind
#define ATTN_BUF_LENS_Q 4  // [B] int, valid query rows per batch (when has_lens_q)
#define ATTN_BUF_LENS_K 5  // [B] int, valid key rows per batch (when has_lens_k)
#define ATTN_BUF_O 6       // [B, H, N, D] T
#define ATTN_BUF_L 7       // [B, H, N] float, row logsumexp (natural log)
#define ATTN_BUF_DO 8      // [B, H, N, D] T
#define ATTN_BUF_DELTA 9   // [B, H, N] float, rowsum(dO * O)
#define ATTN_BUF_DQ 10     // [B, H, N, D] T, or float when grad_f32
#define ATTN_BUF_DK 11     // [B, Hkv, M, D] T, or float when grad_f32
#define ATTN_BUF_DV 12     // [B, Hkv, M, D] T, or float when grad_f32
#define ATTN_BUF_PARAMS 13 // AttentionParams
#define ATTN_BUF_DK_PART 14 // [B, H, M, d] float, per-query-head dK partials (when dkdv_heads)
#define ATTN_BUF_DV_PART 15 // [B, H, M, d] float, per-query-head dV partials (when dkdv_heads)

// Rows of Delta per threadgroup of the Delta kernel (one SIMD group of 32 lanes per row).
#define ATTN_DELTA_ROWS 8

// Threads per threadgroup of the dK/dV reduction kernel (one element of dK and dV each).
#define ATTN_REDUCE_THREADS 256

// Function constant indices ([[function_constant(i)]] in attention.metal; every one a
// bool, set per plan from go/attention/mslplan's Plan.Constants). Each says whether a
// feature may occur; false removes its code from the specialised kernel.
#define ATTN_FC_CAUSAL 0         // causal != ATTN_CAUSAL_NONE
#define ATTN_FC_WINDOW 1         // window_left or window_right bounded
#define ATTN_FC_MASK_BOOL 2      // mask_kind == ATTN_MASK_BOOL
#define ATTN_FC_MASK_ADDITIVE 3  // mask_kind == ATTN_MASK_ADDITIVE
#define ATTN_FC_SOFTCAP 4        // softcap > 0
#define ATTN_FC_DROPOUT 5        // dropout_on
#define ATTN_FC_LENS_Q 6         // has_lens_q
#define ATTN_FC_LENS_K 7         // has_lens_k
#define ATTN_FC_ALIGNED 8        // no edge blocks: N, M multiples of every tile, d == D, no lengths
#define ATTN_FC_VEC4 9           // Q, K, V, dO 16-byte aligned with strides multiple of 4 elements
#define ATTN_FC_SPLIT_DKDV 10    // dK/dV split by output (grid z = 2) also at D <= 128
#define ATTN_FC_COUNT 11

// causal
#define ATTN_CAUSAL_NONE 0
#define ATTN_CAUSAL_TOP_LEFT 1
#define ATTN_CAUSAL_BOTTOM_RIGHT 2

// mask_kind
#define ATTN_MASK_NONE 0
#define ATTN_MASK_BOOL 1     // uchar, nonzero keeps the element
#define ATTN_MASK_ADDITIVE 2 // float, added to the logit; -inf hides the element

// window_left / window_right
#define ATTN_WINDOW_UNBOUNDED (-1)

// Strides are in elements and index [batch, head, row]; the head-dim stride is 1. Every
// offset a kernel forms fits in 32 bits (the planner refuses larger tensors).
typedef struct AttentionParams {
  // Sizes. d is the real head dim; the kernel's template D is d rounded up to an
  // instantiated size, and columns d..D-1 are read as zero and never written.
  unsigned int batch;     // B
  unsigned int heads;     // H, query heads
  unsigned int kv_heads;  // Hkv
  unsigned int group;     // H / Hkv: query head h reads key/value head h / group
  unsigned int n;         // N, query rows
  unsigned int m;         // M, key rows
  unsigned int d;         // D, head dim

  // Strides in elements: [0] batch, [1] head, [2] row.
  unsigned int q_stride[3];
  unsigned int k_stride[3];
  unsigned int v_stride[3];
  unsigned int o_stride[3];
  unsigned int do_stride[3];
  unsigned int dq_stride[3];
  unsigned int dk_stride[3];
  unsigned int dv_stride[3];

  // Logits: s = scale * q.k; s = softcap * tanh(s / softcap) when softcap > 0; s += bias.
  float scale;    // resolved (1/sqrt(D) by default)
  float softcap;  // 0: off

  // Visibility.
  unsigned int causal;   // ATTN_CAUSAL_*
  int window_left;       // >= 0 or ATTN_WINDOW_UNBOUNDED
  int window_right;      // >= 0 or ATTN_WINDOW_UNBOUNDED
  unsigned int mask_kind;        // ATTN_MASK_*
  unsigned int mask_stride[3];   // [0] batch, [1] head (0 broadcasts), [2] row; column stride 1
  unsigned int has_lens_q;       // 1: read ATTN_BUF_LENS_Q, else every batch has n rows
  unsigned int has_lens_k;       // 1: read ATTN_BUF_LENS_K, else every batch has m keys

  // Dropout (package philox's rule): keep element (b, h, i, j) when
  // Philox4x32_10((j >> 2, (b*H + h)*N + i, offset_lo, offset_hi), (seed_lo, seed_hi))[j & 3]
  // >= dropout_threshold; kept probabilities are multiplied by dropout_scale.
  unsigned int dropout_on;         // 1: dropout (p > 0)
  unsigned int dropout_threshold;  // floor(p * 2^32)
  float dropout_scale;             // 1 / (1 - p)
  unsigned int seed_lo;
  unsigned int seed_hi;
  unsigned int offset_lo;
  unsigned int offset_hi;

  // Gradients (W2): 1 writes dQ, dK and dV as float (the buffers hold floats, with the
  // element strides above), 0 as the input type T.
  unsigned int grad_f32;

  // GQA/MQA split over the group's query heads (S11): 1 makes the dK/dV kernel run one
  // threadgroup per (key block, b*H + h) and write float partials of query head h, unscaled,
  // to ATTN_BUF_DK_PART / ATTN_BUF_DV_PART as contiguous [B, H, M, d]; the reduction kernel
  // then sums the group's partials into dK and dV. 0: one threadgroup per
  // (key block, b*Hkv + hk) walks the group's heads and writes dK and dV itself.
  unsigned int dkdv_heads;
} AttentionParams;

#endif
