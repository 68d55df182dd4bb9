package msltest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/fallback/oracletest"
	"github.com/orchard-ml/orchard/go/tensor"
)

// TestOracleVectors runs the PyTorch float64 autograd vectors (go/fallback/testdata)
// through the kernels in float32 — with the test tiles, and with the production tiles
// where the emulator has them — and holds O, L, dQ, dK, dV against PyTorch's values at
// the float32 tolerances.
func TestOracleVectors(t *testing.T) {
	requireEmulator(t)
	cases, err := oracletest.Load(oracletest.DataDir())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), oracletest.MinCases)
	tol := toleranceFor(tensor.Float32)
	for _, oc := range cases {
		d, ok := mslplan.PaddedHeadDim(oc.Dims.D)
		require.True(t, ok, oc.Name)
		configs := []emuConfig{{tensor.Float32, 0, d}}
		for _, e := range emulated {
			if e.dt == tensor.Float32 && e.family != 0 && e.d == d {
				configs = append(configs, e)
			}
		}
		for _, cfg := range configs {
			t.Run(oc.Name+" "+cfg.String(), func(t *testing.T) {
				p, dO, err := oc.ProblemAs(tensor.Float32)
				require.NoError(t, err)
				c := &testCase{name: oc.Name + " " + cfg.String(), cfg: cfg, p: p, dO: dO, tiles: cfg.tiles()}
				pl := planFor(t, c)
				run := runner{}
				saved, err := run.forward(pl, p)
				require.NoError(t, err)
				assertClose(t, c.name, "O", float64s(t, saved.O), oc.O, tol.Fwd)
				assertLogsumexp(t, c.name, float64s(t, saved.L), oc.L, tol.Fwd)

				g, _, err := run.backward(pl, p, saved, dO)
				require.NoError(t, err)
				ref, err := fallback.Forward(oc.Problem) // for the cancellation magnitudes
				require.NoError(t, err)
				mq, mk := gradMagnitudes(t, oc.Problem, ref, oc.DO)
				u := roundingAllowance(tensor.Float32, oc.Dims.D)
				assertCloseSlack(t, c.name, "dQ", float64s(t, g.DQ), oc.DQ, tol.Grad, u*mq)
				assertCloseSlack(t, c.name, "dK", float64s(t, g.DK), oc.DK, tol.Grad, u*mk)
				assertClose(t, c.name, "dV", float64s(t, g.DV), oc.DV, tol.Grad)
			})
		}
	}
}
