// Package layer holds Orchard's trainable attention module, MultiHeadAttention: input
// projections to query, key and value heads (grouped-query attention when there are fewer
// key/value heads), attention through an Engine (or any Attention), and an output
// projection, each with optional biases.
//
// It is written the way karpathy/llm.c writes a layer: Forward and Backward are mirrored
// pairs, every buffer carries its shape in a comment, and every backward step names the
// forward step it inverts. What backward needs is kept in an explicit Saved value that
// Forward returns — there is no hidden tape — so a caller may run several forwards before
// their backwards, in any order. Backward accumulates into the parameters' gradient
// buffers; call ZeroGrad (or optim.ZeroGrad) between steps.
//
// Dropout on the attention probabilities is drawn from the Philox stream of package
// philox, keyed by a seed fixed at construction and an offset the layer advances on every
// training forward. The offset used is kept in Saved, so backward regenerates exactly the
// mask forward applied; Train(false) turns dropout off.
//
// Parameters are float32 by default. A float64 layer (Params.DType) runs the same code in
// float64 against the reference executor, which is how its gradients are checked against
// finite differences.
//
// Not here: layer norm, MLPs, KV caches, masks other than causal. A MultiHeadAttention is
// not safe for concurrent use; Forward advances the dropout offset and Backward writes
// gradients.
package layer
