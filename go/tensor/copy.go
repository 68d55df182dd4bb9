package tensor

// CopyInto writes t's elements into dst, which must have t's shape and host-visible
// storage; the dtype is converted (rounded to nearest even) when the two differ. dst may be
// a strided view; it must not overlap t unless it is t itself.
func (t *Tensor) CopyInto(dst *Tensor) error {
	if dst == nil {
		return shapeErr("CopyInto", "destination is nil")
	}
	if !t.SameShape(dst) {
		return shapeErr("CopyInto", "destination shape %v differs from the source's %v", dst.shape, t.shape)
	}
	if dst == t {
		return nil
	}
	if t.Overlaps(dst) {
		return shapeErr("CopyInto", "destination overlaps the source")
	}
	src, err := t.hostBytes("CopyInto")
	if err != nil {
		return err
	}
	out, err := dst.hostBytes("CopyInto")
	if err != nil {
		return err
	}
	// at maps a row-major element number to dst's storage element.
	at := func(i int) int { return dst.offset + i }
	if !dst.IsContiguous() {
		pos := make([]int, 0, dst.Len())
		dst.each(func(_, p int) { pos = append(pos, p) })
		at = func(i int) int { return pos[i] }
	}
	if t.dtype == dst.dtype {
		sz := t.dtype.Size()
		t.each(func(i, p int) { d := at(i); copy(out[d*sz:(d+1)*sz], src[p*sz:(p+1)*sz]) })
		return nil
	}
	t.each(func(i, p int) { putElem(out, dst.dtype, at(i), getElem(src, t.dtype, p)) })
	return nil
}

// Overlaps reports whether t and u are views of one storage whose byte ranges intersect.
// Two tensors over different storages never overlap.
func (t *Tensor) Overlaps(u *Tensor) bool {
	if t == nil || u == nil || t.storage == nil || t.storage != u.storage {
		return false
	}
	tlo, thi := t.span()
	ulo, uhi := u.span()
	if tlo == thi || ulo == uhi {
		return false
	}
	ts, us := t.dtype.Size(), u.dtype.Size()
	return tlo*ts < uhi*us && ulo*us < thi*ts
}
