package spec

import (
	"math"

	"github.com/orchard-ml/orchard/go/tensor"
)

// The accepted range of Options.Scale and Options.Softcap besides 0 (see the package doc):
// both must be normal float32 numbers, so that every executor, whatever precision it
// computes in, uses the same nonzero value, and at most 2^24, so that the logits of inputs
// of sane magnitude stay far from overflow.
const (
	MinScale = 0x1p-126 // the smallest normal float32, ≈ 1.18e-38
	MaxScale = 0x1p24   // 16777216
)

// MaxDropoutKeys is the most keys dropout can index: the Philox counter holds the column
// group j/4 in 32 bits.
const MaxDropoutKeys = 1 << 34

// Validate checks every rule of the contract that does not depend on the executor, and
// returns an *ArgError naming the first argument that breaks one.
func Validate(p *Problem) error {
	if p == nil {
		return argErr("Problem", "must not be nil")
	}
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
	}{{"Q", p.Q}, {"K", p.K}, {"V", p.V}} {
		if err := check4D(a.name, a.t); err != nil {
			return err
		}
	}
	q, k, v := p.Q.Shape(), p.K.Shape(), p.V.Shape()
	if !p.Q.DType().Valid() {
		return argErr("Q", "unknown dtype %v", p.Q.DType())
	}
	if p.K.DType() != p.Q.DType() {
		return argErr("K", "dtype %v differs from Q's %v (Q, K and V share one dtype)", p.K.DType(), p.Q.DType())
	}
	if p.V.DType() != p.Q.DType() {
		return argErr("V", "dtype %v differs from Q's %v (Q, K and V share one dtype)", p.V.DType(), p.Q.DType())
	}
	if k[0] != q[0] {
		return argErr("K", "batch %d differs from Q's %d", k[0], q[0])
	}
	if k[3] != q[3] {
		return argErr("K", "head dim D = %d differs from Q's %d", k[3], q[3])
	}
	if v[0] != k[0] || v[1] != k[1] || v[2] != k[2] || v[3] != k[3] {
		return argErr("V", "shape %v differs from K's %v (want [B, Hkv, M, D])", v, k)
	}
	if q[1]%k[1] != 0 {
		return argErr("K", "Hkv = %d does not divide H = %d (H must be a multiple of Hkv)", k[1], q[1])
	}
	d := p.Dims()
	o := &p.Options
	if o.Scale != 0 && !(o.Scale >= MinScale && o.Scale <= MaxScale) {
		return argErr("Options.Scale", "is %v; must be 0 (1/sqrt(D)) or in [2^-126, 2^24]", o.Scale)
	}
	if o.Causal > CausalBottomRight {
		return argErr("Options.Causal", "unknown mode %d", o.Causal)
	}
	if o.Softcap != 0 && !(o.Softcap >= MinScale && o.Softcap <= MaxScale) {
		return argErr("Options.Softcap", "is %v; must be 0 (off) or in [2^-126, 2^24]", o.Softcap)
	}
	if pd := o.Dropout.P; math.IsNaN(pd) || pd < 0 || pd >= 1 {
		return argErr("Options.Dropout.P", "is %v; must be in [0, 1)", pd)
	}
	switch o.GradDType {
	case 0, p.Q.DType():
	case tensor.Float32:
		if p.Q.DType() == tensor.Float64 {
			return argErr("Options.GradDType", "float32 gradients of float64 inputs are not offered; use 0 (the inputs' dtype)")
		}
	default:
		return argErr("Options.GradDType", "is %v; must be 0 (Q's dtype) or float32", o.GradDType)
	}
	if o.Dropout.P > 0 {
		if rows, ok := mulCount(d.B, d.H, d.N); !ok || rows > math.MaxUint32+1 {
			return argErr("Options.Dropout", "B·H·N = %d·%d·%d rows exceed the 2^32 rows the dropout counter indexes", d.B, d.H, d.N)
		}
		if d.M > MaxDropoutKeys {
			return argErr("Options.Dropout", "M = %d keys exceed the 2^34 columns the dropout counter indexes", d.M)
		}
	}
	if w := o.Window; w != nil {
		if w.Left < WindowUnbounded {
			return argErr("Options.Window.Left", "is %d; must be ≥ 0 or WindowUnbounded (-1)", w.Left)
		}
		if w.Right < WindowUnbounded {
			return argErr("Options.Window.Right", "is %d; must be ≥ 0 or WindowUnbounded (-1)", w.Right)
		}
	}
	if err := validateMask(o.Mask, d); err != nil {
		return err
	}
	if err := validateLens("Options.SeqLensQ", o.SeqLensQ, d.B, d.N, "N"); err != nil {
		return err
	}
	return validateLens("Options.SeqLensK", o.SeqLensK, d.B, d.M, "M")
}

func check4D(name string, t *tensor.Tensor) error {
	if t == nil {
		return argErr(name, "must not be nil")
	}
	if t.Rank() != 4 {
		return argErr(name, "rank %d, want 4 (shape %v)", t.Rank(), t.Shape())
	}
	for i, s := range t.Shape() {
		if s == 0 {
			return argErr(name, "dimension %d is 0 (shape %v); attention needs non-empty tensors", i, t.Shape())
		}
	}
	return nil
}

func validateMask(m *Mask, d Dims) error {
	if m == nil {
		return nil
	}
	s := m.Shape
	if s[0] != 1 && s[0] != d.B {
		return argErr("Options.Mask.Shape", "batch %d does not broadcast to B = %d (want 1 or B)", s[0], d.B)
	}
	if s[1] != 1 && s[1] != d.H {
		return argErr("Options.Mask.Shape", "heads %d do not broadcast to H = %d (want 1 or H)", s[1], d.H)
	}
	if s[2] != d.N || s[3] != d.M {
		return argErr("Options.Mask.Shape", "[%d, %d] in the last two dimensions, want [N, M] = [%d, %d]", s[2], s[3], d.N, d.M)
	}
	n, ok := mulCount(s[0], s[1], s[2], s[3])
	if !ok {
		return argErr("Options.Mask.Shape", "%v has more elements than an int can count", s)
	}
	switch m.Kind {
	case MaskBool:
		if len(m.Keep) != n || m.Bias != nil {
			return argErr("Options.Mask.Keep", "has %d values (Bias %d); a bool mask of shape %v needs %d in Keep and none in Bias", len(m.Keep), len(m.Bias), s, n)
		}
	case MaskAdditive:
		if len(m.Bias) != n || m.Keep != nil {
			return argErr("Options.Mask.Bias", "has %d values (Keep %d); an additive mask of shape %v needs %d in Bias and none in Keep", len(m.Bias), len(m.Keep), s, n)
		}
		for i, x := range m.Bias {
			if x != x || math.IsInf(float64(x), 1) {
				return argErr("Options.Mask.Bias", "element %d is %v; must be finite or −Inf", i, x)
			}
		}
	default:
		return argErr("Options.Mask.Kind", "unknown kind %d", m.Kind)
	}
	return nil
}

// mulCount multiplies non-negative counts; ok is false when the product overflows an int.
func mulCount(xs ...int) (n int, ok bool) {
	n = 1
	for _, x := range xs {
		if x < 0 || (x != 0 && n > math.MaxInt/x) {
			return 0, false
		}
		n *= x
	}
	return n, true
}

func validateLens(arg string, lens []int, b, max int, dim string) error {
	if lens == nil {
		return nil
	}
	if len(lens) != b {
		return argErr(arg, "has %d entries, want B = %d", len(lens), b)
	}
	for i, l := range lens {
		if l < 0 || l > max {
			return argErr(arg, "entry %d is %d; must be in [0, %s = %d]", i, l, dim, max)
		}
	}
	return nil
}

// ValidateBackward checks the problem and the backward inputs: the saved O and L of a
// forward pass of this problem, and dO.
func ValidateBackward(p *Problem, s *Saved, dO *tensor.Tensor) error {
	if err := Validate(p); err != nil {
		return err
	}
	if s == nil {
		return argErr("Saved", "must not be nil")
	}
	d := p.Dims()
	if err := checkLike("Saved.O", s.O, p.Q); err != nil {
		return err
	}
	if err := checkLike("dO", dO, p.Q); err != nil {
		return err
	}
	if s.L == nil {
		return argErr("Saved.L", "must not be nil")
	}
	if l := s.L.Shape(); len(l) != 3 || l[0] != d.B || l[1] != d.H || l[2] != d.N {
		return argErr("Saved.L", "shape %v, want [B, H, N] = [%d, %d, %d]", l, d.B, d.H, d.N)
	}
	if dt := s.L.DType(); dt != tensor.Float32 && dt != tensor.Float64 {
		return argErr("Saved.L", "dtype %v, want float32 or float64", dt)
	}
	return nil
}

func checkLike(name string, t, q *tensor.Tensor) error {
	if t == nil {
		return argErr(name, "must not be nil")
	}
	if !t.SameShape(q) {
		return argErr(name, "shape %v differs from Q's %v", t.Shape(), q.Shape())
	}
	if t.DType() != q.DType() {
		return argErr(name, "dtype %v differs from Q's %v", t.DType(), q.DType())
	}
	return nil
}
