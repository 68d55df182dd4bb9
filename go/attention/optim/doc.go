// Package optim holds the optimizer that trains Orchard models: AdamW (Adam with
// decoupled weight decay, Loshchilov & Hutter), with bias correction, and ZeroGrad.
//
// A Param names one trainable tensor and its gradient buffer, both contiguous host tensors
// of one dtype (float32, or float64 for exact tests). Layers (package layer) and models
// hand their Params to Step; the optimizer keeps its moment estimates per Value tensor, so
// one AdamW can train a layer and a model's embeddings together.
//
// Not here: learning-rate schedules, gradient clipping, mixed precision. An AdamW is not
// safe for concurrent use.
package optim
