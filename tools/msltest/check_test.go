package msltest

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// relL2 is ‖got − want‖ / ‖want‖, or ‖got‖ when want is all zeros.
func relL2(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func distance(got, want []float64) float64 {
	var s float64
	for i := range want {
		d := got[i] - want[i]
		s += d * d
	}
	return math.Sqrt(s)
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func float64s(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// assertClose holds a kernel output against the reference: never NaN or ±Inf, and
// within tol in relative L2.
func assertClose(t *testing.T, name, what string, got, want []float64, tol float64) bool {
	t.Helper()
	return assertCloseSlack(t, name, what, got, want, tol, 0)
}

// assertCloseSlack is assertClose with an absolute allowance: ‖got − want‖ ≤
// tol·‖want‖ + slack (see gradSlack).
func assertCloseSlack(t *testing.T, name, what string, got, want []float64, tol, slack float64) bool {
	t.Helper()
	require.Len(t, got, len(want), "%s: %s", name, what)
	for i, g := range got {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return assert.Fail(t, "non-finite output", "%s: %s[%d] = %v (reference %v)", name, what, i, g, want[i])
		}
	}
	if dist := distance(got, want); dist > tol*norm(want)+slack {
		return assert.Fail(t, "outside tolerance", "%s: %s: relative L2 error %.3g > %.3g (‖got − want‖ = %.3g, ‖want‖ = %.3g, rounding allowance %.3g)",
			name, what, relL2(got, want), tol, dist, norm(want), slack)
	}
	return true
}

// assertLogsumexp compares L: −Inf exactly where the reference has it (rows with no
// visible key), the finite values within tol; never NaN.
func assertLogsumexp(t *testing.T, name string, got, want []float64, tol float64) bool {
	t.Helper()
	require.Len(t, got, len(want), name)
	var gf, wf []float64
	for i := range want {
		g, w := got[i], want[i]
		if math.IsNaN(g) || math.IsInf(g, 1) {
			return assert.Fail(t, "bad L", "%s: L[%d] = %v (reference %v)", name, i, g, w)
		}
		if math.IsInf(w, -1) || math.IsInf(g, -1) {
			if g != w {
				return assert.Fail(t, "L masking differs", "%s: L[%d] = %v, reference %v", name, i, g, w)
			}
			continue
		}
		gf, wf = append(gf, g), append(wf, w)
	}
	return assert.LessOrEqual(t, relL2(gf, wf), tol, "%s: L relative L2 error", name)
}

// planFor plans c on the emulator: the production table for production configs (so the
// table lookup itself is exercised), the test tiles otherwise.
func planFor(t *testing.T, c *testCase) *mslplan.Plan {
	t.Helper()
	r := mslplan.Request{Problem: c.p, Family: c.cfg.family}
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
	assertClose(t, c.name, "O", float64s(t, saved.O), float64s(t, ref.O), tol.fwd)
	assertLogsumexp(t, c.name, float64s(t, saved.L), float64s(t, ref.L), tol.fwd)

	grads, _, err := run.backward(pl, c.p, saved, c.dO)
	require.NoError(t, err, c.name)
	refG, err := fallback.Backward(c.p64, ref, c.dO64)
	require.NoError(t, err, c.name)
	mq, mk := gradMagnitudes(t, c.p64, ref, c.dO64)
	u := roundingAllowance(c.cfg.dt, c.p.Dims().D)
	assertCloseSlack(t, c.name, "dQ", float64s(t, grads.DQ), float64s(t, refG.DQ), tol.grad, u*mq)
	assertCloseSlack(t, c.name, "dK", float64s(t, grads.DK), float64s(t, refG.DK), tol.grad, u*mk)
	assertClose(t, c.name, "dV", float64s(t, grads.DV), float64s(t, refG.DV), tol.grad)
}

// The dQ and dK comparisons are a forward-error bound of the usual form: relative L2
// within tol, plus a rounding allowance times the magnitude of the terms that cancel
// (gradMagnitudes). dS_ij = P_ij (dP'_ij − Delta_i) cancels exactly when a row sees a
// single key (P = 1, dP' = Delta): the exact dQ and dK are then 0, and what a kernel
// returns is rounding — of Delta, computed (as the contract has every executor do) from
// O stored in the input dtype, and of the float32 dot products over D. Relative error
// against a float64 zero means nothing; rounding relative to the magnitude does.
//
// roundingAllowance is 2u for the stored dtype plus 2√D u for float32 accumulation. In
// ordinary cases it loosens the relative bound by about 4× the allowance (‖magnitude‖
// ≈ 4‖dQ‖); measured errors stay about 10× below tol (see docs/EMULATION.md).
func roundingAllowance(dt tensor.DType, d int) float64 {
	u := 0x1p-24
	switch dt {
	case tensor.Float16:
		u = 0x1p-11
	case tensor.BFloat16:
		u = 0x1p-8
	}
	return 2*u + 2*math.Sqrt(float64(d))*0x1p-24
}

// gradMagnitudes returns the norms of |dQ| and |dK| computed without cancellation,
// scale Σ_j P_ij (|dP'_ij| + |Delta_i|) (1 − t²) |K_j| and its transpose for dK. It
// follows the contract through spec's own methods (Visible, Bias, the dropout stream),
// in float64, from the reference's saved L and O.
func gradMagnitudes(t *testing.T, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (dq, dk float64) {
	t.Helper()
	d := p.Dims()
	q, k, v := float64s(t, p.Q), float64s(t, p.K), float64s(t, p.V)
	o, l, g := float64s(t, s.O), float64s(t, s.L), float64s(t, dO)
	scale, c := p.ScaleValue(), p.Softcap
	drop := p.Dropout.P > 0
	stream := p.DropoutStream()
	mq := make([]float64, len(q))
	mk := make([]float64, len(k))
	dot := func(a []float64, ai int, b []float64, bi int) float64 {
		var x float64
		for e := 0; e < d.D; e++ {
			x += a[ai+e] * b[bi+e]
		}
		return x
	}
	for b := 0; b < d.B; b++ {
		for h := 0; h < d.H; h++ {
			kv := d.KVHead(h)
			for i := 0; i < d.N; i++ {
				row := (b*d.H+h)*d.N + i
				if math.IsInf(l[row], -1) {
					continue
				}
				qi := row * d.D
				delta := math.Abs(dot(o, qi, g, qi))
				for j := 0; j < d.M; j++ {
					if !p.Visible(b, h, i, j) {
						continue
					}
					kj := ((b*d.Hkv+kv)*d.M + j) * d.D
					x := scale * dot(q, qi, k, kj)
					deriv := 1.0
					if c > 0 {
						th := math.Tanh(x / c)
						x, deriv = c*th, 1-th*th
					}
					x += p.Bias(b, h, i, j)
					if math.IsInf(x, -1) {
						continue
					}
					pij := math.Exp(x - l[row])
					dp := math.Abs(dot(g, qi, v, kj))
					if drop {
						if stream.Keep(uint32(row), j) {
							dp *= 1 / (1 - p.Dropout.P)
						} else {
							dp = 0
						}
					}
					term := scale * pij * (dp + delta) * deriv
					for e := 0; e < d.D; e++ {
						mq[qi+e] += term * math.Abs(k[kj+e])
						mk[kj+e] += term * math.Abs(q[qi+e])
					}
				}
			}
		}
	}
	return norm(mq), norm(mk)
}
