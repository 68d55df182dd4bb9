// Package fallback is Orchard's exact attention reference: forward and backward with every
// option of the contract in package spec, computed by direct loops that accumulate in
// float64. It is the oracle every other executor is tested against, and the executor of
// last resort in the engine, so it favours being obviously correct over being fast: it
// computes one row of M logits at a time and runs on one goroutine.
//
// How large a problem it takes: any valid problem whose working memory fits the budget of
// the call's context (spec.MemoryBudget: half the machine's memory by default). The working
// memory is ForwardMemory(p) ≈ 8·(2·|Q| + 2·|K| + 2·B·H·N) plus the returned O, and
// BackwardMemory(p) ≈ 8·(3·|Q| + 4·|K| + B·H·N) plus the returned gradients, where |Q| =
// B·H·N·D and |K| = B·Hkv·M·D counted as elements (a broadcast input is expanded), plus
// 48·M + 8·D bytes of scratch; over it the call returns a *spec.MemoryError before
// allocating anything. Time grows as B·H·N·M·D (one core, no blocking); the context is checked before every query row, so a
// cancelled call returns within one row's work with an error wrapping ctx.Err().
//
// Forward and Backward read their inputs in any dtype and any strides, never modify
// them, and return new contiguous host tensors only on success. L comes back in float64
// for every input dtype, so the reference's own backward is exact for every finite input it
// accepts, rows whose logits all carry a large constant (a −1e9 padding bias) included;
// given a float32 L from another executor, it uses that L as it is. Backward recomputes the
// probabilities from the saved logsumexp, P = exp(s − L), as FlashAttention does, so it
// also checks that an executor's saved L is usable.
//
// The package also holds a finite-difference gradient checker: NumericalGradient for any
// scalar function of a float64 slice (for the layer's tests, say), and
// CheckAttentionGradients, which holds Backward (or another implementation) against
// central differences of Forward.
//
// Not for: speed (use the CPU flash executor), device memory (the reference reads host
// visible storage only and declines the rest with spec.ErrUnsupported), or values outside
// the contract: inputs are expected to be finite, with logits that do not overflow.
package fallback
