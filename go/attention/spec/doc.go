// Package spec states the attention problem every Orchard executor solves, and the
// contract it solves it under. It is the single source of truth for the semantics; the
// reference (go/fallback) implements them literally, and every fast executor is tested
// against the reference.
//
// # Shapes
//
// Q, O, dO, dQ are [B, H, N, D]; K, V, dK, dV are [B, Hkv, M, D]; L is [B, H, N]. H must
// be a multiple of Hkv, and query head h reads key/value head h / (H/Hkv) (GQA; MQA is
// Hkv = 1). Q, K and V share one dtype; O comes back in that dtype, dQ, dK and dV in
// GradDTypeValue() (Q's dtype, or float32 on request). L is float32 or float64, whatever
// the input dtype, and every backward accepts either: the reference writes float64, so that
// P = exp(s − L) recomputed from it is exact even when a row's logits all carry a large
// constant (a −1e9 padding bias, say), which a float32 L rounds by up to 64.
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
// # Accepted values
//
// Scale is 0 (1/sqrt(D)) or in [MinScale, MaxScale] = [2^-126, 2^24]; Softcap is 0 (off)
// or in the same range: normal float32 numbers, so that an executor computing in float32
// uses the same nonzero value as the reference, and small enough that logits of inputs of
// sane size stay finite. Bias values are finite or −Inf; a finite bias of any size, up to
// ±MaxFloat32, keeps its key visible. Window bounds are WindowUnbounded or any int ≥ 0: a
// bound past N + M hides nothing, and none overflows. Dropout indexes at most 2^32 rows
// (B·H·N) and MaxDropoutKeys = 2^34 columns (M). Sizes whose element counts overflow an int
// (a mask's B·H·N·M, say) are refused. Every rule broken gets an *ArgError naming the
// argument; Validate checks them all.
//
// # Numerics every executor keeps
//
// Within those values, and for inputs of unit scale: logits up to ±1e4 after scaling (and
// the bias) never overflow: outputs are finite and match the reference. NaN or ±Inf in the
// inputs of one batch and head stays there: the outputs and gradients of every other batch,
// and of every head that reads neither the polluted query head nor the polluted key/value
// head, are bit for bit those of the call without it (a backward may instead refuse the
// non-finite L such rows get, with an *ArgError naming Saved.L). A fully masked row gives exact zeros
// in O and in its dQ row, L = −Inf. Package attntest holds these as tests every executor's
// suite runs.
//
// # Visibility
//
// For batch b let n = SeqLensQ[b] and m = SeqLensK[b] (N and M when the slices are nil).
// Rows i ≥ n and columns j ≥ m are invisible: their outputs and gradients are zero. The
// diagonal that causal masking and windows are measured from is d(i) = i, or
// d(i) = i + m − n when Causal is CausalBottomRight. Causal (either alignment) hides j > d(i).
// A Window hides j < d(i) − Left and j > d(i) + Right (each bound may be WindowUnbounded;
// the comparison is exact for every int bound: nothing wraps).
// A bool mask hides elements whose Keep entry is false.
package spec
