package msltest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// TestHugeFiniteBiases (W1): a finite additive bias of −math.MaxFloat32
// (torch.finfo(float32).min, the usual padding value) on every key of a row leaves the
// row's visible keys visible, so it gets uniform attention over them, as the reference
// computes, not O = 0 and L = −Inf; +3e38 on one visible key of another row puts all of
// that row's attention on it. The kernels clamp the biased logit to ±mslplan.LogitLimit,
// so those two rows' L is ∓LogitLimit rather than the reference's (checked on its own),
// and dO is zero on them (the padding case), so every gradient must match the reference.
func TestHugeFiniteBiases(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(31, 7))
	const b, h, n, m = 1, 2, 9, 13
	const low, high, hot = 3, 5, 2 // the row with −MaxFloat32 everywhere; the row with +3e38 on key hot
	for _, cfg := range []emuConfig{
		{tensor.Float32, 0, 32}, {tensor.Float16, 0, 32}, {tensor.BFloat16, 0, 32},
		{tensor.Float32, mslplan.Apple9, 64}, {tensor.Float16, mslplan.Apple7, 64},
	} {
		t.Run(cfg.String(), func(t *testing.T) {
			d := randHeadDim(rng, cfg.d)
			q, q64, err := randTensor(rng, cfg.dt, [4]int{b, h, n, d}, false)
			require.NoError(t, err)
			k, k64, err := randTensor(rng, cfg.dt, [4]int{b, 1, m, d}, false)
			require.NoError(t, err)
			v, v64, err := randTensor(rng, cfg.dt, [4]int{b, 1, m, d}, false)
			require.NoError(t, err)
			g := normals(rng, b*h*n*d)
			for hh := 0; hh < h; hh++ {
				for _, row := range []int{low, high} {
					for e := 0; e < d; e++ {
						g[((hh*n)+row)*d+e] = 0
					}
				}
			}
			dO, err := tensor.FromFloat64s(cfg.dt, g, b, h, n, d)
			require.NoError(t, err)
			dO64, err := dO.Convert(tensor.Float64)
			require.NoError(t, err)
			bias := make([]float32, n*m)
			for i := range bias {
				bias[i] = float32(rng.NormFloat64())
			}
			for j := 0; j < m; j++ {
				bias[low*m+j] = -math.MaxFloat32
			}
			bias[high*m+hot] = 3e38
			o := spec.Options{
				Causal: spec.CausalTopLeft, // row i sees keys 0..i: the low row sees 4 keys, all carrying the bias
				Mask:   &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, n, m}, Bias: bias},
			}
			c := &testCase{name: "huge biases " + cfg.String(), cfg: cfg, tiles: cfg.tiles(),
				p:   &spec.Problem{Q: q, K: k, V: v, Options: o},
				p64: &spec.Problem{Q: q64, K: k64, V: v64, Options: o}, dO: dO, dO64: dO64}
			pl := planFor(t, c)
			tol := toleranceFor(cfg.dt)
			saved, err := runner{}.forward(pl, c.p)
			require.NoError(t, err)
			ref, err := fallback.Forward(c.p64)
			require.NoError(t, err)
			ov, rv := float64s(t, saved.O), float64s(t, ref.O)
			assertClose(t, c.name, "O", ov, rv, tol.Fwd)

			vv := float64s(t, v)
			lv, rl := float64s(t, saved.L), float64s(t, ref.L)
			var gotL, wantL []float64
			for hh := 0; hh < h; hh++ {
				for i := 0; i < n; i++ {
					r := hh*n + i
					switch i {
					case low:
						assert.InEpsilon(t, -mslplan.LogitLimit, lv[r], 1e-6, "L of the row with −MaxFloat32 biases")
						for e := 0; e < d; e++ { // uniform over keys 0..low
							var mean float64
							for j := 0; j <= low; j++ {
								mean += vv[j*d+e] / (low + 1)
							}
							assert.InDelta(t, mean, ov[r*d+e], 4*tol.Fwd*(1+math.Abs(mean)), "O[%d][%d]: uniform attention", r, e)
						}
					case high:
						assert.InEpsilon(t, mslplan.LogitLimit, lv[r], 1e-6, "L of the row with a +3e38 bias")
						for e := 0; e < d; e++ { // all attention on key hot
							assert.InDelta(t, vv[hot*d+e], ov[r*d+e], 4*tol.Fwd*(1+math.Abs(vv[hot*d+e])), "O[%d][%d]: one-hot attention", r, e)
						}
					default:
						gotL, wantL = append(gotL, lv[r]), append(wantL, rl[r])
					}
				}
			}
			assertLogsumexp(t, c.name, gotL, wantL, tol.Fwd)

			grads, _, err := runner{}.backward(pl, c.p, saved, c.dO)
			require.NoError(t, err)
			refG, err := fallback.Backward(c.p64, ref, c.dO64)
			require.NoError(t, err)
			mq, mk := gradMagnitudes(t, c.p64, ref, c.dO64)
			u := roundingAllowance(cfg.dt, d)
			assertCloseSlack(t, c.name, "dQ", float64s(t, grads.DQ), float64s(t, refG.DQ), tol.Grad, u*mq)
			assertCloseSlack(t, c.name, "dK", float64s(t, grads.DK), float64s(t, refG.DK), tol.Grad, u*mk)
			assertClose(t, c.name, "dV", float64s(t, grads.DV), float64s(t, refG.DV), tol.Grad)
		})
	}
}

// TestFloat32Gradients (W2): with Options.GradDType = float32, float16 and bfloat16
// kernels write dQ, dK and dV as float32, within the input dtype's tolerance of the
// reference on random problems; and where float16 gradients overflow (many rows with a
// large dO on few keys: |dV| ≫ 65504), the float32 ones are finite and match.
func TestFloat32Gradients(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(32, 9))
	for i, cfg := range []emuConfig{
		{tensor.Float16, 0, 32}, {tensor.BFloat16, 0, 96}, {tensor.Float16, mslplan.Apple9, 128}, {tensor.BFloat16, mslplan.Apple7, 64},
	} {
		for j := 0; j < 3; j++ {
			c, err := randCase(rng, 10*i+j, cfg)
			require.NoError(t, err)
			c.p.GradDType = tensor.Float32
			c.name += " grad=f32"
			t.Run(c.name, func(t *testing.T) {
				pl := planFor(t, c)
				require.Equal(t, tensor.Float32, pl.GradDType)
				checkCase(t, c)
			})
		}
	}

	t.Run("f16 overflow", func(t *testing.T) {
		const b, h, n, m, d = 1, 1, 64, 4, 32
		cfg := emuConfig{tensor.Float16, 0, 32}
		q, q64, err := randTensor(rng, cfg.dt, [4]int{b, h, n, d}, false)
		require.NoError(t, err)
		k, k64, err := randTensor(rng, cfg.dt, [4]int{b, h, m, d}, false)
		require.NoError(t, err)
		v, v64, err := randTensor(rng, cfg.dt, [4]int{b, h, m, d}, false)
		require.NoError(t, err)
		g := make([]float64, b*h*n*d)
		for x := range g {
			g[x] = 30000 + 1000*rng.NormFloat64()
		}
		dO, err := tensor.FromFloat64s(cfg.dt, g, b, h, n, d)
		require.NoError(t, err)
		dO64, err := dO.Convert(tensor.Float64)
		require.NoError(t, err)
		c := &testCase{name: "f16 overflow", cfg: cfg, tiles: cfg.tiles(),
			p: &spec.Problem{Q: q, K: k, V: v}, p64: &spec.Problem{Q: q64, K: k64, V: v64}, dO: dO, dO64: dO64}

		pl := planFor(t, c)
		saved, err := runner{}.forward(pl, c.p)
		require.NoError(t, err)
		g16, _, err := runner{}.backward(pl, c.p, saved, dO)
		require.NoError(t, err)
		inf := 0
		for _, x := range float64s(t, g16.DV) {
			if math.IsInf(x, 0) {
				inf++
			}
		}
		require.Positive(t, inf, "the case must overflow float16 gradients to mean anything")

		c.p.GradDType = tensor.Float32
		checkCase(t, c)
	})
}
