package fallback_test

import (
	"fmt"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Nominal work: the forward pass does two N×M×D products (QKᵀ, PV), the backward five
// (QKᵀ again, dP' = dO·Vᵀ, dV, dQ, dK). GFLOP/s below counts 2 flops per multiply-add of
// those products only.
var benchSizes = []sizes{
	{B: 1, H: 8, Hkv: 8, N: 128, M: 128, D: 64},
	{B: 1, H: 4, Hkv: 2, N: 256, M: 256, D: 64},
}

func benchProblem(b *testing.B, sz sizes, causal spec.Causal) (*spec.Problem, *tensor.Tensor) {
	opts := fixedOpts(spec.Options{Causal: causal})
	return buildProblem(b, problemCase{Name: "bench", Sizes: sz, Opts: opts}, tensor.Float32, 1)
}

func BenchmarkForward(b *testing.B) {
	for _, sz := range benchSizes {
		for _, c := range []spec.Causal{spec.CausalNone, spec.CausalTopLeft} {
			b.Run(fmt.Sprintf("B%d_H%d_Hkv%d_N%d_M%d_D%d_%v", sz.B, sz.H, sz.Hkv, sz.N, sz.M, sz.D, c), func(b *testing.B) {
				p, _ := benchProblem(b, sz, c)
				for b.Loop() {
					if _, err := fallback.Forward(p); err != nil {
						b.Fatal(err)
					}
				}
				flops := 4 * float64(sz.B*sz.H*sz.N*sz.M*sz.D)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkBackward(b *testing.B) {
	for _, sz := range benchSizes {
		for _, c := range []spec.Causal{spec.CausalNone, spec.CausalTopLeft} {
			b.Run(fmt.Sprintf("B%d_H%d_Hkv%d_N%d_M%d_D%d_%v", sz.B, sz.H, sz.Hkv, sz.N, sz.M, sz.D, c), func(b *testing.B) {
				p, dO := benchProblem(b, sz, c)
				s, err := fallback.Forward(p)
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := fallback.Backward(p, s, dO); err != nil {
						b.Fatal(err)
					}
				}
				flops := 10 * float64(sz.B*sz.H*sz.N*sz.M*sz.D)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
