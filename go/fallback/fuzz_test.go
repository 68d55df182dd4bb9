package fallback_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// FuzzArbitraryOptions feeds arbitrary sizes and option values — negative, huge, NaN,
// window bounds over all of int64, bias values over every float32 bit pattern —
// through validation and, when they pass it, through the reference. Nothing may panic; a
// rejected problem must get a typed *spec.ArgError; an accepted one must give finite
// outputs and gradients. `go test` runs the seed corpus; `go test -fuzz
// FuzzArbitraryOptions ./go/fallback` explores further.
func FuzzArbitraryOptions(f *testing.F) {
	f.Add(uint8(1), uint8(2), uint8(1), uint8(5), uint8(7), uint8(3), 0.0, 0.0, 0.0, int64(-1), int64(-1), uint8(0), uint8(0), uint64(1), uint32(0))
	f.Add(uint8(2), uint8(4), uint8(2), uint8(3), uint8(9), uint8(8), 0.5, 2.0, 0.3, int64(2), int64(math.MaxInt64), uint8(2), uint8(1), uint64(7), math.Float32bits(-math.MaxFloat32))
	f.Add(uint8(1), uint8(3), uint8(2), uint8(4), uint8(4), uint8(0), math.NaN(), -1.0, 1.0, int64(-5), int64(3), uint8(9), uint8(7), uint64(3), uint32(0x7fc00000))
	f.Add(uint8(2), uint8(1), uint8(1), uint8(6), uint8(2), uint8(5), 1e30, 1e-30, 0.999, int64(math.MaxInt64), int64(math.MaxInt64), uint8(1), uint8(2), uint64(11), math.Float32bits(3e38))
	f.Fuzz(func(t *testing.T, b, h, hkv, n, m, d uint8, scale, softcap, drop float64, left, right int64, causal, maskKind uint8, seed uint64, biasBits uint32) {
		// Small extents keep each run cheap; zero is allowed and must be rejected.
		B, H, Hkv, N, M, D := int(b%4), int(h%5), int(hkv%4), int(n%12), int(m%12), int(d%9)
		r := rand.New(rand.NewPCG(seed, 1))
		mk := func(shape ...int) *tensor.Tensor {
			x, err := tensor.New(tensor.Float64, shape...)
			require.NoError(t, err)
			vals, _ := x.Float64s()
			for i := range vals {
				vals[i] = r.NormFloat64()
			}
			return x
		}
		p := &spec.Problem{Q: mk(B, H, N, D), K: mk(B, Hkv, M, D), V: mk(B, Hkv, M, D)}
		p.Scale, p.Softcap, p.Dropout = scale, softcap, spec.Dropout{P: drop, Seed: seed, Offset: seed >> 7}
		p.Causal = spec.Causal(causal % 4)
		if left != 0 || right != 0 {
			p.Window = &spec.Window{Left: int(left), Right: int(right)}
		}
		huge := false // a bias beyond ±1e3 may push logits past what the checks below assume
		switch maskKind % 3 {
		case 1:
			mask := &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{1, max(H, 1), N, M}}
			mask.Keep = make([]bool, max(H, 1)*N*M)
			for i := range mask.Keep {
				mask.Keep[i] = r.IntN(3) > 0
			}
			p.Mask = mask
		case 2:
			mask := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{max(B, 1), 1, N, M}}
			mask.Bias = make([]float32, max(B, 1)*N*M)
			for i := range mask.Bias {
				switch r.IntN(4) {
				case 0:
					mask.Bias[i] = float32(math.Inf(-1))
				case 1:
					mask.Bias[i] = math.Float32frombits(biasBits) // any bit pattern; NaN and +Inf must be refused
				default:
					mask.Bias[i] = float32(r.NormFloat64())
				}
				if math.Abs(float64(mask.Bias[i])) > 1e3 && !math.IsInf(float64(mask.Bias[i]), -1) {
					huge = true
				}
			}
			p.Mask = mask
		}
		s, err := fallback.Forward(p)
		if err != nil {
			var ae *spec.ArgError
			require.ErrorAs(t, err, &ae, "a rejected problem gets a typed error")
			require.NotEmpty(t, ae.Arg)
			return
		}
		if scale > 1e3 || softcap > 1e3 || huge {
			return // logits may overflow; the contract does not promise finite results there
		}
		dO := mk(B, H, N, D)
		g, err := fallback.Backward(p, s, dO)
		require.NoError(t, err)
		for _, x := range []*tensor.Tensor{s.O, g.DQ, g.DK, g.DV} {
			vals, err := x.ToFloat64s()
			require.NoError(t, err)
			for _, v := range vals {
				require.False(t, math.IsNaN(v) || math.IsInf(v, 0), "outputs must be finite")
			}
		}
	})
}
