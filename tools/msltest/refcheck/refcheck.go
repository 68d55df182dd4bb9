package refcheck

import (
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Tolerance is the relative L2 error allowed against the float64 reference.
type Tolerance struct {
	Fwd  float64 // O and L
	Grad float64 // dQ, dK, dV
}

// ToleranceFor returns the tolerance for kernels whose inputs (and outputs) are of dtype
// dt, accumulating in float32: float32 1e-5 forward and 1e-4 for gradients, float16
// 3e-3, bfloat16 2e-2.
func ToleranceFor(dt tensor.DType) Tolerance {
	switch dt {
	case tensor.Float16:
		return Tolerance{Fwd: 3e-3, Grad: 3e-3}
	case tensor.BFloat16:
		return Tolerance{Fwd: 2e-2, Grad: 2e-2}
	}
	return Tolerance{Fwd: 1e-5, Grad: 1e-4}
}

// Result is the verdict on one output.
type Result struct {
	What string  // O, L, dQ, dK, dV
	Err  float64 // relative L2 error (of the finite values, for L)
	Tol  float64 // the bound it was held to
	OK   bool
	// Detail says why a result failed (empty when OK).
	Detail string
}

func (r Result) String() string {
	if r.OK {
		return fmt.Sprintf("%s: %.3g ≤ %.3g", r.What, r.Err, r.Tol)
	}
	return fmt.Sprintf("%s: FAIL: %s", r.What, r.Detail)
}

// RelL2 is ‖got − want‖ / ‖want‖, or ‖got‖ when want is all zeros.
func RelL2(got, want []float64) float64 {
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

// Norm is the L2 norm of v.
func Norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func distance(got, want []float64) float64 {
	var s float64
	for i := range want {
		d := got[i] - want[i]
		s += d * d
	}
	return math.Sqrt(s)
}

// Close holds got against want: same length, every value finite, and ‖got − want‖ ≤
// tol·‖want‖ + slack.
func Close(what string, got, want []float64, tol, slack float64) Result {
	r := Result{What: what, Tol: tol}
	if len(got) != len(want) {
		r.Detail = fmt.Sprintf("%d values, the reference has %d", len(got), len(want))
		return r
	}
	for i, g := range got {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			r.Err = math.Inf(1)
			r.Detail = fmt.Sprintf("%s[%d] = %v (reference %v)", what, i, g, want[i])
			return r
		}
	}
	r.Err = RelL2(got, want)
	dist := distance(got, want)
	if dist > tol*Norm(want)+slack {
		r.Detail = fmt.Sprintf("relative L2 error %.3g > %.3g (‖got − want‖ = %.3g, ‖want‖ = %.3g, rounding allowance %.3g)",
			r.Err, tol, dist, Norm(want), slack)
		return r
	}
	r.OK = true
	return r
}

// Logsumexp holds L: −Inf exactly where the reference has it (rows with no visible key),
// never NaN or +Inf, the finite values within tol in relative L2.
func Logsumexp(got, want []float64, tol float64) Result {
	r := Result{What: "L", Tol: tol}
	if len(got) != len(want) {
		r.Detail = fmt.Sprintf("%d values, the reference has %d", len(got), len(want))
		return r
	}
	var gf, wf []float64
	for i := range want {
		g, w := got[i], want[i]
		if math.IsNaN(g) || math.IsInf(g, 1) {
			r.Err = math.Inf(1)
			r.Detail = fmt.Sprintf("L[%d] = %v (reference %v)", i, g, w)
			return r
		}
		if math.IsInf(w, -1) || math.IsInf(g, -1) {
			if g != w {
				r.Err = math.Inf(1)
				r.Detail = fmt.Sprintf("L[%d] = %v, reference %v: masking differs", i, g, w)
				return r
			}
			continue
		}
		gf, wf = append(gf, g), append(wf, w)
	}
	r.Err = RelL2(gf, wf)
	if r.Err > tol {
		r.Detail = fmt.Sprintf("relative L2 error %.3g > %.3g", r.Err, tol)
		return r
	}
	r.OK = true
	return r
}

// RoundingAllowance is the factor of the absolute allowance for dQ and dK (see
// GradMagnitudes): 2u for the stored dtype plus 2√D u for float32 accumulation.
//
// dS_ij = P_ij (dP'_ij − Delta_i) cancels exactly when a row sees a single key (P = 1,
// dP' = Delta): the exact dQ and dK are then 0, and what a kernel returns is rounding —
// of Delta, computed from O stored in the input dtype, and of the float32 dot products
// over D. Relative error against a float64 zero means nothing; rounding relative to the
// magnitude of the cancelling terms does. In ordinary cases the allowance loosens the
// relative bound by about 4× itself (the magnitude is about 4‖dQ‖).
func RoundingAllowance(dt tensor.DType, d int) float64 {
	u := 0x1p-24
	switch dt {
	case tensor.Float16:
		u = 0x1p-11
	case tensor.BFloat16:
		u = 0x1p-8
	}
	return 2*u + 2*math.Sqrt(float64(d))*0x1p-24
}

func values(x *tensor.Tensor) ([]float64, error) { return x.ToFloat64s() }

// GradMagnitudes returns the norms of dQ and dK computed without cancellation, scale
// Σ_j P_ij (|dP'_ij| + |Delta_i|) (1 − t²) |K_j| and its transpose for dK, following the
// contract through spec's own methods (Visible, Bias, the dropout stream) in float64 from
// the reference's saved L and O. It costs O(B·H·N·M·D).
func GradMagnitudes(p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (dq, dk float64, err error) {
	d := p.Dims()
	var q, k, v, o, l, g []float64
	if q, err = values(p.Q); err != nil {
		return 0, 0, err
	}
	if k, err = values(p.K); err != nil {
		return 0, 0, err
	}
	if v, err = values(p.V); err != nil {
		return 0, 0, err
	}
	if o, err = values(s.O); err != nil {
		return 0, 0, err
	}
	if l, err = values(s.L); err != nil {
		return 0, 0, err
	}
	if g, err = values(dO); err != nil {
		return 0, 0, err
	}
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
	return Norm(mq), Norm(mk), nil
}
