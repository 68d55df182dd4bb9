package optim

import (
	"errors"
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/tensor"
)

// ErrNonFinite is wrapped by a NonFiniteError: a gradient holds NaN or ±Inf.
var ErrNonFinite = errors.New("optim: non-finite gradient")

// NonFiniteError names the first gradient element that is NaN or ±Inf.
type NonFiniteError struct {
	Param string  // the parameter's Name
	Index int     // element index in the gradient, row-major
	Value float64 // the element: NaN, +Inf or −Inf
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("optim: gradient of %s holds %v at element %d", e.Param, e.Value, e.Index)
}

// Unwrap returns ErrNonFinite.
func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

// CheckFinite returns a *NonFiniteError for the first NaN or ±Inf gradient element, in
// parameter order, or nil when every gradient is finite. It checks the parameters first.
func CheckFinite(params []Param) error {
	for i, p := range params {
		if err := checkParam(i, p); err != nil {
			return err
		}
	}
	for _, p := range params {
		if i, v, ok := firstNonFinite(p.Grad); ok {
			return &NonFiniteError{Param: p.Name, Index: i, Value: v}
		}
	}
	return nil
}

func firstNonFinite(g *tensor.Tensor) (int, float64, bool) {
	check := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
	switch g.DType() {
	case tensor.Float32:
		s, _ := g.Float32s()
		for i, x := range s {
			if check(float64(x)) {
				return i, float64(x), true
			}
		}
	case tensor.Float64:
		s, _ := g.Float64s()
		for i, x := range s {
			if check(x) {
				return i, x, true
			}
		}
	}
	return 0, 0, false
}

// GradNorm returns the Euclidean norm of all gradients together (for logging and
// clipping decisions). It is computed with a running scale, so large finite gradients do
// not overflow to +Inf; a NaN gradient gives NaN and an infinite one +Inf.
func GradNorm(params []Param) (float64, error) {
	for i, p := range params {
		if err := checkParam(i, p); err != nil {
			return 0, err
		}
	}
	var n norm
	for _, p := range params {
		switch p.Grad.DType() {
		case tensor.Float32:
			s, _ := p.Grad.Float32s()
			for _, x := range s {
				n.add(float64(x))
			}
		case tensor.Float64:
			s, _ := p.Grad.Float64s()
			for _, x := range s {
				n.add(x)
			}
		}
	}
	return n.value(), nil
}

// norm accumulates a Euclidean norm as scale·sqrt(ssq), the scale being the largest
// magnitude so far (LAPACK's dnrm2 scheme).
type norm struct {
	scale, ssq float64
	nan, inf   bool
}

func (n *norm) add(x float64) {
	switch {
	case math.IsNaN(x):
		n.nan = true
		return
	case math.IsInf(x, 0):
		n.inf = true
		return
	case x == 0:
		return
	}
	a := math.Abs(x)
	if a > n.scale {
		r := n.scale / a
		n.ssq = 1 + n.ssq*r*r
		n.scale = a
		return
	}
	r := a / n.scale
	n.ssq += r * r
}

func (n *norm) value() float64 {
	switch {
	case n.nan:
		return math.NaN()
	case n.inf:
		return math.Inf(1)
	}
	return n.scale * math.Sqrt(n.ssq)
}

// ClipGradNorm scales every gradient by maxNorm / total when the joint Euclidean norm
// total exceeds maxNorm, as torch.nn.utils.clip_grad_norm_ does, and returns total (the
// norm before clipping). When total is NaN or +Inf — some gradient holds NaN or ±Inf — it
// changes nothing and returns total with a *NonFiniteError naming the first such element,
// as PyTorch does with error_if_nonfinite=True; a training loop typically skips that step.
// maxNorm must be finite and > 0.
func ClipGradNorm(params []Param, maxNorm float64) (float64, error) {
	if math.IsNaN(maxNorm) || math.IsInf(maxNorm, 0) || maxNorm <= 0 {
		return 0, argErr("maxNorm", "is %v; must be finite and > 0", maxNorm)
	}
	total, err := GradNorm(params)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(total) || math.IsInf(total, 0) {
		return total, CheckFinite(params)
	}
	if total <= maxNorm {
		return total, nil
	}
	c := maxNorm / total
	for _, p := range params {
		switch p.Grad.DType() {
		case tensor.Float32:
			s, _ := p.Grad.Float32s()
			for i := range s {
				s[i] = float32(float64(s[i]) * c)
			}
		case tensor.Float64:
			s, _ := p.Grad.Float64s()
			for i := range s {
				s[i] *= c
			}
		}
	}
	return total, nil
}
