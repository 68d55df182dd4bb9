// Package optim holds the optimizer that trains Orchard models: AdamW (Adam with
// decoupled weight decay, Loshchilov & Hutter), with bias correction, and ZeroGrad.
//
// A Param names one trainable tensor and its gradient buffer, both contiguous host tensors
// of one dtype (float32, or float64 for exact tests). Layers (package layer) and models
// hand their Params to Step; the optimizer keeps its moment estimates per Value tensor, so
// one AdamW can train a layer and a model's embeddings together.
//
// Gradient checks, as PyTorch users expect from its clipping utilities: GradNorm (computed
// without overflow for large finite gradients), ClipGradNorm (torch.nn.utils.clip_grad_norm_,
// which refuses non-finite norms as error_if_nonfinite=True does), CheckFinite, and
// AdamWParams.RefuseNonFinite, which makes Step refuse a step whose gradients hold NaN or
// ±Inf. Without that option a NaN gradient is applied as PyTorch applies it. State and
// SetState export and restore the moments for checkpoints (package checkpoint).
//
// Not here: learning-rate schedules, mixed precision. An AdamW is not safe for concurrent
// use.
package optim
