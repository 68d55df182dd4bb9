package tensor_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

// D2: element counts that fit an int but whose byte size does not (or exceeds what Go can
// allocate) are refused with ErrShape instead of wrapping to a small storage or panicking
// inside make.
func TestNewRefusesByteSizeOverflow(t *testing.T) {
	cases := []struct {
		dt    tensor.DType
		shape []int
	}{
		{tensor.Float32, []int{1 << 62}},                // 2^64 bytes wraps to 0
		{tensor.Float32, []int{1, 1, 1 << 31, 1 << 31}}, // likewise
		{tensor.Float64, []int{1 << 61}},                // 2^64 bytes
		{tensor.Float32, []int{1<<61 + 1}},              // wraps to 4 bytes
		{tensor.Float16, []int{1 << 62}},                // 2^63 bytes: past MaxInt
		{tensor.Float16, []int{1 << 50}},                // 2^51 bytes: fits an int, past any allocation
		{tensor.BFloat16, []int{math.MaxInt}},           // the element count alone fits
	}
	for _, c := range cases {
		x, err := tensor.New(c.dt, c.shape...)
		assertKind(t, err, tensor.ErrShape, "New")
		assert.Nil(t, x, "%v %v", c.dt, c.shape)
	}
	// Convert to a wider dtype goes through New and must refuse rather than panic.
	wide, err := tensor.FromStorage(tensor.NewHostStorage(2), tensor.Float16, []int{1 << 50}, []int{0}, 0)
	require.NoError(t, err)
	_, err = wide.Convert(tensor.Float64)
	assertKind(t, err, tensor.ErrShape, "New")

	// A broadcast view of 2^62 float32 elements is 2^64 bytes when contiguous: Bytes
	// saturates instead of wrapping to 0.
	b, err := tensor.FromStorage(tensor.NewHostStorage(4), tensor.Float32, []int{1 << 62}, []int{0}, 0)
	require.NoError(t, err)
	assert.Equal(t, math.MaxInt, b.Bytes())
	_, err = b.Clone()
	assertKind(t, err, tensor.ErrShape, "New")
}

// D3: a view whose span computation wraps is refused instead of reaching elements
// outside its storage.
func TestFromStorageRefusesWrappedSpans(t *testing.T) {
	base, err := tensor.FromFloat32s([]float32{0, 1, 2, 3}, 4) // 16 bytes
	require.NoError(t, err)
	st := base.Storage()
	cases := []struct {
		name    string
		shape   []int
		strides []int
		offset  int
	}{
		{"stride 2^62", []int{2}, []int{1 << 62}, 0},
		{"2^62 elements, stride 1", []int{1 << 62}, []int{1}, 0},
		{"offset 2^62", []int{1}, []int{1}, 1 << 62},
		{"offset 2^62+1", []int{2}, []int{1}, 1<<62 + 1},
		{"stride MaxInt", []int{2}, []int{math.MaxInt}, 0},
		{"negative stride MinInt", []int{2}, []int{math.MinInt}, 3},
		{"offset MaxInt", []int{1}, []int{1}, math.MaxInt},
		{"two strides summing past MaxInt", []int{2, 2}, []int{math.MaxInt / 2, math.MaxInt/2 + 2}, 0},
		{"negative offset", []int{1}, []int{1}, -1},
	}
	for _, c := range cases {
		x, err := tensor.FromStorage(st, tensor.Float32, c.shape, c.strides, c.offset)
		assertKind(t, err, tensor.ErrShape, "FromStorage")
		assert.Nil(t, x, c.name)
	}
	// The edges that are valid stay valid: the last element, a reversed view, stride 0.
	for _, c := range []struct {
		shape, strides []int
		offset         int
	}{{[]int{1}, []int{1}, 3}, {[]int{4}, []int{-1}, 3}, {[]int{1 << 40}, []int{0}, 2}, {[]int{0}, []int{math.MaxInt}, math.MaxInt}} {
		_, err := tensor.FromStorage(st, tensor.Float32, c.shape, c.strides, c.offset)
		assert.NoError(t, err, "%v %v %d", c.shape, c.strides, c.offset)
	}
}

// Reshape's element count is overflow-checked too: [2^62, 4] must not pass for an empty
// tensor because 2^64 wraps to 0.
func TestReshapeRefusesOverflowingShapes(t *testing.T) {
	x, err := tensor.New(tensor.Float32, 0)
	require.NoError(t, err)
	_, err = x.Reshape(1<<62, 4)
	assertKind(t, err, tensor.ErrShape, "Reshape")
	_, err = x.Reshape(1<<62, 4, -1)
	assertKind(t, err, tensor.ErrShape, "Reshape")
	y, err := tensor.New(tensor.Float32, 8)
	require.NoError(t, err)
	_, err = y.Reshape(-1, 1<<62, 4)
	assertKind(t, err, tensor.ErrShape, "Reshape")
}

// lyingStorage claims more bytes (Len) than it hands out (Bytes).
type lyingStorage struct{ b []byte }

func (s lyingStorage) Kind() tensor.StorageKind { return tensor.Host }
func (s lyingStorage) Len() int                 { return 1 << 20 }
func (s lyingStorage) Bytes() []byte            { return s.b }

// D12: a Storage whose Bytes() is shorter than its Len() gets ErrStorage from every read
// and write, never an index panic.
func TestShortStorageBytesAreRefused(t *testing.T) {
	x, err := tensor.FromStorage(lyingStorage{make([]byte, 16)}, tensor.Float32, []int{2, 5}, []int{5, 1}, 0)
	require.NoError(t, err, "Len() says the view fits")
	_, err = x.At(1, 4)
	assertKind(t, err, tensor.ErrStorage, "At")
	assertKind(t, x.Set(1, 1, 4), tensor.ErrStorage, "Set")
	_, err = x.Float32s()
	assertKind(t, err, tensor.ErrStorage, "Float32s")
	_, err = x.ToFloat64s()
	assertKind(t, err, tensor.ErrStorage, "ToFloat64s")
	_, err = x.ToFloat32s()
	assertKind(t, err, tensor.ErrStorage, "ToFloat32s")
	_, err = x.Convert(tensor.Float64)
	assertKind(t, err, tensor.ErrStorage, "Convert")
	_, err = x.Clone()
	assertKind(t, err, tensor.ErrStorage, "Convert")
	y, err := tensor.New(tensor.Float32, 2, 5)
	require.NoError(t, err)
	assertKind(t, x.CopyInto(y), tensor.ErrStorage, "CopyInto")
	assertKind(t, y.CopyInto(x), tensor.ErrStorage, "CopyInto")
	_, err = x.HostBytes()
	assertKind(t, err, tensor.ErrStorage, "HostBytes")
}
