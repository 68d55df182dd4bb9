package layer_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

func randn(r *rand.Rand, shape ...int) *tensor.Tensor {
	t, _ := tensor.New(tensor.Float32, shape...)
	v, _ := t.Float32s()
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return t
}

// One training step of a grouped-query attention layer: forward, backward from the
// upstream gradient, gradient clipping and an AdamW update.
func Example() {
	ctx := context.Background()
	engine, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}})
	if err != nil {
		panic(err)
	}
	defer engine.Close()
	mha, err := layer.New(layer.Params{Dim: 64, Heads: 8, KVHeads: 2, Causal: spec.CausalTopLeft, Bias: true, Seed: 1}, engine)
	if err != nil {
		panic(err)
	}
	opt, err := optim.New(optim.DefaultAdamW(1e-3))
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	x := randn(r, 4, 32, 64)  // (B, T, C)
	dy := randn(r, 4, 32, 64) // ∂loss/∂y, from the layers above

	mha.ZeroGrad()
	y, saved, err := mha.Forward(ctx, x)
	if err != nil {
		panic(err)
	}
	dx, err := mha.Backward(ctx, saved, dy) // adds into every parameter's Grad
	if err != nil {
		panic(err)
	}
	if _, err := optim.ClipGradNorm(mha.Parameters(), 1.0); err != nil {
		panic(err) // a NaN or Inf gradient: skip the step
	}
	if err := opt.Step(mha.Parameters()); err != nil {
		panic(err)
	}
	fmt.Println(y.Shape(), dx.Shape(), engine.Stats().Calls)
	// Output: [4 32 64] [4 32 64] map[cpuflash:2]
}

// Loading nn.MultiheadAttention weights that PyTorch saved as safetensors (this file was
// written by tools/interop/torch_mha_reference.py), and saving them back in bfloat16
// under Hugging Face's separate-projection names.
func ExampleMultiHeadAttention_LoadFile() {
	mha, err := layer.New(layer.Params{Dim: 16, Heads: 4, Bias: true}, fallback.NewExecutor())
	if err != nil {
		panic(err)
	}
	if err := mha.LoadFile("testdata/torch/plain.safetensors", layer.NamingTorchMHA, ""); err != nil {
		panic(err)
	}
	ts, err := mha.Tensors(layer.NamingSeparate, "self_attn.", tensor.BFloat16)
	if err != nil {
		panic(err)
	}
	for _, t := range ts {
		fmt.Println(t.Name, t.Tensor.Shape(), t.Tensor.DType())
	}
	// Output:
	// self_attn.q_proj.weight [16 16] bfloat16
	// self_attn.k_proj.weight [16 16] bfloat16
	// self_attn.v_proj.weight [16 16] bfloat16
	// self_attn.o_proj.weight [16 16] bfloat16
	// self_attn.q_proj.bias [16] bfloat16
	// self_attn.k_proj.bias [16] bfloat16
	// self_attn.v_proj.bias [16] bfloat16
	// self_attn.o_proj.bias [16] bfloat16
}
