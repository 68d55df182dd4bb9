package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func filled(t *testing.T, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.New(dt, shape...)
	require.NoError(t, err)
	n := x.Len()
	v := make([]float64, n)
	for i := range v {
		v[i] = math.Sin(float64(i)+0.5) * 3 // not zeros, exactly representable after rounding checks below
	}
	y, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return y
}

func f64(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// Every dtype round-trips bit for bit, with shapes (scalar, empty, strided view) and metadata.
func TestRoundTrip(t *testing.T) {
	a := filled(t, tensor.Float32, 3, 4)
	at, err := a.Transpose(0, 1) // a non-contiguous view is written in row-major order
	require.NoError(t, err)
	in := []Named{
		{"a.T", at},
		{"h", filled(t, tensor.Float16, 5)},
		{"b", filled(t, tensor.BFloat16, 2, 2, 2)},
		{"d", filled(t, tensor.Float64, 7)},
		{"scalar", filled(t, tensor.Float32)},
		{"empty", filled(t, tensor.Float32, 0, 3)},
	}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, in, map[string]string{"format": "pt", "step": "3"}))
	hl := binary.LittleEndian.Uint64(buf.Bytes())
	assert.Zero(t, hl%8, "header padded to 8 bytes")

	f, err := Parse(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, []string{"a.T", "h", "b", "d", "scalar", "empty"}, f.Names())
	assert.Equal(t, map[string]string{"format": "pt", "step": "3"}, f.Metadata())
	for _, nt := range in {
		got, err := f.Tensor(nt.Name)
		require.NoError(t, err, nt.Name)
		assert.Equal(t, nt.Tensor.DType(), got.DType(), nt.Name)
		assert.Equal(t, nt.Tensor.Shape(), got.Shape(), nt.Name)
		assert.Equal(t, f64(t, nt.Tensor), f64(t, got), nt.Name)
	}
	info, ok := f.Info("b")
	require.True(t, ok)
	assert.Equal(t, "BF16", info.DType)
	assert.Equal(t, int64(16), info.End-info.Begin)

	// Explicit conversion on Load; the shape is checked.
	x, err := f.Load("d", tensor.Float32, 7)
	require.NoError(t, err)
	assert.Equal(t, tensor.Float32, x.DType())
	for i, v := range f64(t, in[3].Tensor) {
		assert.Equal(t, float64(float32(v)), f64(t, x)[i])
	}
	_, err = f.Load("d", tensor.Float32, 7, 1)
	assertErr(t, err, ErrShape, "d")
	_, err = f.Load("nope", tensor.Float32, 1)
	assertErr(t, err, ErrMissing, "nope")

	// Through a file on disk.
	path := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, WriteFile(path, in, nil))
	g, err := Open(path)
	require.NoError(t, err)
	defer func() { assert.NoError(t, g.Close()) }()
	hx, err := g.Tensor("h")
	require.NoError(t, err)
	assert.Equal(t, f64(t, in[1].Tensor), f64(t, hx))
	assert.Nil(t, g.Metadata())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestWriteRejects(t *testing.T) {
	x := filled(t, tensor.Float32, 2)
	for _, tc := range []struct {
		name string
		in   []Named
	}{
		{"empty name", []Named{{"", x}}},
		{"metadata name", []Named{{"__metadata__", x}}},
		{"duplicate", []Named{{"a", x}, {"a", x}}},
		{"nil tensor", []Named{{"a", nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Error(t, Write(&bytes.Buffer{}, tc.in, nil))
		})
	}
}

func assertErr(t *testing.T, err error, kind error, tensorName string) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, kind)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, tensorName, e.Tensor, "error names the tensor: %v", err)
}

// file assembles a file from a header string and a data section.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// Broken files: each gets a typed error naming the tensor where there is one, never a panic.
func TestMalformedFiles(t *testing.T) {
	eight := make([]byte, 8)
	huge := binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes+1)
	lying := binary.LittleEndian.AppendUint64(nil, 1<<62)
	tests := []struct {
		name   string
		file   []byte
		kind   error
		tensor string
	}{
		{"empty", nil, ErrTruncated, ""},
		{"short length", []byte{1, 2, 3}, ErrTruncated, ""},
		{"oversized header", append(huge, `{}`...), ErrHeaderTooLarge, ""},
		{"header past the end", append(lying, `{}`...), ErrHeaderTooLarge, ""},
		{"header longer than the file", file(`{"a":1}`, nil)[:10], ErrTruncated, ""},
		{"not json", file(`{"a":`, nil), ErrMalformed, "a"},
		{"not an object", file(`[1, 2]`, nil), ErrMalformed, ""},
		{"not utf-8", file("{\"\xff\":1}", nil), ErrMalformed, ""},
		{"trailing json", file(`{} {}`, nil), ErrMalformed, ""},
		{"entry not an object", file(`{"w":3}`, nil), ErrMalformed, "w"},
		{"missing offsets", file(`{"w":{"dtype":"F32","shape":[2]}}`, eight), ErrMalformed, "w"},
		{"unknown dtype", file(`{"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"negative dim", file(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"fractional dim", file(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"shape overflow", file(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"bytes overflow", file(`{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"wrong byte count", file(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), ErrMalformed, "w"},
		{"offsets reversed", file(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), ErrMalformed, "w"},
		{"duplicate name", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), ErrMalformed, "w"},
		{"gap", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), ErrMalformed, "w"},
		{"overlap", file(`{"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), ErrMalformed, "w"},
		{"truncated data", file(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), ErrTruncated, "w"},
		{"extra data", file(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), ErrMalformed, ""},
		{"bad metadata", file(`{"__metadata__":{"a":1}}`, nil), ErrMalformed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.file)
			assert.Nil(t, f)
			assertErr(t, err, tc.kind, tc.tensor)
		})
	}
	// A dtype Orchard does not compute in is listed but not read.
	f, err := Parse(file(`{"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`, eight))
	require.NoError(t, err)
	_, err = f.Tensor("i")
	assertErr(t, err, ErrDType, "i")
}

// A real file cut short anywhere fails cleanly: truncated or malformed, never a panic.
func TestTruncatedAnywhere(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []Named{{"a", filled(t, tensor.Float32, 3, 5)}, {"b", filled(t, tensor.BFloat16, 4)}}, map[string]string{"k": "v"}))
	full := buf.Bytes()
	for n := range len(full) {
		_, err := Parse(full[:n])
		require.Error(t, err, "cut at %d", n)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.True(t, errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed), "cut at %d: %v", n, err)
	}
	_, err := Parse(full)
	assert.NoError(t, err)
}

// FuzzParse: arbitrary bytes never panic the reader; whatever it accepts reads back and
// rewrites to a file that parses to the same tensors.
func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	x, _ := tensor.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)
	y, _ := tensor.FromFloat64s(tensor.BFloat16, []float64{1, -2}, 2)
	_ = Write(&buf, []Named{{"x", x}, {"y", y}}, map[string]string{"m": "1"})
	f.Add(buf.Bytes())
	f.Add(file(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(file(`{"i":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(file(`{}`, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := Parse(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var out []Named
		for _, name := range sf.Names() {
			x, err := sf.Tensor(name)
			if err != nil {
				if !errors.Is(err, ErrDType) {
					t.Fatalf("tensor %q: %v", name, err)
				}
				continue
			}
			out = append(out, Named{name, x})
		}
		var w bytes.Buffer
		if err := Write(&w, out, sf.Metadata()); err != nil {
			if strings.Contains(err.Error(), "is not allowed") {
				return
			}
			t.Fatal(err)
		}
		again, err := Parse(w.Bytes())
		if err != nil {
			t.Fatalf("rewritten file: %v", err)
		}
		for _, nt := range out {
			y, err := again.Tensor(nt.Name)
			if err != nil {
				t.Fatal(err)
			}
			a, b := nt.Tensor.Storage().Bytes(), y.Storage().Bytes()
			if !bytes.Equal(a, b) {
				t.Fatalf("tensor %q changed on rewrite", nt.Name)
			}
		}
	})
}
