//go:build darwin && !ios && cgo

package metalrt

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run on a Mac with a Metal device (the macOS CI workflow); they
// skip when MTLCreateSystemDefaultDevice returns nil.

func putFloats(b []byte, xs []float32) {
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
}

func getFloats(b []byte, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func addParams(n uint32, add float32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, n)
	binary.LittleEndian.PutUint32(b[4:], math.Float32bits(add))
	return b
}

func TestDevice(t *testing.T) {
	d := testDevice(t)
	t.Logf("device %q, families %v, max threadgroup memory %d, unified %v", d.Name(), d.Families(), d.MaxThreadgroupMemory(), d.HasUnifiedMemory())
	assert.NotEmpty(t, d.Name())
	assert.Positive(t, d.MaxThreadgroupMemory())
	names, err := DeviceNames()
	require.NoError(t, err)
	assert.Contains(t, names, d.Name())
	same, err := Open(d.Name())
	require.NoError(t, err)
	assert.Equal(t, d.Name(), same.Name())
	require.NoError(t, same.Close())
	_, err = Open("no such GPU")
	assert.ErrorIs(t, err, ErrNoDevice)
}

func TestDispatchSharedBuffer(t *testing.T) {
	d := testDevice(t)
	p := testPipelineNamed(t, d, "add_scalar")
	assert.Positive(t, p.MaxTotalThreadsPerThreadgroup())
	assert.Positive(t, p.ThreadExecutionWidth())
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()

	const n = 100
	x, err := d.NewBuffer(4*n, Shared)
	require.NoError(t, err)
	defer x.Close()
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i)
	}
	putFloats(x.Bytes(), in)
	err = q.Run(Dispatch{
		Pipeline:    p,
		Grid:        Size{4, 1, 1}, // 128 threads, 28 past the end
		Group:       Size{32, 1, 1},
		Buffers:     []BufferArg{{Index: 0, Buffer: x}},
		Bytes:       []BytesArg{{Index: 1, Data: addParams(n, 1.5)}},
		Threadgroup: []ThreadgroupArg{{Index: 0, Length: 32 * 4}},
	})
	require.NoError(t, err)
	got := getFloats(x.Bytes(), n)
	for i := range got {
		assert.Equal(t, in[i]+1.5, got[i], "element %d", i)
	}
}

func TestPrivateBufferBlitRoundTrip(t *testing.T) {
	d := testDevice(t)
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	twice := testPipelineNamed(t, d, "twice")

	const n = 64
	src, err := d.NewBuffer(4*n, Shared)
	require.NoError(t, err)
	defer src.Close()
	priv, err := d.NewBuffer(4*n, Private)
	require.NoError(t, err)
	defer priv.Close()
	privOut, err := d.NewBuffer(4*n, Private)
	require.NoError(t, err)
	defer privOut.Close()
	dst, err := d.NewBuffer(4*n, Shared)
	require.NoError(t, err)
	defer dst.Close()
	assert.Nil(t, priv.Bytes(), "private memory has no CPU view")

	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i) - 10
	}
	putFloats(src.Bytes(), in)
	err = q.Run(
		Copy{Src: src, Dst: priv, Size: 4 * n},
		Dispatch{Pipeline: twice, Grid: Size{n / 32, 1, 1}, Group: Size{32, 1, 1},
			Buffers: []BufferArg{{Index: 0, Buffer: priv}, {Index: 1, Buffer: privOut}}},
		Copy{Src: privOut, Dst: dst, Size: 4 * n},
	)
	require.NoError(t, err)
	got := getFloats(dst.Bytes(), n)
	for i := range got {
		assert.Equal(t, 2*in[i]+0.5, got[i], "element %d (MACRO_OFFSET is 0.5f)", i)
	}
}

func TestManagedBuffer(t *testing.T) {
	d := testDevice(t)
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	p := testPipelineNamed(t, d, "add_scalar")
	const n = 32
	x, err := d.NewBuffer(4*n, Managed)
	require.NoError(t, err)
	defer x.Close()
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(3 * i)
	}
	putFloats(x.Bytes(), in)
	require.NoError(t, x.DidModify(0, 4*n))
	require.NoError(t, q.Run(
		Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{n, 1, 1},
			Buffers:     []BufferArg{{Index: 0, Buffer: x}},
			Bytes:       []BytesArg{{Index: 1, Data: addParams(n, -1)}},
			Threadgroup: []ThreadgroupArg{{Index: 0, Length: n * 4}}},
		Synchronize{Buffer: x},
	))
	got := getFloats(x.Bytes(), n)
	for i := range got {
		assert.Equal(t, in[i]-1, got[i], "element %d", i)
	}
	assert.ErrorIs(t, x.DidModify(0, 4*n+4), ErrInvalid)
}

func TestCompileErrors(t *testing.T) {
	d := testDevice(t)
	_, err := d.NewLibrary("kernel void broken(device float *x [[buffer(0)]]) { x[0] = undefined_name; }", CompileOptions{})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCompile)
	assert.Contains(t, err.Error(), "undefined_name", "the compiler's message comes through")

	lib := testLibrary(t, d)
	_, err = lib.Function("no_such_kernel")
	assert.ErrorIs(t, err, ErrFunctionNotFound)

	_, err = d.NewLibraryFromData([]byte("not a metallib"))
	assert.ErrorIs(t, err, ErrCompile)

	_, err = d.NewLibrary("kernel void k() {}", CompileOptions{Language: LanguageVersion{Major: -1}})
	assert.ErrorIs(t, err, ErrInvalid, "checked in Go, before Metal sees it")
	_, err = d.NewLibrary("kernel void k() {}", CompileOptions{Math: MathMode(9)})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestRunRejectsBeforeEncoding(t *testing.T) {
	d := testDevice(t)
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	p := testPipelineNamed(t, d, "add_scalar")
	x, err := d.NewBuffer(64, Shared)
	require.NoError(t, err)
	defer x.Close()
	err = q.Run(Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{p.MaxTotalThreadsPerThreadgroup() + 32, 1, 1},
		Buffers: []BufferArg{{Index: 0, Buffer: x}}})
	assert.ErrorIs(t, err, ErrInvalid)
	assert.True(t, strings.Contains(err.Error(), "allows at most"), err.Error())
}

func TestCloseIsIdempotentAndNilSafe(t *testing.T) {
	d := testDevice(t)
	b, err := d.NewBuffer(16, Shared)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	assert.Nil(t, b.Bytes())
	assert.Zero(t, b.Len())
	assert.ErrorIs(t, b.DidModify(0, 0), ErrClosed)

	q, err := d.NewQueue()
	require.NoError(t, err)
	require.NoError(t, q.Close())
	assert.ErrorIs(t, q.Run(), ErrClosed)

	var nb *Buffer
	var nq *Queue
	var nl *Library
	var nf *Function
	var np *Pipeline
	var nd *Device
	for _, c := range []interface{ Close() error }{nb, nq, nl, nf, np, nd} {
		assert.NoError(t, c.Close())
	}
	other, err := OpenDefault()
	require.NoError(t, err)
	require.NoError(t, other.Close())
	_, err = other.NewBuffer(16, Shared)
	assert.ErrorIs(t, err, ErrClosed)
}
