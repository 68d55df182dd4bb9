package optim

import (
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Param is one trainable tensor and the buffer its gradient accumulates in.
type Param struct {
	Name    string         // e.g. "Wq"; used in error messages
	Value   *tensor.Tensor // contiguous, host visible, float32 or float64
	Grad    *tensor.Tensor // same shape and dtype as Value
	NoDecay bool           // exempt from weight decay (biases, norms)
}

// AdamWParams are AdamW's hyperparameters. DefaultAdamW fills in the usual values.
type AdamWParams struct {
	LR          float64 // learning rate, finite and > 0
	Beta1       float64 // first-moment decay, in [0, 1)
	Beta2       float64 // second-moment decay, in [0, 1)
	Eps         float64 // added to sqrt(v̂), finite and > 0
	WeightDecay float64 // decoupled decay λ: θ ← θ − lr·λ·θ, finite and ≥ 0
	// RefuseNonFinite makes Step check every gradient first and, when one holds NaN or
	// ±Inf, return a *NonFiniteError and change nothing (parameters and moments). Without
	// it a non-finite gradient is applied as PyTorch applies it: the parameter and its
	// moments become NaN for good.
	RefuseNonFinite bool
}

// DefaultAdamW returns PyTorch's AdamW defaults with learning rate lr:
// betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
func DefaultAdamW(lr float64) AdamWParams {
	return AdamWParams{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// AdamW is Adam with decoupled weight decay. For each parameter θ with gradient g, at
// that parameter's step t (1, 2, ...):
//
//	θ ← θ − lr·λ·θ                (skipped for NoDecay)
//	m ← β1·m + (1 − β1)·g
//	v ← β2·v + (1 − β2)·g²
//	θ ← θ − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + ε)
//
// which is PyTorch's torch.optim.AdamW. Moments are kept in float64 per Value tensor.
type AdamW struct {
	p     AdamWParams
	state map[*tensor.Tensor]*moments
}

type moments struct {
	step int
	m, v []float64
}

// New returns an AdamW, or an *spec.ArgError naming the hyperparameter out of range.
func New(p AdamWParams) (*AdamW, error) {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case !finite(p.LR) || p.LR <= 0:
		return nil, argErr("AdamWParams.LR", "is %v; must be finite and > 0", p.LR)
	case !finite(p.Beta1) || p.Beta1 < 0 || p.Beta1 >= 1:
		return nil, argErr("AdamWParams.Beta1", "is %v; must be in [0, 1)", p.Beta1)
	case !finite(p.Beta2) || p.Beta2 < 0 || p.Beta2 >= 1:
		return nil, argErr("AdamWParams.Beta2", "is %v; must be in [0, 1)", p.Beta2)
	case !finite(p.Eps) || p.Eps <= 0:
		return nil, argErr("AdamWParams.Eps", "is %v; must be finite and > 0", p.Eps)
	case !finite(p.WeightDecay) || p.WeightDecay < 0:
		return nil, argErr("AdamWParams.WeightDecay", "is %v; must be finite and ≥ 0", p.WeightDecay)
	}
	return &AdamW{p: p, state: map[*tensor.Tensor]*moments{}}, nil
}

// Params returns the hyperparameters.
func (a *AdamW) Params() AdamWParams { return a.p }

// SetLR changes the learning rate (for schedules); it must be finite and > 0.
func (a *AdamW) SetLR(lr float64) error {
	if math.IsNaN(lr) || math.IsInf(lr, 0) || lr <= 0 {
		return argErr("lr", "is %v; must be finite and > 0", lr)
	}
	a.p.LR = lr
	return nil
}

// Steps returns how many updates value has received (0 for a tensor it has not seen).
func (a *AdamW) Steps(value *tensor.Tensor) int {
	if s, ok := a.state[value]; ok {
		return s.step
	}
	return 0
}

// Step updates every parameter from its gradient. It checks all of them first (and, with
// RefuseNonFinite, that every gradient is finite): on an error no parameter has changed.
// Gradients are read, not cleared; call ZeroGrad.
func (a *AdamW) Step(params []Param) error {
	seen := make(map[*tensor.Tensor]string, len(params))
	for i, p := range params {
		if err := checkParam(i, p); err != nil {
			return err
		}
		if prev, dup := seen[p.Value]; dup {
			return argErr(paramArg(i, p, "Value"), "is the same tensor as parameter %q; list each parameter once", prev)
		}
		seen[p.Value] = p.Name
		if s, ok := a.state[p.Value]; ok && len(s.m) != p.Value.Len() {
			return argErr(paramArg(i, p, "Value"), "has %d elements, but its optimizer state has %d", p.Value.Len(), len(s.m))
		}
	}
	if a.p.RefuseNonFinite {
		if err := CheckFinite(params); err != nil {
			return err
		}
	}
	for _, p := range params {
		s, ok := a.state[p.Value]
		if !ok {
			s = &moments{m: make([]float64, p.Value.Len()), v: make([]float64, p.Value.Len())}
			a.state[p.Value] = s
		}
		s.step++
		decay := a.p.WeightDecay
		if p.NoDecay {
			decay = 0
		}
		switch p.Value.DType() {
		case tensor.Float32:
			val, _ := p.Value.Float32s()
			grad, _ := p.Grad.Float32s()
			update(a.p, decay, s, val, grad)
		case tensor.Float64:
			val, _ := p.Value.Float64s()
			grad, _ := p.Grad.Float64s()
			update(a.p, decay, s, val, grad)
		}
	}
	return nil
}

// State is one parameter's AdamW state: how many updates it has had and its moment
// estimates, for checkpoints.
type State struct {
	Step int       // updates so far, ≥ 1
	M, V []float64 // first and second moments, one per element of the parameter
}

// State returns a copy of value's state; ok is false for a tensor Step has not updated.
func (a *AdamW) State(value *tensor.Tensor) (s State, ok bool) {
	m, ok := a.state[value]
	if !ok {
		return State{}, false
	}
	return State{Step: m.step, M: append([]float64(nil), m.m...), V: append([]float64(nil), m.v...)}, true
}

// SetState replaces value's state with a copy of s, to resume from a checkpoint: the next
// Step continues as if this optimizer had made s.Step updates. M and V need value.Len()
// elements each, finite, V ≥ 0; Step ≥ 1.
func (a *AdamW) SetState(value *tensor.Tensor, s State) error {
	switch {
	case value == nil:
		return argErr("value", "must not be nil")
	case s.Step < 1:
		return argErr("State.Step", "is %d; must be ≥ 1", s.Step)
	case len(s.M) != value.Len():
		return argErr("State.M", "has %d elements, want value's %d", len(s.M), value.Len())
	case len(s.V) != value.Len():
		return argErr("State.V", "has %d elements, want value's %d", len(s.V), value.Len())
	}
	for i := range s.M {
		if m := s.M[i]; math.IsNaN(m) || math.IsInf(m, 0) {
			return argErr("State.M", "element %d is %v; moments must be finite", i, m)
		}
		if v := s.V[i]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return argErr("State.V", "element %d is %v; must be finite and ≥ 0", i, v)
		}
	}
	a.state[value] = &moments{step: s.Step, m: append([]float64(nil), s.M...), v: append([]float64(nil), s.V...)}
	return nil
}

func update[T float32 | float64](h AdamWParams, decay float64, s *moments, val, grad []T) {
	t := float64(s.step)
	c1 := 1 - math.Pow(h.Beta1, t) // bias corrections
	c2 := 1 - math.Pow(h.Beta2, t)
	shrink := 1 - h.LR*decay
	for i := range val {
		g := float64(grad[i])
		th := float64(val[i]) * shrink
		s.m[i] = h.Beta1*s.m[i] + (1-h.Beta1)*g
		s.v[i] = h.Beta2*s.v[i] + (1-h.Beta2)*g*g
		th -= h.LR * (s.m[i] / c1) / (math.Sqrt(s.v[i]/c2) + h.Eps)
		val[i] = T(th)
	}
}

// ZeroGrad sets every gradient buffer to zero. It checks all parameters first.
func ZeroGrad(params []Param) error {
	for i, p := range params {
		if err := checkParam(i, p); err != nil {
			return err
		}
	}
	for _, p := range params {
		switch p.Grad.DType() {
		case tensor.Float32:
			g, _ := p.Grad.Float32s()
			clear(g)
		case tensor.Float64:
			g, _ := p.Grad.Float64s()
			clear(g)
		}
	}
	return nil
}

func checkParam(i int, p Param) error {
	for _, t := range []struct {
		field string
		t     *tensor.Tensor
	}{{"Value", p.Value}, {"Grad", p.Grad}} {
		arg := paramArg(i, p, t.field)
		if t.t == nil {
			return argErr(arg, "must not be nil")
		}
		if d := t.t.DType(); d != tensor.Float32 && d != tensor.Float64 {
			return argErr(arg, "dtype %v; the optimizer updates float32 or float64 tensors", d)
		}
		if !t.t.IsContiguous() {
			return argErr(arg, "is not contiguous (strides %v); parameters must be contiguous", t.t.Strides())
		}
		if !t.t.Storage().Kind().HostVisible() {
			return argErr(arg, "is in %v storage; the optimizer needs host-visible memory", t.t.Storage().Kind())
		}
	}
	if !p.Grad.SameShape(p.Value) || p.Grad.DType() != p.Value.DType() {
		return argErr(paramArg(i, p, "Grad"), "is %v %v; want Value's %v %v", p.Grad.DType(), p.Grad.Shape(), p.Value.DType(), p.Value.Shape())
	}
	if p.Grad.Storage() == p.Value.Storage() {
		return argErr(paramArg(i, p, "Grad"), "shares storage with Value; the gradient needs its own buffer")
	}
	return nil
}

func paramArg(i int, p Param, field string) string {
	return fmt.Sprintf("params[%d](%s).%s", i, p.Name, field)
}

func argErr(arg, format string, args ...any) error {
	return &spec.ArgError{Arg: arg, Rule: fmt.Sprintf(format, args...)}
}
