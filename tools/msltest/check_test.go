package msltest

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

func float64s(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// assertClose holds a kernel output against the reference (refcheck.Close): never NaN or
// ±Inf, and within tol in relative L2.
func assertClose(t *testing.T, name, what string, got, want []float64, tol float64) bool {
	t.Helper()
	return assertCloseSlack(t, name, what, got, want, tol, 0)
}

// assertCloseSlack is assertClose with an absolute allowance: ‖got − want‖ ≤
// tol·‖want‖ + slack (see refcheck.RoundingAllowance).
func assertCloseSlack(t *testing.T, name, what string, got, want []float64, tol, slack float64) bool {
	t.Helper()
	r := refcheck.Close(what, got, want, tol, slack)
	return assert.True(t, r.OK, "%s: %s", name, r)
}

// assertLogsumexp compares L (refcheck.Logsumexp): −Inf exactly where the reference has
// it, the finite values within tol; never NaN.
func assertLogsumexp(t *testing.T, name string, got, want []float64, tol float64) bool {
	t.Helper()
	r := refcheck.Logsumexp(got, want, tol)
	return assert.True(t, r.OK, "%s: %s", name, r)
}

// planFor plans c on the emulator: the production table for production configs (so the
// table lookup itself is exercised), the test tiles otherwise.
func planFor(t *testing.T, c *testCase) *mslplan.Plan {
	t.Helper()
	r := mslplan.Request{Problem: c.p, Family: c.cfg.family, SerialDKDV: c.serial}
	if c.cfg.family == 0 {
		r.Family, r.Tiles = mslplan.Apple7, &c.tiles
	}
	pl, err := mslplan.New(r)
	require.NoError(t, err, c.name)
	kernels := mslemu.Kernels()
	for _, d := range pl.Dispatches() {
		require.True(t, slices.Contains(kernels, d.Name), "%s: kernel %s is not compiled into the emulator", c.name, d.Name)
	}
	return pl
}

// checkCase runs forward and backward of c through the emulator and holds every output
// against the reference.
func checkCase(t *testing.T, c *testCase) {
	t.Helper()
	tol := toleranceFor(c.cfg.dt)
	pl := planFor(t, c)
	run := runner{}

	saved, err := run.forward(pl, c.p)
	require.NoError(t, err, c.name)
	ref, err := fallback.Forward(c.p64)
	require.NoError(t, err, c.name)
	assertClose(t, c.name, "O", float64s(t, saved.O), float64s(t, ref.O), tol.Fwd)
	assertLogsumexp(t, c.name, float64s(t, saved.L), float64s(t, ref.L), tol.Fwd)

	grads, _, err := run.backward(pl, c.p, saved, c.dO)
	require.NoError(t, err, c.name)
	refG, err := fallback.Backward(c.p64, ref, c.dO64)
	require.NoError(t, err, c.name)
	mq, mk := gradMagnitudes(t, c.p64, ref, c.dO64)
	u := roundingAllowance(c.cfg.dt, c.p.Dims().D)
	assertCloseSlack(t, c.name, "dQ", float64s(t, grads.DQ), float64s(t, refG.DQ), tol.Grad, u*mq)
	assertCloseSlack(t, c.name, "dK", float64s(t, grads.DK), float64s(t, refG.DK), tol.Grad, u*mk)
	assertClose(t, c.name, "dV", float64s(t, grads.DV), float64s(t, refG.DV), tol.Grad)
}

func roundingAllowance(dt tensor.DType, d int) float64 { return refcheck.RoundingAllowance(dt, d) }

// gradMagnitudes returns refcheck.GradMagnitudes: the norms of dQ and dK without
// cancellation, for the rounding allowance.
func gradMagnitudes(t *testing.T, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (dq, dk float64) {
	t.Helper()
	dq, dk, err := refcheck.GradMagnitudes(p, s, dO)
	require.NoError(t, err)
	return dq, dk
}
