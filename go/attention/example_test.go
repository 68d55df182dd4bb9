package attention_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
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

// One training step's attention: forward, then backward from dO, on the CPU flash
// executor with the reference behind it.
func Example() {
	r := rand.New(rand.NewPCG(1, 2))
	engine, err := attention.NewEngine(attention.Params{
		Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}, // the reference is appended last
	})
	if err != nil {
		panic(err)
	}
	defer engine.Close()

	p := &spec.Problem{
		Q:       randn(r, 2, 8, 128, 64), // [B, H, N, D]
		K:       randn(r, 2, 2, 128, 64), // [B, Hkv, M, D]: GQA, 4 query heads per KV head
		V:       randn(r, 2, 2, 128, 64),
		Options: spec.Options{Causal: spec.CausalBottomRight, Dropout: spec.Dropout{P: 0.1, Seed: 42}},
	}
	saved, err := engine.Forward(context.Background(), p, nil) // saved.O [B, H, N, D], saved.L [B, H, N]
	if err != nil {
		panic(err)
	}
	grads, err := engine.Backward(context.Background(), p, saved, randn(r, 2, 8, 128, 64), nil) // dQ, dK, dV
	if err != nil {
		panic(err)
	}
	fmt.Println(grads.DK.Shape(), engine.Stats().Calls)
	// Output: [2 2 128 64] map[cpuflash:2]
}
