package tensor_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

// iota64 returns 1, 2, ..., n: distinct nonzero values whose positions are easy to read.
func iota64(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i + 1)
	}
	return v
}

func mustFrom(t *testing.T, dt tensor.DType, v []float64, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return x
}

func values(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// assertKind checks that err is a *tensor.Error of the given kind, naming op.
func assertKind(t *testing.T, err error, kind error, op string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, kind)
	var te *tensor.Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, op, te.Op)
	assert.NotEmpty(t, te.Rule)
	assert.Contains(t, err.Error(), "tensor."+op)
}

func TestNew(t *testing.T) {
	x, err := tensor.New(tensor.Float16, 2, 3, 4)
	require.NoError(t, err)
	assert.Equal(t, tensor.Float16, x.DType())
	assert.Equal(t, []int{2, 3, 4}, x.Shape())
	assert.Equal(t, []int{12, 4, 1}, x.Strides())
	assert.Equal(t, 0, x.Offset())
	assert.Equal(t, 24, x.Len())
	assert.Equal(t, 48, x.Bytes())
	assert.Equal(t, 3, x.Rank())
	assert.Equal(t, 4, x.Dim(-1))
	assert.Equal(t, 2, x.Dim(0))
	assert.True(t, x.IsContiguous())
	assert.Equal(t, tensor.Host, x.Storage().Kind())
	assert.Equal(t, make([]float64, 24), values(t, x), "zeroed")

	// Shape and Strides hand out copies.
	s := x.Shape()
	s[0] = 99
	st := x.Strides()
	st[0] = 99
	assert.Equal(t, []int{2, 3, 4}, x.Shape())
	assert.Equal(t, []int{12, 4, 1}, x.Strides())

	// The caller's shape slice is not kept.
	shape := []int{2, 2}
	y, err := tensor.New(tensor.Float32, shape...)
	require.NoError(t, err)
	shape[0] = 5
	assert.Equal(t, []int{2, 2}, y.Shape())

	scalar, err := tensor.New(tensor.Float64)
	require.NoError(t, err)
	assert.Equal(t, 1, scalar.Len())
	assert.Equal(t, 0, scalar.Rank())

	empty, err := tensor.New(tensor.Float32, 3, 0)
	require.NoError(t, err)
	assert.Equal(t, 0, empty.Len())
	assert.True(t, empty.IsContiguous())
}

func TestConstructorErrors(t *testing.T) {
	cases := []struct {
		name string
		call func() (*tensor.Tensor, error)
		kind error
		op   string
	}{
		{"New unknown dtype", func() (*tensor.Tensor, error) { return tensor.New(0, 2) }, tensor.ErrDType, "New"},
		{"New negative dim", func() (*tensor.Tensor, error) { return tensor.New(tensor.Float32, 2, -1) }, tensor.ErrShape, "New"},
		{"New overflowing shape", func() (*tensor.Tensor, error) { return tensor.New(tensor.Float32, math.MaxInt/2, 3) }, tensor.ErrShape, "New"},
		{"FromFloat32s too few", func() (*tensor.Tensor, error) { return tensor.FromFloat32s([]float32{1, 2}, 3) }, tensor.ErrShape, "FromFloat32s"},
		{"FromFloat64s too many", func() (*tensor.Tensor, error) { return tensor.FromFloat64s(tensor.Float16, []float64{1, 2, 3}, 2) }, tensor.ErrShape, "FromFloat64s"},
		{"FromFloat64s unknown dtype", func() (*tensor.Tensor, error) { return tensor.FromFloat64s(9, []float64{1}, 1) }, tensor.ErrDType, "New"},
		{"FromStorage nil", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(nil, tensor.Float32, []int{1}, []int{1}, 0)
		}, tensor.ErrShape, "FromStorage"},
		{"FromStorage unknown dtype", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(tensor.NewHostStorage(8), 0, []int{1}, []int{1}, 0)
		}, tensor.ErrDType, "FromStorage"},
		{"FromStorage strides count", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(tensor.NewHostStorage(64), tensor.Float32, []int{2, 2}, []int{1}, 0)
		}, tensor.ErrShape, "FromStorage"},
		{"FromStorage past the end", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(tensor.NewHostStorage(16), tensor.Float32, []int{2, 2}, []int{2, 1}, 1)
		}, tensor.ErrShape, "FromStorage"},
		{"FromStorage before the start", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(tensor.NewHostStorage(16), tensor.Float32, []int{2}, []int{-1}, 0)
		}, tensor.ErrShape, "FromStorage"},
		{"FromStorage negative dim", func() (*tensor.Tensor, error) {
			return tensor.FromStorage(tensor.NewHostStorage(16), tensor.Float32, []int{-2}, []int{1}, 0)
		}, tensor.ErrShape, "FromStorage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := c.call()
			assert.Nil(t, x)
			assertKind(t, err, c.kind, c.op)
		})
	}
}

func TestFromStorageViews(t *testing.T) {
	st := tensor.NewHostStorage(6 * 4)
	// A reversed view of 4 elements starting at element 4: strides may be negative.
	rev, err := tensor.FromStorage(st, tensor.Float32, []int{4}, []int{-1}, 4)
	require.NoError(t, err)
	for i := range 4 {
		require.NoError(t, rev.Set(float64(i+1), i))
	}
	fwd, err := tensor.FromStorage(st, tensor.Float32, []int{6}, []int{1}, 0)
	require.NoError(t, err)
	assert.Equal(t, []float64{0, 4, 3, 2, 1, 0}, values(t, fwd))
	// A broadcast view (stride 0) of any size over one element.
	b, err := tensor.FromStorage(st, tensor.Float32, []int{1000, 1000}, []int{0, 0}, 2)
	require.NoError(t, err)
	v, err := b.At(999, 7)
	require.NoError(t, err)
	assert.Equal(t, 3.0, v)
	// An empty view needs no storage at all.
	_, err = tensor.FromStorage(tensor.NewHostStorage(0), tensor.Float32, []int{0, 5}, []int{5, 1}, 0)
	assert.NoError(t, err)
}

func TestAtSet(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Float64} {
		t.Run(dt.String(), func(t *testing.T) {
			x, err := tensor.New(dt, 2, 3)
			require.NoError(t, err)
			require.NoError(t, x.Set(1.5, 1, 2))
			require.NoError(t, x.Set(-0.25, 0, 0))
			v, err := x.At(1, 2)
			require.NoError(t, err)
			assert.Equal(t, 1.5, v)
			assert.Equal(t, []float64{-0.25, 0, 0, 0, 0, 1.5}, values(t, x))
		})
	}
	x, err := tensor.New(tensor.Float16, 2, 3)
	require.NoError(t, err)
	require.NoError(t, x.Set(65520, 0, 1), "Set rounds to the dtype")
	v, err := x.At(0, 1)
	require.NoError(t, err)
	assert.True(t, math.IsInf(v, 1))
	require.NoError(t, x.Set(1+math.Ldexp(1, -11), 0, 2)) // tie: to even
	v, err = x.At(0, 2)
	require.NoError(t, err)
	assert.Equal(t, 1.0, v)

	for _, idx := range [][]int{{2, 0}, {0, 3}, {-1, 0}, {0}, {0, 0, 0}} {
		_, err := x.At(idx...)
		assertKind(t, err, tensor.ErrShape, "At")
		assertKind(t, x.Set(1, idx...), tensor.ErrShape, "Set")
	}
	assert.Equal(t, []float64{0, math.Inf(1), 1, 0, 0, 0}, values(t, x), "failed Sets wrote nothing")
}

// deviceStorage stands for GPU-only memory: a size and no host bytes.
type deviceStorage struct{ n int }

func (deviceStorage) Kind() tensor.StorageKind { return tensor.Private }
func (s deviceStorage) Len() int               { return s.n }
func (deviceStorage) Bytes() []byte            { return nil }

func TestPrivateStorageIsNotReadable(t *testing.T) {
	x, err := tensor.FromStorage(deviceStorage{n: 64}, tensor.Float32, []int{4, 4}, []int{4, 1}, 0)
	require.NoError(t, err)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err, "views need no host access")
	_, err = x.At(0, 0)
	assertKind(t, err, tensor.ErrStorage, "At")
	assertKind(t, x.Set(1, 0, 0), tensor.ErrStorage, "Set")
	_, err = x.Float32s()
	assertKind(t, err, tensor.ErrStorage, "Float32s")
	_, err = x.ToFloat64s()
	assertKind(t, err, tensor.ErrStorage, "ToFloat64s")
	_, err = x.ToFloat32s()
	assertKind(t, err, tensor.ErrStorage, "ToFloat32s")
	_, err = x.Convert(tensor.Float16)
	assertKind(t, err, tensor.ErrStorage, "Convert")
	_, err = x.Clone()
	assertKind(t, err, tensor.ErrStorage, "Convert")
	same, copied, err := x.Contiguous()
	require.NoError(t, err, "a contiguous tensor is returned as is, wherever it lives")
	assert.Same(t, x, same)
	assert.False(t, copied)
	c, copied, err := tr.Contiguous()
	assertKind(t, err, tensor.ErrStorage, "Convert")
	assert.Nil(t, c)
	assert.False(t, copied)

	assert.True(t, tensor.Shared.HostVisible())
	assert.True(t, tensor.Managed.HostVisible())
	assert.True(t, tensor.Host.HostVisible())
	assert.False(t, tensor.Private.HostVisible())
	assert.Equal(t, "private", tensor.Private.String())
}

func TestTypedSlicesAlias(t *testing.T) {
	f32, err := tensor.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	require.NoError(t, err)
	s, err := f32.Float32s()
	require.NoError(t, err)
	s[4] = 50
	v, err := f32.At(1, 1)
	require.NoError(t, err)
	assert.Equal(t, 50.0, v, "Float32s aliases the storage")

	// A contiguous view with an offset starts at the offset.
	row, err := f32.Slice(0, 1, 2)
	require.NoError(t, err)
	rs, err := row.Float32s()
	require.NoError(t, err)
	assert.Equal(t, []float32{4, 50, 6}, rs)

	f64 := mustFrom(t, tensor.Float64, iota64(4), 2, 2)
	s64, err := f64.Float64s()
	require.NoError(t, err)
	s64[0] = -1
	assert.Equal(t, []float64{-1, 2, 3, 4}, values(t, f64))

	h := mustFrom(t, tensor.Float16, []float64{1, 2}, 2)
	u, err := h.Uint16s()
	require.NoError(t, err)
	assert.Equal(t, []uint16{0x3C00, 0x4000}, u)
	u[1] = 0xC000
	assert.Equal(t, []float64{1, -2}, values(t, h))
	bf := mustFrom(t, tensor.BFloat16, []float64{1}, 1)
	ub, err := bf.Uint16s()
	require.NoError(t, err)
	assert.Equal(t, []uint16{0x3F80}, ub)

	// Wrong dtype, or not contiguous.
	_, err = h.Float32s()
	assertKind(t, err, tensor.ErrDType, "Float32s")
	_, err = f32.Float64s()
	assertKind(t, err, tensor.ErrDType, "Float64s")
	_, err = f32.Uint16s()
	assertKind(t, err, tensor.ErrDType, "Uint16s")
	tr, err := f32.Transpose(0, 1)
	require.NoError(t, err)
	_, err = tr.Float32s()
	assertKind(t, err, tensor.ErrShape, "Float32s")
	ht, err := mustFrom(t, tensor.Float16, iota64(4), 2, 2).Transpose(0, 1)
	require.NoError(t, err)
	_, err = ht.Uint16s()
	assertKind(t, err, tensor.ErrShape, "Uint16s")
	ft, err := f64.Transpose(0, 1)
	require.NoError(t, err)
	_, err = ft.Float64s()
	assertKind(t, err, tensor.ErrShape, "Float64s")

	// Empty tensors give empty slices.
	e, err := tensor.New(tensor.Float32, 0)
	require.NoError(t, err)
	es, err := e.Float32s()
	require.NoError(t, err)
	assert.Empty(t, es)
}

func TestConvert(t *testing.T) {
	in := []float64{1, -2.5, 65504, 70000, 1 + math.Ldexp(1, -11), math.Ldexp(1, -25), 3.140625, math.Inf(-1)}
	x := mustFrom(t, tensor.Float64, in, 2, 4)
	before := bytes.Clone(x.Storage().Bytes())
	cases := []struct {
		dt   tensor.DType
		want []float64
	}{
		{tensor.Float32, []float64{1, -2.5, 65504, 70000, 1 + math.Ldexp(1, -11), math.Ldexp(1, -25), 3.140625, math.Inf(-1)}},
		{tensor.Float16, []float64{1, -2.5, 65504, math.Inf(1), 1, 0, 3.140625, math.Inf(-1)}},
		{tensor.BFloat16, []float64{1, -2.5, 65536, 70144, 1, math.Ldexp(1, -25), 3.140625, math.Inf(-1)}},
		{tensor.Float64, in},
	}
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			y, err := x.Convert(c.dt)
			require.NoError(t, err)
			assert.Equal(t, c.dt, y.DType())
			assert.Equal(t, []int{2, 4}, y.Shape())
			assert.True(t, y.IsContiguous())
			assert.Equal(t, c.want, values(t, y))
			assert.NotSame(t, x.Storage(), y.Storage(), "Convert always copies")
		})
	}
	assert.Equal(t, before, x.Storage().Bytes(), "the source is not modified")
	_, err := x.Convert(0)
	assertKind(t, err, tensor.ErrDType, "Convert")

	f32, err := x.ToFloat32s()
	require.NoError(t, err)
	assert.Equal(t, float32(70000), f32[3])
	assert.Equal(t, float32(math.Inf(-1)), f32[7])
}

func TestCloneAndContiguous(t *testing.T) {
	x := mustFrom(t, tensor.Float32, iota64(12), 3, 4)

	// Clone always copies, even a contiguous tensor.
	c, err := x.Clone()
	require.NoError(t, err)
	assert.NotSame(t, x.Storage(), c.Storage())
	assert.Equal(t, values(t, x), values(t, c))
	require.NoError(t, c.Set(-1, 0, 0))
	v, err := x.At(0, 0)
	require.NoError(t, err)
	assert.Equal(t, 1.0, v, "writes to a clone do not reach the original")

	// Contiguous returns the very same tensor when it can.
	same, copied, err := x.Contiguous()
	require.NoError(t, err)
	assert.Same(t, x, same)
	assert.False(t, copied)
	row, err := x.Slice(0, 1, 3) // contiguous, with an offset
	require.NoError(t, err)
	same, copied, err = row.Contiguous()
	require.NoError(t, err)
	assert.Same(t, row, same)
	assert.False(t, copied)

	// ... and copies when it must.
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	require.False(t, tr.IsContiguous())
	ct, copied, err := tr.Contiguous()
	require.NoError(t, err)
	assert.True(t, copied)
	assert.True(t, ct.IsContiguous())
	assert.Equal(t, 0, ct.Offset())
	assert.Equal(t, []int{4, 3}, ct.Shape())
	assert.Equal(t, values(t, tr), values(t, ct))
	assert.Equal(t, []float64{1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12}, values(t, ct))

	cols, err := x.Slice(1, 1, 3) // [3, 2] with row stride 4: not contiguous
	require.NoError(t, err)
	assert.False(t, cols.IsContiguous())
	cc, copied, err := cols.Contiguous()
	require.NoError(t, err)
	assert.True(t, copied)
	assert.Equal(t, []float64{2, 3, 6, 7, 10, 11}, values(t, cc))
}

func TestIsContiguous(t *testing.T) {
	st := tensor.NewHostStorage(1024)
	cases := []struct {
		name    string
		shape   []int
		strides []int
		want    bool
	}{
		{"row-major", []int{2, 3}, []int{3, 1}, true},
		{"size-1 dims take any stride", []int{2, 1, 3}, []int{3, 100, 1}, true},
		{"transposed", []int{3, 2}, []int{1, 3}, false},
		{"gapped rows", []int{2, 3}, []int{4, 1}, false},
		{"broadcast", []int{4, 3}, []int{0, 1}, false},
		{"empty is contiguous", []int{0, 3}, []int{7, 2}, true},
		{"scalar", []int{}, []int{}, true},
	}
	for _, c := range cases {
		x, err := tensor.FromStorage(st, tensor.Float32, c.shape, c.strides, 0)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, x.IsContiguous(), c.name)
	}
}

func TestErrorKindsAreDistinct(t *testing.T) {
	_, err := tensor.New(0)
	assert.ErrorIs(t, err, tensor.ErrDType)
	assert.False(t, errors.Is(err, tensor.ErrShape))
	assert.False(t, errors.Is(err, tensor.ErrStorage))
}
