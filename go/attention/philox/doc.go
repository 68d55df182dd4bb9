// Package philox is the counter-based random stream behind attention dropout: the
// Philox4x32-10 block function (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
// easy as 1, 2, 3", SC 2011) and the rule that turns it into a keep/drop decision for one
// element of the attention matrix. Every executor — the reference, the CPU flash executor
// and the Metal kernels — implements exactly this rule, so all of them drop the same
// elements, forward and backward, and the reference can reproduce a kernel's dropout.
//
// The rule, for dropout probability p, seed s (uint64) and offset o (uint64), for the
// element of batch b, query head h, query row i and key column j of a problem with H query
// heads and N query rows (N the padded length, whatever the valid lengths):
//
//	key     = (uint32(s), uint32(s >> 32))
//	counter = (uint32(j >> 2), uint32((b*H + h)*N + i), uint32(o), uint32(o >> 32))
//	word    = Philox4x32_10(counter, key)[j & 3]
//	keep    = word >= T, where T = uint32(floor(p * 2^32))   (Threshold)
//	kept elements of P are multiplied by 1 / (1 - p)         (Scale)
//
// Dropout multiplies the softmax probabilities P (after masking) on their way into
// O = P·V; the saved logsumexp L is that of the undropped logits. (b*H + h)*N + i must fit
// in 32 bits and j >> 2 too (so M ≤ 2^34 keys), which spec.Validate checks when dropout is
// on: beyond that the counter would wrap and the masks repeat. Widening the counter instead
// would change every executor's masks and the committed oracle vectors, for sizes no
// attention call reaches.
package philox
