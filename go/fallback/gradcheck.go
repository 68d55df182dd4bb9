package fallback

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// NumericalGradient estimates the gradient of f at x by central differences:
// (f(x + eps·e_i) − f(x − eps·e_i)) / step_i, where step_i is the distance actually
// covered in floating point (close to 2·eps). f must read x, which NumericalGradient moves
// in place one element at a time; every element gets its exact original value back before
// the next one moves.
func NumericalGradient(f func() float64, x []float64, eps float64) []float64 {
	g := make([]float64, len(x))
	for i, xi := range x {
		hi, lo := xi+eps, xi-eps
		x[i] = hi
		fhi := f()
		x[i] = lo
		flo := f()
		x[i] = xi
		g[i] = (fhi - flo) / (hi - lo)
	}
	return g
}

// GradError is how far one analytic gradient is from its numerical estimate.
type GradError struct {
	Name   string  // e.g. "dQ"
	MaxAbs float64 // max_i |a_i − n_i|
	// MaxRel is max_i |a_i − n_i| / max(|a_i|, |n_i|, floor): relative for gradients
	// above the floor, absolute (scaled by 1/floor) for those below it.
	MaxRel            float64
	Worst             int     // row-major index of the element with the largest MaxRel
	Analytic, Numeric float64 // the two values at Worst
}

func (e GradError) String() string {
	return fmt.Sprintf("%s: max rel %.3g (max abs %.3g) at %d: analytic %.17g, numeric %.17g",
		e.Name, e.MaxRel, e.MaxAbs, e.Worst, e.Analytic, e.Numeric)
}

// CompareGradients measures analytic against numeric (equal lengths) with the relative
// error of GradError, floor > 0.
func CompareGradients(name string, analytic, numeric []float64, floor float64) GradError {
	e := GradError{Name: name}
	for i, a := range analytic {
		n := numeric[i]
		diff := math.Abs(a - n)
		rel := diff / max(math.Abs(a), math.Abs(n), floor)
		if math.IsNaN(diff) {
			rel, diff = math.Inf(1), math.Inf(1) // a NaN gradient is as wrong as it gets
		}
		e.MaxAbs = max(e.MaxAbs, diff)
		if rel > e.MaxRel || i == 0 {
			e.MaxRel, e.Worst, e.Analytic, e.Numeric = rel, i, a, n
		}
	}
	return e
}

// GradCheck configures CheckAttentionGradients; the zero value checks the reference with
// the default step and floor.
type GradCheck struct {
	// Eps is the central-difference step; 0 means 1e-5, which balances the step's
	// truncation error (∝ Eps²) against rounding (∝ ε·|loss|/Eps) for float64 losses of
	// unit scale: on the package's option table the two sides then agree to 2e-7.
	Eps float64
	// Floor is the floor of the relative error (see GradError); 0 means 1e-3.
	Floor float64
	// Executor supplies the analytic gradients: its Forward, then its Backward with
	// dO = G, run on the problem as given (in its own dtype). Nil means the reference.
	Executor spec.Executor
}

// GradReport holds the errors of dQ, dK and dV.
type GradReport struct {
	DQ, DK, DV GradError
}

// MaxRel is the largest relative error of the three gradients.
func (r GradReport) MaxRel() float64 { return max(r.DQ.MaxRel, r.DK.MaxRel, r.DV.MaxRel) }

func (r GradReport) String() string {
	return r.DQ.String() + "; " + r.DK.String() + "; " + r.DV.String()
}

// CheckAttentionGradients holds analytic gradients of p against finite differences. The
// loss is Σ G∘O for a fixed G of standard normal values drawn from seed (rounded to Q's
// dtype), so dO = G. The analytic side is the configured executor's Forward and Backward
// on p; the numerical side moves every element of float64 copies of Q, K and V (holding
// p's exact values) by ±Eps and differentiates the reference's Forward. Masks, windows,
// lengths and dropout are fixed by the options, so the loss is smooth in Q, K and V.
//
// The cost is 2·(|Q| + |K| + |V|) reference forward passes: keep problems small.
func CheckAttentionGradients(p *spec.Problem, seed int64, c GradCheck) (GradReport, error) {
	if err := spec.Validate(p); err != nil {
		return GradReport{}, err
	}
	eps, floor, ex := c.Eps, c.Floor, c.Executor
	if eps == 0 {
		eps = 1e-5
	}
	if floor == 0 {
		floor = 1e-3
	}
	if ex == nil {
		ex = NewExecutor()
	}
	d := p.Dims()

	// G, drawn in float64 and rounded to the problem's dtype; g holds its exact values.
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6f72636861726400))
	raw := make([]float64, d.B*d.H*d.N*d.D)
	for i := range raw {
		raw[i] = rng.NormFloat64()
	}
	dO, err := tensor.FromFloat64s(p.Q.DType(), raw, d.B, d.H, d.N, d.D)
	if err != nil {
		return GradReport{}, err
	}
	g, err := dO.ToFloat64s()
	if err != nil {
		return GradReport{}, err
	}

	// Analytic gradients.
	saved, err := ex.Forward(context.Background(), p, nil)
	if err != nil {
		return GradReport{}, fmt.Errorf("fallback: gradient check: %s forward: %w", ex.Name(), err)
	}
	grads, err := ex.Backward(context.Background(), p, saved, dO, nil)
	if err != nil {
		return GradReport{}, fmt.Errorf("fallback: gradient check: %s backward: %w", ex.Name(), err)
	}

	// Numerical gradients of the reference in float64.
	p64 := *p
	if p64.Q, err = p.Q.Convert(tensor.Float64); err != nil {
		return GradReport{}, err
	}
	if p64.K, err = p.K.Convert(tensor.Float64); err != nil {
		return GradReport{}, err
	}
	if p64.V, err = p.V.Convert(tensor.Float64); err != nil {
		return GradReport{}, err
	}
	var lossErr error
	loss := func() float64 {
		s, err := Forward(&p64)
		if err != nil {
			lossErr = err
			return math.NaN()
		}
		o, err := s.O.Float64s()
		if err != nil {
			lossErr = err
			return math.NaN()
		}
		return dot(g, o)
	}
	var r GradReport
	for _, t := range []struct {
		name     string
		x        *tensor.Tensor
		analytic *tensor.Tensor
		out      *GradError
	}{
		{"dQ", p64.Q, grads.DQ, &r.DQ},
		{"dK", p64.K, grads.DK, &r.DK},
		{"dV", p64.V, grads.DV, &r.DV},
	} {
		x, err := t.x.Float64s()
		if err != nil {
			return GradReport{}, err
		}
		numeric := NumericalGradient(loss, x, eps)
		if lossErr != nil {
			return GradReport{}, fmt.Errorf("fallback: gradient check: reference forward: %w", lossErr)
		}
		analytic, err := t.analytic.ToFloat64s()
		if err != nil {
			return GradReport{}, fmt.Errorf("fallback: gradient check: reading %s: %w", t.name, err)
		}
		if len(analytic) != len(numeric) {
			return GradReport{}, fmt.Errorf("fallback: gradient check: %s has %d elements, want %d", t.name, len(analytic), len(numeric))
		}
		*t.out = CompareGradients(t.name, analytic, numeric, floor)
	}
	return r, nil
}
