// Package spec states the attention problem every Orchard executor solves, and the
// contract it solves it under. It is the single source of truth for the semantics; the
// reference (go/fallback) implements them literally, and every fast executor is tested
// against the reference.
//
// # Shapes
//
// Q, O, dO, dQ are [B, H, N, D]; K, V, dK, dV are [B, Hkv, M, D]; L is [B, H, N]. H must
// be a multiple of Hkv, and query head h reads key/value head h / (H/Hkv) (GQA; MQA is
// Hkv = 1). Q, K and V share one dtype; O, dQ, dK and dV come back in that dtype. L is
// float32 (float64 when the inputs are float64, which only the reference accepts).
//
// # The logits, in order
//
//	s_ij = scale · q_i·k_j                       scale defaults to 1/sqrt(D)
//	s_ij = c · tanh(s_ij / c)                    when Softcap c > 0
//	s_ij = s_ij + bias_ij                        with an additive mask
//	s_ij = −Inf when j is not visible from i     (Visible: lengths, causal, window, bool mask)
//	P    = softmax_j(s),  L_i = log Σ_j exp(s_ij) (natural log)
//	P'   = P ∘ Z / (1 − p)                       dropout, Z from package philox
//	O    = P' · V
//
// A row with no visible key (all −Inf) has O = 0, L = −Inf and zero gradients; never NaN.
//
// # Visibility
//
// For batch b let n = SeqLensQ[b] and m = SeqLensK[b] (N and M when the slices are nil).
// Rows i ≥ n and columns j ≥ m are invisible: their outputs and gradients are zero. The
// diagonal that causal masking and windows are measured from is d(i) = i, or
// d(i) = i + m − n when Causal is CausalBottomRight. Causal (either alignment) hides j > d(i).
// A Window hides j < d(i) − Left and j > d(i) + Right (each bound may be WindowUnbounded).
// A bool mask hides elements whose Keep entry is false.
package spec
