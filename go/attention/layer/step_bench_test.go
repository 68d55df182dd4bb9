package layer

import (
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// BenchmarkStep is one forward and backward of a GQA layer through the engine (cpuflash):
// B 4, T 128, C 256, H 8, Hkv 2. B/op shows what a step allocates.
func BenchmarkStep(b *testing.B) {
	e, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}, Strict: true})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	m, err := New(Params{Dim: 256, Heads: 8, KVHeads: 2, Causal: spec.CausalTopLeft, Bias: true}, e)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	x, _ := tensor.New(tensor.Float32, 4, 128, 256)
	xs, _ := x.Float32s()
	for i := range xs {
		xs[i] = float32(r.NormFloat64())
	}
	b.ReportAllocs()
	for b.Loop() {
		y, s, err := m.Forward(bg, x)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Backward(bg, s, y); err != nil {
			b.Fatal(err)
		}
	}
}
