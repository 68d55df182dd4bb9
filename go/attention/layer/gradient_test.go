package layer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// The whole layer, in float64 over the reference executor, against central differences
// of the scalar loss Σ y∘G (so dy = G): dx (or dxq and dxkv) and every parameter gradient.
//
// Tolerance: in float64 a central difference with step 1e-5 has truncation error
// ~1e-10·|f”'| and rounding error ~1e-16·|loss|/1e-5 ≈ 1e-10 here (|loss| ≈ 10), so
// analytic and numeric gradients agree to ~1e-9 absolute; measured relative to
// max(|a|, |n|, 1e-2) that is ≤ 1e-7, and we allow 1e-6. A wrong index, transpose or
// missing term gives errors of order 1 (dropping dv·Wvᵀ from dx fails every case).
//
// dbk is zero in exact arithmetic — adding the same vector to every key shifts a row's
// logits by a constant, which softmax ignores — so its finite-difference check is weak;
// the test asserts the identity directly instead.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	const tol, eps, floor = 1e-6, 1e-5, 1e-2
	tests := []struct {
		cross         bool
		B, N, M       int
		C, H, Hkv     int
		causal        spec.Causal
		bias          bool
		dropout       float64
		dropoutOffset uint64
	}{
		{cross: false, B: 2, N: 5, C: 8, H: 4, Hkv: 2, causal: spec.CausalNone, bias: true},
		{cross: false, B: 2, N: 5, C: 8, H: 4, Hkv: 1, causal: spec.CausalTopLeft, bias: false, dropout: 0.3, dropoutOffset: 11},
		{cross: false, B: 1, N: 6, C: 6, H: 2, Hkv: 2, causal: spec.CausalBottomRight, bias: true, dropout: 0.2, dropoutOffset: 3},
		{cross: true, B: 2, N: 4, M: 6, C: 8, H: 4, Hkv: 2, causal: spec.CausalBottomRight, bias: true, dropout: 0.25, dropoutOffset: 5},
		{cross: true, B: 2, N: 5, M: 3, C: 8, H: 4, Hkv: 2, causal: spec.CausalBottomRight, bias: false},
		{cross: true, B: 2, N: 6, M: 4, C: 8, H: 2, Hkv: 1, causal: spec.CausalTopLeft, bias: true, dropout: 0.4, dropoutOffset: 1 << 40},
		{cross: true, B: 1, N: 3, M: 5, C: 6, H: 3, Hkv: 3, causal: spec.CausalNone, bias: true},
	}
	for i, tc := range tests {
		name := fmt.Sprintf("%d/cross=%v/N%dM%d/H%dHkv%d/%v/bias=%v/dropout=%v", i, tc.cross, tc.N, tc.M, tc.H, tc.Hkv, tc.causal, tc.bias, tc.dropout)
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			m, err := New(Params{Dim: tc.C, Heads: tc.H, KVHeads: tc.Hkv, Causal: tc.causal, Dropout: tc.dropout,
				Bias: tc.bias, Seed: int64(i), DType: tensor.Float64}, fallback.NewExecutor())
			require.NoError(t, err)
			// Random biases, so their paths carry signal.
			for _, p := range m.Parameters() {
				if p.NoDecay {
					b, err := p.Value.Float64s()
					require.NoError(t, err)
					for j := range b {
						b[j] = 0.5 * rng.NormFloat64()
					}
				}
			}
			xq := attntest.Tensor(t, rng, tensor.Float64, tc.B, tc.N, tc.C)
			var xkv *tensor.Tensor
			if tc.cross {
				xkv = attntest.Tensor(t, rng, tensor.Float64, tc.B, tc.M, tc.C)
			}
			g := attntest.Tensor(t, rng, tensor.Float64, tc.B, tc.N, tc.C)
			gv := attntest.Values(t, g)

			forward := func() (*tensor.Tensor, *Saved) {
				m.SetDropoutOffset(tc.dropoutOffset)
				var y *tensor.Tensor
				var s *Saved
				var err error
				if tc.cross {
					y, s, err = m.ForwardCross(bg, xq, xkv)
				} else {
					y, s, err = m.Forward(bg, xq)
				}
				require.NoError(t, err)
				return y, s
			}
			loss := func() float64 {
				y, _ := forward()
				return dot(attntest.Values(t, y), gv)
			}

			// Analytic.
			m.ZeroGrad()
			_, s := forward()
			if tc.dropout > 0 {
				require.Equal(t, tc.dropoutOffset, s.Problem.Dropout.Offset)
				require.Equal(t, tc.dropout, s.Problem.Dropout.P)
			}
			var dxq, dxkv *tensor.Tensor
			if tc.cross {
				dxq, dxkv, err = m.BackwardCross(bg, s, g)
			} else {
				dxq, err = m.Backward(bg, s, g)
			}
			require.NoError(t, err)

			check := func(name string, analytic *tensor.Tensor, x *tensor.Tensor) {
				xs, err := x.Float64s()
				require.NoError(t, err)
				numeric := fallback.NumericalGradient(loss, xs, eps)
				e := fallback.CompareGradients(name, attntest.Values(t, analytic), numeric, floor)
				assert.Less(t, e.MaxRel, tol, e.String())
			}
			if tc.cross {
				check("dxq", dxq, xq)
				check("dxkv", dxkv, xkv)
			} else {
				check("dx", dxq, xq)
			}
			for _, p := range m.Parameters() {
				check("d"+p.Name, p.Grad, p.Value)
				if p.Name == "bk" {
					for _, g := range attntest.Values(t, p.Grad) {
						assert.InDelta(t, 0, g, 1e-12, "dbk must vanish: softmax is shift invariant")
					}
				}
			}
		})
	}
}

// The float32 layer over the engine-independent reference agrees with the float64 layer
// built from the same seed: both draw the same weights (float32 rounds them), so the
// outputs and gradients differ by float32 rounding only — relative ~1e-6 on values of
// order 1; we allow 1e-4 absolute on unit-scale values.
func TestFloat32MatchesFloat64(t *testing.T) {
	for _, cross := range []bool{false, true} {
		t.Run(fmt.Sprintf("cross=%v", cross), func(t *testing.T) {
			p := Params{Dim: 16, Heads: 4, KVHeads: 2, Causal: spec.CausalBottomRight, Bias: true, Seed: 7, Dropout: 0.1}
			p64 := p
			p64.DType = tensor.Float64
			m32, err := New(p, fallback.NewExecutor())
			require.NoError(t, err)
			m64, err := New(p64, fallback.NewExecutor())
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(1, 2))
			x32 := attntest.Tensor(t, rng, tensor.Float32, 2, 7, 16)
			kv32 := attntest.Tensor(t, rng, tensor.Float32, 2, 9, 16)
			g32 := attntest.Tensor(t, rng, tensor.Float32, 2, 7, 16)
			conv := func(x *tensor.Tensor) *tensor.Tensor {
				c, err := x.Convert(tensor.Float64)
				require.NoError(t, err)
				return c
			}
			x64, kv64, g64 := conv(x32), conv(kv32), conv(g32)
			var y32, y64, dx32, dx64 *tensor.Tensor
			if cross {
				var s32, s64 *Saved
				y32, s32, err = m32.ForwardCross(bg, x32, kv32)
				require.NoError(t, err)
				y64, s64, err = m64.ForwardCross(bg, x64, kv64)
				require.NoError(t, err)
				var dkv32, dkv64 *tensor.Tensor
				dx32, dkv32, err = m32.BackwardCross(bg, s32, g32)
				require.NoError(t, err)
				dx64, dkv64, err = m64.BackwardCross(bg, s64, g64)
				require.NoError(t, err)
				assert.InDeltaSlice(t, attntest.Values(t, dkv64), attntest.Values(t, dkv32), 1e-4)
			} else {
				var s32, s64 *Saved
				y32, s32, err = m32.Forward(bg, x32)
				require.NoError(t, err)
				y64, s64, err = m64.Forward(bg, x64)
				require.NoError(t, err)
				dx32, err = m32.Backward(bg, s32, g32)
				require.NoError(t, err)
				dx64, err = m64.Backward(bg, s64, g64)
				require.NoError(t, err)
			}
			assert.InDeltaSlice(t, attntest.Values(t, y64), attntest.Values(t, y32), 1e-4)
			assert.InDeltaSlice(t, attntest.Values(t, dx64), attntest.Values(t, dx32), 1e-4)
			p32s, p64s := m32.Parameters(), m64.Parameters()
			for i := range p32s {
				assert.InDeltaSlice(t, attntest.Values(t, p64s[i].Grad), attntest.Values(t, p32s[i].Grad), 1e-4, p32s[i].Name)
			}
		})
	}
}
