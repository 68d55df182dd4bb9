package tensor_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

// Every kind of view shares storage with its parent: a write through the view is read
// back through the parent at the position the view maps it to.
func TestViewsShareStorage(t *testing.T) {
	cases := []struct {
		name   string
		view   func(x *tensor.Tensor) (*tensor.Tensor, error)
		at     []int // an index in the view
		parent []int // the same element in the parent [2, 3, 4]
	}{
		{"Permute", func(x *tensor.Tensor) (*tensor.Tensor, error) { return x.Permute(2, 0, 1) }, []int{3, 1, 2}, []int{1, 2, 3}},
		{"Transpose", func(x *tensor.Tensor) (*tensor.Tensor, error) { return x.Transpose(0, -1) }, []int{1, 2, 0}, []int{0, 2, 1}},
		{"Slice", func(x *tensor.Tensor) (*tensor.Tensor, error) { return x.Slice(2, 1, 3) }, []int{1, 0, 1}, []int{1, 0, 2}},
		{"Reshape", func(x *tensor.Tensor) (*tensor.Tensor, error) { return x.Reshape(6, 4) }, []int{4, 3}, []int{1, 1, 3}},
		{"Reshape -1", func(x *tensor.Tensor) (*tensor.Tensor, error) { return x.Reshape(-1) }, []int{23}, []int{1, 2, 3}},
		{"Reshape of a transpose (split)", func(x *tensor.Tensor) (*tensor.Tensor, error) {
			tr, err := x.Transpose(0, 2) // [4, 3, 2]
			if err != nil {
				return nil, err
			}
			return tr.Reshape(2, 2, 3, 2)
		}, []int{1, 0, 2, 1}, []int{1, 2, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := mustFrom(t, tensor.Float32, iota64(24), 2, 3, 4)
			v, err := c.view(x)
			require.NoError(t, err)
			assert.Same(t, x.Storage(), v.Storage())
			require.NoError(t, v.Set(-7, c.at...))
			got, err := x.At(c.parent...)
			require.NoError(t, err)
			assert.Equal(t, -7.0, got)
			n := 0
			for _, e := range values(t, x) {
				if e == -7 {
					n++
				}
			}
			assert.Equal(t, 1, n, "exactly one element changed")
		})
	}
}

func TestPermuteTransposeValues(t *testing.T) {
	x := mustFrom(t, tensor.Float64, iota64(6), 2, 3)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 2}, tr.Shape())
	assert.Equal(t, []int{1, 3}, tr.Strides())
	assert.Equal(t, []float64{1, 4, 2, 5, 3, 6}, values(t, tr))
	back, err := tr.Transpose(1, 0)
	require.NoError(t, err)
	assert.True(t, back.IsContiguous())
	assert.Equal(t, values(t, x), values(t, back))

	y := mustFrom(t, tensor.Float64, iota64(24), 2, 3, 4)
	p, err := y.Permute(1, 2, 0)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 4, 2}, p.Shape())
	v, err := p.At(2, 1, 1) // y[1, 2, 1] = 1·12 + 2·4 + 1 + 1
	require.NoError(t, err)
	assert.Equal(t, 22.0, v)
}

func TestSliceValues(t *testing.T) {
	x := mustFrom(t, tensor.Float64, iota64(12), 3, 4)
	s, err := x.Slice(1, 1, 3)
	require.NoError(t, err)
	assert.Equal(t, []int{3, 2}, s.Shape())
	assert.Equal(t, 1, s.Offset())
	assert.Equal(t, []float64{2, 3, 6, 7, 10, 11}, values(t, s))
	ss, err := s.Slice(0, 2, 3) // a slice of a slice
	require.NoError(t, err)
	assert.Equal(t, 9, ss.Offset())
	assert.Equal(t, []float64{10, 11}, values(t, ss))
	empty, err := x.Slice(0, 3, 3)
	require.NoError(t, err)
	assert.Equal(t, 0, empty.Len())
}

func TestReshape(t *testing.T) {
	x := mustFrom(t, tensor.Float64, iota64(24), 2, 3, 4)
	tr, err := x.Transpose(1, 2) // [2, 4, 3], strides [12, 1, 4]
	require.NoError(t, err)
	rows, err := x.Slice(1, 1, 3) // [2, 2, 4], strides [12, 4, 1], offset 4
	require.NoError(t, err)
	cols, err := x.Slice(2, 0, 2) // [2, 3, 2], strides [12, 4, 1]
	require.NoError(t, err)

	ok := []struct {
		name  string
		x     *tensor.Tensor
		shape []int
		want  []int // the resulting shape
	}{
		{"contiguous to flat", x, []int{24}, []int{24}},
		{"contiguous infer", x, []int{4, -1}, []int{4, 6}},
		{"contiguous add unit dims", x, []int{1, 2, 1, 12, 1}, []int{1, 2, 1, 12, 1}},
		{"transposed: split the leading dim", tr, []int{2, 1, 2, 2, 3}, []int{2, 1, 2, 2, 3}},
		{"transposed: split a transposed dim", tr, []int{2, 2, 2, 3}, []int{2, 2, 2, 3}},
		{"row slice: merge the contiguous inner block", rows, []int{2, 8}, []int{2, 8}},
		{"column slice: unit dims only", cols, []int{2, 3, 1, 2}, []int{2, 3, 1, 2}},
		{"empty", mustFrom(t, tensor.Float64, nil, 0, 3), []int{3, 0, 2}, []int{3, 0, 2}},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.x.Reshape(c.shape...)
			require.NoError(t, err)
			assert.Equal(t, c.want, r.Shape())
			assert.Same(t, c.x.Storage(), r.Storage(), "a reshape is a view")
			assert.Equal(t, values(t, c.x), values(t, r), "row-major order is kept")
		})
	}

	bad := []struct {
		name  string
		x     *tensor.Tensor
		shape []int
	}{
		{"element count", x, []int{5, 5}},
		{"two -1", x, []int{-1, -1}},
		{"negative", x, []int{-2, 12}},
		{"-1 does not divide", x, []int{5, -1}},
		{"-1 with a zero dim", x, []int{0, -1}},
		{"transposed: merge across the transpose", tr, []int{2, 12}},
		{"transposed: flatten", tr, []int{24}},
		{"column slice: merge over the gap", cols, []int{2, 6}},
		{"row slice: merge over the gap", rows, []int{16}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.x.Reshape(c.shape...)
			assert.Nil(t, r)
			assertKind(t, err, tensor.ErrShape, "Reshape")
		})
	}

	// A reshape that fails on a view works after Contiguous.
	ct, copied, err := tr.Contiguous()
	require.NoError(t, err)
	require.True(t, copied)
	flat, err := ct.Reshape(24)
	require.NoError(t, err)
	assert.Equal(t, values(t, tr), values(t, flat))

	// The caller's shape slice is not kept.
	shape := []int{6, 4}
	r, err := x.Reshape(shape...)
	require.NoError(t, err)
	shape[0] = 1
	assert.Equal(t, []int{6, 4}, r.Shape())
}

func TestViewErrors(t *testing.T) {
	x := mustFrom(t, tensor.Float32, iota64(24), 2, 3, 4)
	cases := []struct {
		name string
		call func() (*tensor.Tensor, error)
		op   string
	}{
		{"Permute too few axes", func() (*tensor.Tensor, error) { return x.Permute(0, 1) }, "Permute"},
		{"Permute repeated axis", func() (*tensor.Tensor, error) { return x.Permute(0, 1, 1) }, "Permute"},
		{"Permute axis out of range", func() (*tensor.Tensor, error) { return x.Permute(0, 1, 3) }, "Permute"},
		{"Permute negative axis", func() (*tensor.Tensor, error) { return x.Permute(-1, 0, 1) }, "Permute"},
		{"Transpose out of range", func() (*tensor.Tensor, error) { return x.Transpose(0, 3) }, "Transpose"},
		{"Transpose too negative", func() (*tensor.Tensor, error) { return x.Transpose(-4, 0) }, "Transpose"},
		{"Slice dim out of range", func() (*tensor.Tensor, error) { return x.Slice(3, 0, 1) }, "Slice"},
		{"Slice negative dim", func() (*tensor.Tensor, error) { return x.Slice(-1, 0, 1) }, "Slice"},
		{"Slice negative start", func() (*tensor.Tensor, error) { return x.Slice(1, -1, 2) }, "Slice"},
		{"Slice end before start", func() (*tensor.Tensor, error) { return x.Slice(1, 2, 1) }, "Slice"},
		{"Slice end past the dim", func() (*tensor.Tensor, error) { return x.Slice(2, 0, 5) }, "Slice"},
	}
	before := values(t, x)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.call()
			assert.Nil(t, v)
			assertKind(t, err, tensor.ErrShape, c.op)
		})
	}
	assert.Equal(t, []int{2, 3, 4}, x.Shape(), "a failed view leaves the parent alone")
	assert.Equal(t, []int{12, 4, 1}, x.Strides())
	assert.Equal(t, before, values(t, x))
}
