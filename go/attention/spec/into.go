package spec

import (
	"slices"

	"github.com/orchard-ml/orchard/go/tensor"
)

// ValidateSavedInto checks caller-provided forward destinations for p (already
// validated). into may be nil and so may each field: those outputs are allocated. A
// destination has its output's shape and dtype (O: Q's; L: float32 or float64), host-visible
// or device storage as the executor states, and overlaps none of the inputs (Q, K, V) nor
// the other destination.
func ValidateSavedInto(p *Problem, into *Saved) error {
	if into == nil {
		return nil
	}
	d := p.Dims()
	if into.O != nil {
		if err := checkDest("into.O", into.O, p.Q.Shape(), p.Q.DType()); err != nil {
			return err
		}
	}
	if into.L != nil {
		if l := into.L.Shape(); len(l) != 3 || l[0] != d.B || l[1] != d.H || l[2] != d.N {
			return argErr("into.L", "shape %v, want [B, H, N] = [%d, %d, %d]", l, d.B, d.H, d.N)
		}
		if dt := into.L.DType(); dt != tensor.Float32 && dt != tensor.Float64 {
			return argErr("into.L", "dtype %v, want float32 or float64", dt)
		}
	}
	return checkNoOverlap([]named{{"into.O", into.O}, {"into.L", into.L}},
		[]named{{"Q", p.Q}, {"K", p.K}, {"V", p.V}})
}

// ValidateGradsInto checks caller-provided backward destinations for p, s and dO (already
// validated by ValidateBackward): shapes of Q, K and V, dtype p.GradDTypeValue(), no overlap
// with each other or with Q, K, V, O, L and dO.
func ValidateGradsInto(p *Problem, s *Saved, dO *tensor.Tensor, into *Grads) error {
	if into == nil {
		return nil
	}
	gt := p.GradDTypeValue()
	for _, c := range []struct {
		arg  string
		t    *tensor.Tensor
		like *tensor.Tensor
	}{{"into.DQ", into.DQ, p.Q}, {"into.DK", into.DK, p.K}, {"into.DV", into.DV, p.V}} {
		if c.t == nil {
			continue
		}
		if err := checkDest(c.arg, c.t, c.like.Shape(), gt); err != nil {
			return err
		}
	}
	in := []named{{"Q", p.Q}, {"K", p.K}, {"V", p.V}, {"dO", dO}}
	if s != nil {
		in = append(in, named{"Saved.O", s.O}, named{"Saved.L", s.L})
	}
	return checkNoOverlap([]named{{"into.DQ", into.DQ}, {"into.DK", into.DK}, {"into.DV", into.DV}}, in)
}

type named struct {
	arg string
	t   *tensor.Tensor
}

func checkDest(arg string, t *tensor.Tensor, shape []int, dt tensor.DType) error {
	if t.Rank() != len(shape) {
		return argErr(arg, "rank %d, want %d (shape %v)", t.Rank(), len(shape), shape)
	}
	for i, n := range shape {
		if t.Dim(i) != n {
			return argErr(arg, "shape %v, want %v", t.Shape(), shape)
		}
	}
	if t.DType() != dt {
		return argErr(arg, "dtype %v, want %v", t.DType(), dt)
	}
	if !distinctElements(t) {
		return argErr(arg, "strides %v make two elements share memory (a broadcast view?); a destination needs one element per output", t.Strides())
	}
	return nil
}

// distinctElements reports whether every element of t has its own storage element: with the
// dimensions of extent > 1 sorted by |stride|, each |stride| is at least the span of the
// smaller ones.
func distinctElements(t *tensor.Tensor) bool {
	type dim struct{ n, st int }
	var ds []dim
	for i, st := range t.Strides() {
		if n := t.Dim(i); n > 1 {
			if st < 0 {
				st = -st
			}
			ds = append(ds, dim{n, st})
		}
	}
	slices.SortFunc(ds, func(a, b dim) int { return a.st - b.st })
	span := 1 // elements covered by the dimensions so far
	for _, d := range ds {
		if d.st < span {
			return false
		}
		span = d.st * d.n
	}
	return true
}

// checkNoOverlap refuses a destination that shares bytes with another destination or an input.
func checkNoOverlap(dst, in []named) error {
	for i, a := range dst {
		if a.t == nil {
			continue
		}
		for _, b := range dst[i+1:] {
			if a.t.Overlaps(b.t) {
				return argErr(a.arg, "overlaps %s; destinations must not share memory", b.arg)
			}
		}
		for _, b := range in {
			if a.t.Overlaps(b.t) {
				return argErr(a.arg, "overlaps input %s; a destination must not share memory with an input", b.arg)
			}
		}
	}
	return nil
}

// FillSaved writes s's tensors into into's non-nil fields and returns the result: into's
// tensors where given, s's elsewhere. It serves executors that compute into their own
// buffers and then honour the caller's destinations with one copy.
func FillSaved(into, s *Saved) (*Saved, error) {
	if into == nil {
		return s, nil
	}
	out := *s
	if into.O != nil {
		if err := s.O.CopyInto(into.O); err != nil {
			return nil, err
		}
		out.O = into.O
	}
	if into.L != nil {
		if err := s.L.CopyInto(into.L); err != nil {
			return nil, err
		}
		out.L = into.L
	}
	return &out, nil
}

// FillGrads is FillSaved for gradients.
func FillGrads(into, g *Grads) (*Grads, error) {
	if into == nil {
		return g, nil
	}
	out := *g
	for _, c := range []struct {
		dst, src *tensor.Tensor
		set      **tensor.Tensor
	}{{into.DQ, g.DQ, &out.DQ}, {into.DK, g.DK, &out.DK}, {into.DV, g.DV, &out.DV}} {
		if c.dst == nil {
			continue
		}
		if err := c.src.CopyInto(c.dst); err != nil {
			return nil, err
		}
		*c.set = c.dst
	}
	return &out, nil
}
