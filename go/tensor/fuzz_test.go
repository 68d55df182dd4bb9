package tensor_test

import (
	"errors"
	"testing"

	"github.com/orchard-ml/orchard/go/tensor"
)

// FuzzViews builds views over a small storage from arbitrary shapes, strides, offsets and
// dtypes, then slices, permutes and reshapes them. A view is either refused with a typed
// *tensor.Error, or every element it reaches lies inside the storage: reading all of them
// (and those of each derived view) never panics and agrees with At. `go test` runs the
// seeds; `go test -fuzz FuzzViews ./go/tensor` explores further.
func FuzzViews(f *testing.F) {
	f.Add(uint8(0), 2, 3, 3, 1, 0, uint8(0), 1, 2, 6)
	f.Add(uint8(1), 4, 1, -1, 0, 3, uint8(1), 0, 1, -1)
	f.Add(uint8(2), 1<<62, 2, 1, 1<<62, 0, uint8(2), 0, 1, 4)
	f.Add(uint8(3), 2, 2, -1<<63, 1, 1<<62+1, uint8(3), 1, 0, 2)
	f.Add(uint8(0), 1<<31, 1<<31, 0, 0, 5, uint8(0), 0, 1<<30, 1<<33)
	f.Fuzz(func(t *testing.T, dt uint8, d0, d1, s0, s1, offset int, op uint8, a, b, c int) {
		st := tensor.NewHostStorage(64)
		for i := range st.Bytes() {
			st.Bytes()[i] = byte(i*37 + 11)
		}
		dtype := []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Float64}[dt%4]
		x, err := tensor.FromStorage(st, dtype, []int{d0, d1}, []int{s0, s1}, offset)
		if err != nil {
			requireTyped(t, err)
			return
		}
		readAll(t, x)
		var v *tensor.Tensor
		switch op % 4 {
		case 0:
			v, err = x.Slice(a&1, b, c)
		case 1:
			v, err = x.Transpose(a, b)
		case 2:
			v, err = x.Reshape(b, c)
		case 3:
			v, err = x.Reshape(-1, c)
		}
		if err != nil {
			requireTyped(t, err)
			return
		}
		readAll(t, v)
	})
}

func requireTyped(t *testing.T, err error) {
	t.Helper()
	var te *tensor.Error
	if !errors.As(err, &te) || !(errors.Is(err, tensor.ErrShape) || errors.Is(err, tensor.ErrDType) || errors.Is(err, tensor.ErrStorage)) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
}

// readAll reads every element of a 2-D view (up to a bound: stride-0 views can be huge)
// through ToFloat64s-equivalent paths and At.
func readAll(t *testing.T, x *tensor.Tensor) {
	t.Helper()
	if x.Len() > 1<<12 {
		// Too many to read one by one: read the corners.
		s := x.Shape()
		for _, i := range []int{0, s[0] - 1} {
			for _, j := range []int{0, s[1] - 1} {
				if _, err := x.At(i, j); err != nil {
					t.Fatalf("At(%d, %d) of a valid view: %v", i, j, err)
				}
			}
		}
		return
	}
	all, err := x.ToFloat64s()
	if err != nil {
		t.Fatalf("ToFloat64s of a valid view: %v", err)
	}
	s := x.Shape()
	if x.Len() == 0 {
		s[0] = 0 // [huge, 0] is empty: nothing to visit
	}
	k := 0
	for i := 0; i < s[0]; i++ {
		for j := 0; j < s[1]; j++ {
			v, err := x.At(i, j)
			if err != nil {
				t.Fatalf("At(%d, %d): %v", i, j, err)
			}
			if v != all[k] && v == v {
				t.Fatalf("At(%d, %d) = %v, ToFloat64s has %v", i, j, v, all[k])
			}
			k++
		}
	}
	if _, err := x.Clone(); err != nil {
		t.Fatalf("Clone of a valid view: %v", err)
	}
}
