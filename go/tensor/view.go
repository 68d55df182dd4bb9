package tensor

// Permute returns a view with dimensions reordered: dimension i of the result is
// dimension perm[i] of t.
func (t *Tensor) Permute(perm ...int) (*Tensor, error) {
	if len(perm) != len(t.shape) {
		return nil, shapeErr("Permute", "%d axes for rank %d", len(perm), len(t.shape))
	}
	seen := make([]bool, len(perm))
	v := t.view()
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return nil, shapeErr("Permute", "perm %v is not a permutation of 0..%d", perm, len(perm)-1)
		}
		seen[p] = true
		v.shape[i], v.strides[i] = t.shape[p], t.strides[p]
	}
	return v, nil
}

// Transpose swaps dimensions a and b (negative values count from the end).
func (t *Tensor) Transpose(a, b int) (*Tensor, error) {
	r := len(t.shape)
	if a < 0 {
		a += r
	}
	if b < 0 {
		b += r
	}
	if a < 0 || a >= r || b < 0 || b >= r {
		return nil, shapeErr("Transpose", "axes (%d, %d) out of range for rank %d", a, b, r)
	}
	perm := make([]int, r)
	for i := range perm {
		perm[i] = i
	}
	perm[a], perm[b] = b, a
	return t.Permute(perm...)
}

// Slice returns the view of elements [start, end) along dim.
func (t *Tensor) Slice(dim, start, end int) (*Tensor, error) {
	if dim < 0 || dim >= len(t.shape) {
		return nil, shapeErr("Slice", "dim %d out of range for rank %d", dim, len(t.shape))
	}
	if start < 0 || end < start || end > t.shape[dim] {
		return nil, shapeErr("Slice", "range [%d, %d) outside [0, %d] of dim %d", start, end, t.shape[dim], dim)
	}
	v := t.view()
	v.offset += start * t.strides[dim]
	v.shape[dim] = end - start
	return v, nil
}

// Reshape returns a view with a new shape when the strides allow it (always for a
// contiguous tensor), and an error otherwise; call Contiguous first to force a copy.
// One dimension may be -1 and is inferred.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	shape = append([]int(nil), shape...)
	infer := -1
	known := 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, shapeErr("Reshape", "dimension %d is %d (only one -1 is allowed)", i, d)
		default:
			var ok bool
			if known, ok = mulInt(known, d); !ok {
				return nil, shapeErr("Reshape", "shape %v overflows int", shape)
			}
		}
	}
	if infer >= 0 {
		if known == 0 || t.Len()%known != 0 {
			return nil, shapeErr("Reshape", "cannot infer -1 in %v from %d elements", shape, t.Len())
		}
		shape[infer] = t.Len() / known
		known *= shape[infer]
	}
	if known != t.Len() {
		return nil, shapeErr("Reshape", "shape %v has %d elements, tensor has %d", shape, known, t.Len())
	}
	strides, ok := reshapeStrides(t.shape, t.strides, shape)
	if !ok {
		return nil, shapeErr("Reshape", "strides %v of shape %v do not allow shape %v without a copy", t.strides, t.shape, shape)
	}
	v := t.view()
	v.shape, v.strides = shape, strides
	return v, nil
}

// reshapeStrides finds strides for newShape over the same elements, merging and splitting
// runs of old dimensions that are contiguous with each other.
func reshapeStrides(old, oldStrides, newShape []int) ([]int, bool) {
	// Drop size-1 old dimensions; they constrain nothing.
	var os, ost []int
	for i, d := range old {
		if d != 1 {
			os, ost = append(os, d), append(ost, oldStrides[i])
		}
	}
	ns := make([]int, len(newShape))
	for i := range ns {
		ns[i] = 1
	}
	for _, d := range newShape {
		if d == 0 {
			return ContiguousStrides(newShape), true
		}
	}
	oi, ni := 0, 0
	for oi < len(os) || ni < len(newShape) {
		if ni < len(newShape) && newShape[ni] == 1 {
			ni++ // a new size-1 dimension takes any stride
			continue
		}
		if oi >= len(os) || ni >= len(newShape) {
			return nil, false
		}
		// Grow a group of old dims [oi, oj) and new dims [ni, nj) with equal products.
		oj, nj := oi+1, ni+1
		op, np := os[oi], newShape[ni]
		for op != np {
			if op < np {
				if oj >= len(os) {
					return nil, false
				}
				op *= os[oj]
				oj++
			} else {
				if nj >= len(newShape) {
					return nil, false
				}
				np *= newShape[nj]
				nj++
			}
		}
		// The old group must be contiguous within itself.
		for k := oi; k < oj-1; k++ {
			if ost[k] != ost[k+1]*os[k+1] {
				return nil, false
			}
		}
		acc := ost[oj-1]
		for k := nj - 1; k >= ni; k-- {
			ns[k] = acc
			acc *= newShape[k]
		}
		oi, ni = oj, nj
	}
	return ns, true
}

func (t *Tensor) view() *Tensor {
	return &Tensor{
		dtype:   t.dtype,
		shape:   append([]int(nil), t.shape...),
		strides: append([]int(nil), t.strides...),
		offset:  t.offset,
		storage: t.storage,
	}
}
