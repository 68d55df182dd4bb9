package cpuflash

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

type benchShape struct {
	B, H, N, D int
	causal     bool
}

func (s benchShape) String() string {
	c := ""
	if s.causal {
		c = "_causal"
	}
	return fmt.Sprintf("B%d_H%d_N%d_D%d%s", s.B, s.H, s.N, s.D, c)
}

var benchShapes = []benchShape{
	{1, 8, 512, 64, false}, {1, 8, 1024, 64, false}, {1, 8, 2048, 64, false}, {1, 8, 4096, 64, false},
	{1, 8, 2048, 128, false}, {1, 8, 2048, 64, true},
}

func benchProblem(b *testing.B, s benchShape) (*spec.Problem, *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := &spec.Problem{
		Q: randTensor(b, rng, tensor.Float32, 1, s.B, s.H, s.N, s.D),
		K: randTensor(b, rng, tensor.Float32, 1, s.B, s.H, s.N, s.D),
		V: randTensor(b, rng, tensor.Float32, 1, s.B, s.H, s.N, s.D),
	}
	if s.causal {
		p.Causal = spec.CausalTopLeft
	}
	return p, randTensor(b, rng, tensor.Float32, 1, s.B, s.H, s.N, s.D)
}

func BenchmarkForward(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) {
			p, _ := benchProblem(b, s)
			e := New(Params{})
			d := p.Dims()
			b.ResetTimer()
			for b.Loop() {
				_, err := e.Forward(p)
				require.NoError(b, err)
			}
			b.ReportMetric(FLOPs(d, s.causal, PassForward)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkForwardBackward(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) {
			p, dO := benchProblem(b, s)
			e := New(Params{})
			d := p.Dims()
			b.ResetTimer()
			for b.Loop() {
				sv, err := e.Forward(p)
				require.NoError(b, err)
				_, err = e.Backward(p, sv, dO)
				require.NoError(b, err)
			}
			b.ReportMetric(FLOPs(d, s.causal, PassForwardBackward)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
