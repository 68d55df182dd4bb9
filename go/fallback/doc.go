// Package fallback is Orchard's exact attention reference: forward and backward with every
// option of the contract in package spec, computed by direct loops that accumulate in
// float64. It is the oracle every other executor is tested against, and the executor of
// last resort in the engine, so it favours being obviously correct over being fast: it
// materialises the N×M logits of one (batch, head) at a time and runs on one goroutine.
//
// Forward and Backward read their inputs in any dtype and any strides, never modify
// them, and return new contiguous host tensors only on success. Backward recomputes the
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
