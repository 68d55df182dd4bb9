package allocator

import (
	"fmt"
	"io"

	"github.com/orchard-ml/orchard/go/tensor"
)

// span returns the element range [lo, hi) a view addresses.
func span(t *tensor.Tensor) (lo, hi int) {
	lo, hi = t.Offset(), t.Offset()+1
	sh, st := t.Shape(), t.Strides()
	for i := range sh {
		if sh[i] <= 1 {
			continue
		}
		if d := (sh[i] - 1) * st[i]; d < 0 {
			lo += d
		} else {
			hi += d
		}
	}
	return lo, hi
}

// HostView returns t itself when the CPU can address its bytes, and otherwise a host
// tensor with the same shape and strides over a copy of the bytes the view spans, read
// through the storage's io.ReaderAt (Metal private memory: a staging buffer and a blit,
// counted by the storage). The second result reports whether a copy was made.
func HostView(t *tensor.Tensor) (*tensor.Tensor, bool, error) {
	if t == nil {
		return nil, false, fmt.Errorf("%w: nil tensor", ErrCannotPrepare)
	}
	st := t.Storage()
	if st.Kind().HostVisible() && st.Bytes() != nil {
		return t, false, nil
	}
	r, ok := st.(io.ReaderAt)
	if !ok {
		return nil, false, fmt.Errorf("%w: source is in %v storage (%T), which the CPU can neither read nor copy from", ErrCannotPrepare, st.Kind(), st)
	}
	size := t.DType().Size()
	if t.Len() == 0 {
		out, err := tensor.New(t.DType(), t.Shape()...)
		return out, true, err
	}
	lo, hi := span(t)
	host := tensor.NewHostStorage((hi - lo) * size)
	if _, err := r.ReadAt(host.Bytes(), int64(lo)*int64(size)); err != nil {
		return nil, false, fmt.Errorf("%w: reading %v storage: %v", ErrCannotPrepare, st.Kind(), err)
	}
	out, err := tensor.FromStorage(host, t.DType(), t.Shape(), t.Strides(), t.Offset()-lo)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
	}
	return out, true, nil
}

// Place returns a contiguous copy of t in storage from s: for storage the CPU addresses,
// written directly; otherwise (Metal private memory) through the storage's io.WriterAt.
// It is how a caller puts host data into device memory of a chosen mode.
func Place(s Strategy, t *tensor.Tensor) (*tensor.Tensor, error) {
	if s == nil || t == nil {
		return nil, fmt.Errorf("%w: nil strategy or tensor", ErrCannotPrepare)
	}
	src, _, err := HostView(t)
	if err != nil {
		return nil, err
	}
	host, _, err := src.Contiguous()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
	}
	data := host.Storage().Bytes()[host.Offset()*host.DType().Size():][:host.Bytes()]
	st, err := s.Alloc(len(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
	}
	if b := st.Bytes(); b != nil {
		copy(b, data)
		if m, ok := st.(*MetalStorage); ok {
			if err := m.DidModify(0, len(data)); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
			}
		}
	} else if w, ok := st.(io.WriterAt); ok {
		if _, err := w.WriteAt(data, 0); err != nil {
			return nil, fmt.Errorf("%w: writing %v storage: %v", ErrCannotPrepare, st.Kind(), err)
		}
	} else {
		return nil, fmt.Errorf("%w: %v storage (%T) can be neither addressed nor written by the CPU", ErrCannotPrepare, st.Kind(), st)
	}
	return tensor.FromStorage(st, t.DType(), t.Shape(), tensor.ContiguousStrides(t.Shape()), 0)
}
