package main

import (
	"context"
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

// outcome is the verdict on one catalogue problem.
type outcome struct {
	problem string
	kernels []string // the dispatches mslplan chose: forward, Delta, dK/dV, dQ
	results []refcheck.Result
	err     error // the executor or the reference failed
}

func (o outcome) ok() bool {
	if o.err != nil || len(o.results) == 0 {
		return false
	}
	for _, r := range o.results {
		if !r.OK {
			return false
		}
	}
	return true
}

func float64s(t *tensor.Tensor) ([]float64, error) { return t.ToFloat64s() }

// checkProblem runs pr's forward and backward through ex and holds O, L, dQ, dK and dV
// against the float64 reference with refcheck's tolerances for pr's dtype. Rows whose
// reference L is beyond ±mslplan.LogitLimit (the W1 rows: a bias near ±MaxFloat32 on
// every key) must have L = ±LogitLimit, the kernels' clamp, and are left out of the L
// comparison.
func checkProblem(ctx context.Context, ex spec.Executor, fam mslplan.GPUFamily, pr *problem) outcome {
	out := outcome{problem: pr.name}
	if pl, err := mslplan.New(mslplan.Request{Problem: pr.p, Family: fam}); err == nil {
		for _, d := range pl.Dispatches() {
			out.kernels = append(out.kernels, d.Name)
		}
	}
	fail := func(what string, err error) outcome {
		out.err = fmt.Errorf("%s: %w", what, err)
		return out
	}
	if err := ex.Supports(pr.p); err != nil {
		return fail(ex.Name()+" does not support the problem", err)
	}
	s, err := ex.Forward(ctx, pr.p, nil)
	if err != nil {
		return fail("forward", err)
	}
	ref, err := fallback.Forward(pr.p64)
	if err != nil {
		return fail("reference forward", err)
	}
	g, err := ex.Backward(ctx, pr.p, s, pr.dO, nil)
	if err != nil {
		return fail("backward", err)
	}
	refG, err := fallback.Backward(pr.p64, ref, pr.dO64)
	if err != nil {
		return fail("reference backward", err)
	}
	tol := refcheck.ToleranceFor(pr.dt)
	vals := map[string][2]*tensor.Tensor{
		"O": {s.O, ref.O}, "L": {s.L, ref.L}, "dQ": {g.DQ, refG.DQ}, "dK": {g.DK, refG.DK}, "dV": {g.DV, refG.DV},
	}
	got, want := map[string][]float64{}, map[string][]float64{}
	for k, v := range vals {
		if got[k], err = float64s(v[0]); err != nil {
			return fail(k, err)
		}
		if want[k], err = float64s(v[1]); err != nil {
			return fail(k, err)
		}
	}
	out.results = append(out.results, refcheck.Close("O", got["O"], want["O"], tol.Fwd, 0))
	out.results = append(out.results, checkL(got["L"], want["L"], tol.Fwd))
	mq, mk, err := refcheck.GradMagnitudes(pr.p64, ref, pr.dO64)
	if err != nil {
		return fail("gradient magnitudes", err)
	}
	u := refcheck.RoundingAllowance(pr.dt, pr.p.Dims().D)
	out.results = append(out.results,
		refcheck.Close("dQ", got["dQ"], want["dQ"], tol.Grad, u*mq),
		refcheck.Close("dK", got["dK"], want["dK"], tol.Grad, u*mk),
		refcheck.Close("dV", got["dV"], want["dV"], tol.Grad, 0))
	if g.DQ.DType() != pr.p.GradDTypeValue() {
		out.results = append(out.results, refcheck.Result{What: "dQ dtype",
			Detail: fmt.Sprintf("%v, want %v", g.DQ.DType(), pr.p.GradDTypeValue())})
	}
	return out
}

// checkL is refcheck.Logsumexp with the clamped rows checked on their own.
func checkL(got, want []float64, tol float64) refcheck.Result {
	if len(got) != len(want) {
		return refcheck.Logsumexp(got, want, tol)
	}
	var g, w []float64
	for i := range want {
		if math.Abs(want[i]) >= mslplan.LogitLimit && !math.IsInf(want[i], 0) {
			lim := math.Copysign(mslplan.LogitLimit, want[i])
			if math.Abs(got[i]-lim) > 1e-6*mslplan.LogitLimit {
				return refcheck.Result{What: "L", Tol: tol, Err: math.Inf(1),
					Detail: fmt.Sprintf("L[%d] = %v, want the clamp %v (reference %v)", i, got[i], lim, want[i])}
			}
			continue
		}
		g, w = append(g, got[i]), append(w, want[i])
	}
	return refcheck.Logsumexp(g, w, tol)
}
