package msltest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

// headSplitShapes are GQA and MQA (B, H, Hkv) shapes whose dK/dV grid is small enough
// for the head split at the sizes below.
var headSplitShapes = [][3]int{{1, 4, 1}, {2, 4, 2}, {1, 6, 2}, {1, 8, 1}, {2, 3, 1}}

// TestDKDVHeadSplit: GQA and MQA backward through the head split (dK/dV per query head
// into float32 partials, then the reduction kernel) and through the serial walk over the
// group's heads, on the same random problems in all three dtypes (every emulated config:
// test and production tiles, head dims up to 256, so the output split combines with it),
// each against go/fallback with the dtype's tolerance (refcheck.ToleranceFor: relative L2
// 1e-4 float32, 3e-3 float16, 2e-2 bfloat16 for gradients, dQ and dK with the rounding
// allowance of checkCase). Options are drawn at random (masks, causal, window, softcap,
// dropout, lengths, scale, GradDType), so each combines with the split somewhere. Also
// the two paths agree with each other: dQ exactly (the split does not touch it), dK and
// dV within the same tolerance.
func TestDKDVHeadSplit(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(*seed, 77))
	worst := map[tensor.DType][3]float64{}
	n := 0
	for _, cfg := range emulated {
		for k := 0; k < 2; k++ {
			sh := headSplitShapes[rng.IntN(len(headSplitShapes))]
			c, err := headSplitCase(rng, n, cfg, sh)
			require.NoError(t, err)
			n++
			t.Run(c.name, func(t *testing.T) {
				split := planFor(t, c)
				require.True(t, split.DKDVHeads, "%s: the head split must run", c.name)
				c.serial = true
				serial := planFor(t, c)
				require.False(t, serial.DKDVHeads)

				tol := toleranceFor(cfg.dt)
				run := runner{}
				saved, err := run.forward(split, c.p)
				require.NoError(t, err)
				ref, err := fallback.Forward(c.p64)
				require.NoError(t, err)
				refG, err := fallback.Backward(c.p64, ref, c.dO64)
				require.NoError(t, err)
				mq, mk := gradMagnitudes(t, c.p64, ref, c.dO64)
				u := roundingAllowance(cfg.dt, c.p.Dims().D)

				gs, _, err := run.backward(split, c.p, saved, c.dO)
				require.NoError(t, err)
				gr, _, err := run.backward(serial, c.p, saved, c.dO)
				require.NoError(t, err)
				for _, g := range []*spec.Grads{gs, gr} {
					assertCloseSlack(t, c.name, "dQ", float64s(t, g.DQ), float64s(t, refG.DQ), tol.Grad, u*mq)
					assertCloseSlack(t, c.name, "dK", float64s(t, g.DK), float64s(t, refG.DK), tol.Grad, u*mk)
					assertClose(t, c.name, "dV", float64s(t, g.DV), float64s(t, refG.DV), tol.Grad)
				}
				assert.Equal(t, float64s(t, gr.DQ), float64s(t, gs.DQ), "dQ does not depend on the dK/dV split")
				assertCloseSlack(t, c.name, "dK split vs serial", float64s(t, gs.DK), float64s(t, gr.DK), tol.Grad, u*mk)
				assertClose(t, c.name, "dV split vs serial", float64s(t, gs.DV), float64s(t, gr.DV), tol.Grad)
				w := worst[cfg.dt]
				for i, x := range [][2]*tensor.Tensor{{gs.DQ, refG.DQ}, {gs.DK, refG.DK}, {gs.DV, refG.DV}} {
					w[i] = max(w[i], refcheck.RelL2(float64s(t, x[0]), float64s(t, x[1])))
				}
				worst[cfg.dt] = w
			})
		}
	}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		w := worst[dt]
		t.Logf("head split, %v: max relative L2 against the reference dQ %.3g, dK %.3g, dV %.3g", dt, w[0], w[1], w[2])
	}
}

// headSplitCase draws a GQA/MQA problem of shape sh with cfg's tiles: up to 40 query
// and key rows (a few key blocks, so the head split runs), random options.
func headSplitCase(rng *rand.Rand, i int, cfg emuConfig, sh [3]int) (*testCase, error) {
	d := spec.Dims{B: sh[0], H: sh[1], Hkv: sh[2], N: 1 + rng.IntN(40), M: 1 + rng.IntN(40), D: randHeadDim(rng, cfg.d)}
	desc := []string{fmt.Sprintf("#%d split %v B=%d H=%d Hkv=%d N=%d M=%d D=%d", i, cfg, d.B, d.H, d.Hkv, d.N, d.M, d.D)}
	strided := rng.IntN(4) == 0
	if strided {
		desc = append(desc, "strided")
	}
	c, err := randInputs(rng, cfg, d, strided, &desc)
	if err != nil {
		return nil, err
	}
	c.name = strings.Join(desc, " ")
	return c, nil
}
