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
// Every Forward and Backward takes a context.Context: cancelling it stops the call between
// its steps and inside the attention call, with an error wrapping ctx.Err().
//
// A training step allocates no attention tensors after the first: the layer keeps one set
// of working buffers per shape in flight (projections, Q, K, V, O, L, dO, dQ, dK, dV),
// passes them to the attention as destinations (the Engine's into arguments), and Backward
// hands the set back for the next Forward. So Backward consumes its Saved; a second
// Backward with it is an error, as in PyTorch without retain_graph. Only y and dx, which
// the caller keeps, are new tensors. A forward whose gradients are not wanted (evaluation)
// gives its buffers back with Release; without it, its buffers are left to the garbage
// collector and the next Forward allocates.
//
// Key padding (nn.MultiheadAttention's key_padding_mask) is a Mask passed to
// ForwardMasked. A query whose keys are all hidden gets zero output, where PyTorch gives NaN.
//
// Weights load from and save to safetensors files (package safetensors) in PyTorch's two
// naming schemes, nn.MultiheadAttention's in_proj_weight/out_proj and the separate
// q_proj/k_proj/v_proj/o_proj of Hugging Face models (with GQA): Load, LoadFile, Tensors,
// SaveFile, GradTensors, DetectNaming. File dtypes float32, float16, bfloat16 and float64
// are converted to the layer's on load; the stored dtype is named on save. The tests hold
// the layer against PyTorch's autograd on references written by
// tools/interop/torch_mha_reference.py; docs/PYTORCH.md maps PyTorch's arguments.

// Dropout on the attention probabilities is drawn from the Philox stream of package
// philox, keyed by a seed fixed at construction and an offset the layer advances on every
// training forward. The offset used is kept in Saved, so backward regenerates exactly the
// mask forward applied; Train(false) turns dropout off.
//
// Parameters are float32 by default. A float64 layer (Params.DType) runs the same code in
// float64 against the reference executor, which is how its gradients are checked against
// finite differences.
//
// Not here: layer norm, MLPs, KV caches, masks other than causal and key padding. A MultiHeadAttention is
// not safe for concurrent use; Forward advances the dropout offset and Backward writes
// gradients.
package layer
