package allocator_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/tensor"
)

// memory is a test storage of any kind; private memory has no host bytes.
type memory struct {
	kind tensor.StorageKind
	b    []byte
	n    int
}

func (m *memory) Kind() tensor.StorageKind { return m.kind }
func (m *memory) Len() int                 { return m.n }
func (m *memory) Bytes() []byte {
	if !m.kind.HostVisible() {
		return nil
	}
	return m.b
}

// sharedStrategy allocates host-visible "device" memory, as Metal's shared mode will.
type sharedStrategy struct{ allocs int }

func (*sharedStrategy) Kind() tensor.StorageKind { return tensor.Shared }
func (s *sharedStrategy) Alloc(n int) (tensor.Storage, error) {
	s.allocs++
	return &memory{kind: tensor.Shared, b: make([]byte, n), n: n}, nil
}

// failingStrategy cannot allocate.
type failingStrategy struct{}

func (failingStrategy) Kind() tensor.StorageKind { return tensor.Shared }
func (failingStrategy) Alloc(int) (tensor.Storage, error) {
	return nil, errors.New("out of device memory")
}

func seq(t *testing.T, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, s := range shape {
		n *= s
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i) + 0.5
	}
	x, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return x
}

func vals(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// onStorage moves x's bytes into a storage of the given kind (same layout).
func onStorage(t *testing.T, x *tensor.Tensor, kind tensor.StorageKind) *tensor.Tensor {
	t.Helper()
	b := bytes.Clone(x.Storage().Bytes())
	y, err := tensor.FromStorage(&memory{kind: kind, b: b, n: len(b)}, x.DType(), x.Shape(), x.Strides(), x.Offset())
	require.NoError(t, err)
	return y
}

func TestHostStrategy(t *testing.T) {
	h := allocator.NewHost()
	assert.Equal(t, tensor.Host, h.Kind())
	s, err := h.Alloc(12)
	require.NoError(t, err)
	assert.Equal(t, tensor.Host, s.Kind())
	assert.Equal(t, 12, s.Len())
	assert.Equal(t, make([]byte, 12), s.Bytes())
	_, err = h.Alloc(-1)
	assert.Error(t, err)
}

func TestNeedsFits(t *testing.T) {
	x := seq(t, tensor.Float32, 2, 3)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	cases := []struct {
		name  string
		x     *tensor.Tensor
		needs allocator.Needs
		want  bool
	}{
		{"no needs, host", x, allocator.Needs{}, true},
		{"no needs, transposed", tr, allocator.Needs{}, true},
		{"no needs, private", onStorage(t, x, tensor.Private), allocator.Needs{}, false},
		{"no needs, shared", onStorage(t, x, tensor.Shared), allocator.Needs{}, true},
		{"dtype matches", x, allocator.Needs{DType: tensor.Float32}, true},
		{"dtype differs", x, allocator.Needs{DType: tensor.Float16}, false},
		{"contiguous", x, allocator.Needs{Contiguous: true}, true},
		{"not contiguous", tr, allocator.Needs{Contiguous: true}, false},
		{"storage listed", onStorage(t, x, tensor.Shared), allocator.Needs{Storage: []tensor.StorageKind{tensor.Private, tensor.Shared}}, true},
		{"storage not listed", x, allocator.Needs{Storage: []tensor.StorageKind{tensor.Shared}}, false},
		{"private listed", onStorage(t, x, tensor.Private), allocator.Needs{Storage: []tensor.StorageKind{tensor.Private}}, true},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, c.needs.Fits(c.x), c.name)
	}
}

// A tensor that fits comes back as the very same tensor, and nothing is counted.
func TestPrepareReturnsFittingTensorAsIs(t *testing.T) {
	p := allocator.NewPreparer(allocator.NewHost())
	x := seq(t, tensor.Float16, 4, 5)
	row, err := x.Slice(0, 1, 3)
	require.NoError(t, err)
	shared := onStorage(t, x, tensor.Shared)
	for _, c := range []struct {
		name  string
		x     *tensor.Tensor
		needs allocator.Needs
	}{
		{"no needs", x, allocator.Needs{}},
		{"everything matches", x, allocator.Needs{DType: tensor.Float16, Contiguous: true, Storage: []tensor.StorageKind{tensor.Host}}},
		{"contiguous with an offset", row, allocator.Needs{Contiguous: true}},
		{"shared memory accepted", shared, allocator.Needs{Storage: []tensor.StorageKind{tensor.Shared}}},
	} {
		got, err := p.Prepare(c.x, c.needs)
		require.NoError(t, err, c.name)
		assert.Same(t, c.x, got, c.name)
	}
	copies, n := p.Counts()
	assert.Zero(t, copies)
	assert.Zero(t, n)
}

// A tensor that does not fit is copied, the copy fits, the values survive (rounded to a
// new dtype), the copy is counted with its bytes, and the input is untouched.
func TestPrepareCopiesAndCounts(t *testing.T) {
	x := seq(t, tensor.Float32, 3, 4)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	cases := []struct {
		name     string
		x        *tensor.Tensor
		needs    allocator.Needs
		strategy allocator.Strategy
		kind     tensor.StorageKind
		bytes    int64
	}{
		{"dtype", x, allocator.Needs{DType: tensor.Float16}, allocator.NewHost(), tensor.Host, 24},
		{"contiguity", tr, allocator.Needs{Contiguous: true}, allocator.NewHost(), tensor.Host, 48},
		{"dtype and contiguity", tr, allocator.Needs{DType: tensor.BFloat16, Contiguous: true}, allocator.NewHost(), tensor.Host, 24},
		{"storage: host to shared", x, allocator.Needs{Storage: []tensor.StorageKind{tensor.Shared}}, &sharedStrategy{}, tensor.Shared, 48},
		{"storage: shared to host", onStorage(t, x, tensor.Shared), allocator.Needs{Storage: []tensor.StorageKind{tensor.Host}}, &sharedStrategy{}, tensor.Host, 48},
		{"all three", tr, allocator.Needs{DType: tensor.Float64, Contiguous: true, Storage: []tensor.StorageKind{tensor.Shared}}, &sharedStrategy{}, tensor.Shared, 96},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := allocator.NewPreparer(c.strategy)
			before := bytes.Clone(c.x.Storage().Bytes())
			want := vals(t, c.x)

			got, err := p.Prepare(c.x, c.needs)
			require.NoError(t, err)
			assert.NotSame(t, c.x, got)
			assert.True(t, c.needs.Fits(got), "the copy fits")
			assert.True(t, got.IsContiguous())
			assert.Equal(t, c.kind, got.Storage().Kind())
			assert.Equal(t, c.x.Shape(), got.Shape())
			assert.Equal(t, want, vals(t, got), "these values are exact in every dtype")
			copies, n := p.Counts()
			assert.Equal(t, int64(1), copies)
			assert.Equal(t, c.bytes, n)
			assert.Equal(t, before, c.x.Storage().Bytes(), "the input is not modified")

			// Preparing the result again costs nothing.
			again, err := p.Prepare(got, c.needs)
			require.NoError(t, err)
			assert.Same(t, got, again)
			copies, _ = p.Counts()
			assert.Equal(t, int64(1), copies)
		})
	}
}

func TestPrepareFailures(t *testing.T) {
	x := seq(t, tensor.Float32, 2, 2)
	private := onStorage(t, x, tensor.Private)
	cases := []struct {
		name     string
		x        *tensor.Tensor
		needs    allocator.Needs
		strategy allocator.Strategy
	}{
		{"nil tensor", nil, allocator.Needs{}, allocator.NewHost()},
		{"private source", private, allocator.Needs{}, allocator.NewHost()},
		{"private source, other dtype", private, allocator.Needs{DType: tensor.Float16, Storage: []tensor.StorageKind{tensor.Private}}, allocator.NewHost()},
		{"strategy cannot give the storage", x, allocator.Needs{Storage: []tensor.StorageKind{tensor.Shared}}, allocator.NewHost()},
		{"strategy gives storage the CPU cannot fill", x, allocator.Needs{Storage: []tensor.StorageKind{tensor.Private}}, privateStrategy{}},
		{"strategy fails", x, allocator.Needs{Storage: []tensor.StorageKind{tensor.Shared}}, failingStrategy{}},
		{"unknown dtype", x, allocator.Needs{DType: 42}, allocator.NewHost()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := allocator.NewPreparer(c.strategy)
			var got *tensor.Tensor
			var err error
			require.NotPanics(t, func() { got, err = p.Prepare(c.x, c.needs) })
			assert.Nil(t, got)
			assert.ErrorIs(t, err, allocator.ErrCannotPrepare)
			copies, n := p.Counts()
			assert.Zero(t, copies, "a failure counts nothing")
			assert.Zero(t, n)
		})
	}
}

// privateStrategy hands out GPU-only memory.
type privateStrategy struct{}

func (privateStrategy) Kind() tensor.StorageKind { return tensor.Private }
func (privateStrategy) Alloc(n int) (tensor.Storage, error) {
	return &memory{kind: tensor.Private, n: n}, nil
}

// The counters add up under concurrent use (run with -race).
func TestPrepareConcurrent(t *testing.T) {
	p := allocator.NewPreparer(allocator.NewHost())
	x := seq(t, tensor.Float32, 8, 8)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := p.Prepare(tr, allocator.Needs{Contiguous: true}); err != nil {
					t.Error(err)
				}
				if _, err := p.Prepare(x, allocator.Needs{Contiguous: true}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	copies, n := p.Counts()
	assert.Equal(t, int64(workers*each), copies)
	assert.Equal(t, int64(workers*each*8*8*4), n)
}
