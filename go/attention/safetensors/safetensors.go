package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/orchard-ml/orchard/go/tensor"
)

// Sentinels wrapped by *Error.
var (
	ErrMalformed      = errors.New("safetensors: malformed file")
	ErrTruncated      = errors.New("safetensors: truncated file")
	ErrHeaderTooLarge = errors.New("safetensors: header too large")
	ErrMissing        = errors.New("safetensors: tensor missing")
	ErrShape          = errors.New("safetensors: wrong shape")
	ErrDType          = errors.New("safetensors: unsupported dtype")
	// ErrUnexpected: a loader found a tensor it has no place for (a bias for a layer
	// without biases, say), which usually means the wrong naming scheme or model.
	ErrUnexpected = errors.New("safetensors: unexpected tensor")
)

// Error is every error this package returns about a file's content.
type Error struct {
	Tensor string // the tensor concerned; "" for the header as a whole
	Kind   error  // one of the sentinels above
	Detail string
}

func (e *Error) Error() string {
	if e.Tensor == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("%v: tensor %q: %s", e.Kind, e.Tensor, e.Detail)
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, name, format string, args ...any) error {
	return &Error{Tensor: name, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// MaxHeaderBytes is the largest JSON header the reader accepts (the limit of Hugging
// Face's own reader): larger ones fail with ErrHeaderTooLarge before anything is allocated.
const MaxHeaderBytes = 100_000_000

// metadataKey is the header entry that holds free-form string metadata.
const metadataKey = "__metadata__"

// Info describes one tensor of a file.
type Info struct {
	Name  string
	DType string // the format's name: F32, F16, BF16, F64, I32, ...
	Shape []int
	// Begin and End are the tensor's byte range in the data section.
	Begin, End int64
}

// dtypes maps the format's names to Orchard's dtypes.
var dtypes = map[string]tensor.DType{"F32": tensor.Float32, "F16": tensor.Float16, "BF16": tensor.BFloat16, "F64": tensor.Float64}

// elemSize is the element size of every dtype the format names.
var elemSize = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// DTypeName returns the format's name of d: F32, F16, BF16 or F64.
func DTypeName(d tensor.DType) (string, bool) {
	for n, x := range dtypes {
		if x == d {
			return n, true
		}
	}
	return "", false
}

// File is an opened safetensors file: its header, parsed and checked, and a reader for
// the tensors' data.
type File struct {
	r        io.ReaderAt
	closer   io.Closer
	dataAt   int64 // offset of the data section
	infos    []Info
	byName   map[string]int
	metadata map[string]string
}

// Open opens and checks the file at path. Close it when done.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sf, err := NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf.closer = f
	return sf, nil
}

// Parse checks b as a whole safetensors file; the File reads its tensors from b.
func Parse(b []byte) (*File, error) { return NewReader(bytes.NewReader(b), int64(len(b))) }

// NewReader reads and checks the header of the size-byte file r.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fail(ErrTruncated, "", "%d bytes; a file starts with an 8-byte header length", size)
	}
	var lb [8]byte
	if _, err := r.ReadAt(lb[:], 0); err != nil {
		return nil, fail(ErrTruncated, "", "reading the header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderBytes {
		return nil, fail(ErrHeaderTooLarge, "", "header length %d is over the limit of %d bytes", n, MaxHeaderBytes)
	}
	if int64(n) > size-8 {
		return nil, fail(ErrTruncated, "", "header length %d, but only %d bytes follow", n, size-8)
	}
	if n < 2 {
		return nil, fail(ErrMalformed, "", "header length %d cannot hold a JSON object", n)
	}
	hb := make([]byte, n)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, fail(ErrTruncated, "", "reading the header: %v", err)
	}
	f := &File{r: r, dataAt: 8 + int64(n), byName: map[string]int{}}
	if err := f.parseHeader(hb); err != nil {
		return nil, err
	}
	if err := f.checkLayout(size - f.dataAt); err != nil {
		return nil, err
	}
	return f, nil
}

type rawInfo struct {
	DType       *string         `json:"dtype"`
	Shape       *[]json.Number  `json:"shape"`
	DataOffsets *[2]json.Number `json:"data_offsets"`
	Extra       map[string]any  `json:"-"`
}

// parseHeader reads the JSON object token by token, so a repeated key is an error
// rather than silently overwritten.
func (f *File) parseHeader(hb []byte) error {
	if !utf8.Valid(hb) {
		return fail(ErrMalformed, "", "header is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fail(ErrMalformed, "", "header is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(ErrMalformed, "", "header JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return fail(ErrMalformed, "", "header JSON: key %v is not a string", tok)
		}
		if seen[name] {
			return fail(ErrMalformed, name, "appears twice in the header")
		}
		seen[name] = true
		if name == metadataKey {
			var md map[string]string
			if err := dec.Decode(&md); err != nil {
				return fail(ErrMalformed, "", "__metadata__ must map strings to strings: %v", err)
			}
			f.metadata = md
			continue
		}
		var ri rawInfo
		if err := dec.Decode(&ri); err != nil {
			return fail(ErrMalformed, name, "entry is not {dtype, shape, data_offsets}: %v", err)
		}
		info, err := checkInfo(name, ri)
		if err != nil {
			return err
		}
		f.byName[name] = len(f.infos)
		f.infos = append(f.infos, info)
	}
	if _, err := dec.Token(); err != nil {
		return fail(ErrMalformed, "", "header JSON: %v", err)
	}
	if strings.TrimRight(string(hb[dec.InputOffset():]), " \t\r\n") != "" {
		return fail(ErrMalformed, "", "data after the header's JSON object")
	}
	return nil
}

func checkInfo(name string, ri rawInfo) (Info, error) {
	if name == "" {
		return Info{}, fail(ErrMalformed, name, "empty tensor name")
	}
	if ri.DType == nil || ri.Shape == nil || ri.DataOffsets == nil {
		return Info{}, fail(ErrMalformed, name, "entry needs dtype, shape and data_offsets")
	}
	size, ok := elemSize[*ri.DType]
	if !ok {
		return Info{}, fail(ErrMalformed, name, "unknown dtype %q", *ri.DType)
	}
	info := Info{Name: name, DType: *ri.DType, Shape: make([]int, len(*ri.Shape))}
	numel := int64(1)
	for i, d := range *ri.Shape {
		v, err := d.Int64()
		if err != nil || v < 0 {
			return Info{}, fail(ErrMalformed, name, "shape dimension %d is %s; must be an integer ≥ 0", i, d)
		}
		info.Shape[i] = int(v)
		if v != 0 && numel > math.MaxInt64/v {
			return Info{}, fail(ErrMalformed, name, "shape %v overflows", *ri.Shape)
		}
		numel *= v
	}
	if numel > math.MaxInt64/int64(size) {
		return Info{}, fail(ErrMalformed, name, "shape %v overflows in bytes", *ri.Shape)
	}
	for i, o := range ri.DataOffsets {
		v, err := o.Int64()
		if err != nil || v < 0 {
			return Info{}, fail(ErrMalformed, name, "data_offsets[%d] is %s; must be an integer ≥ 0", i, o)
		}
		if i == 0 {
			info.Begin = v
		} else {
			info.End = v
		}
	}
	if info.End < info.Begin {
		return Info{}, fail(ErrMalformed, name, "data_offsets [%d, %d] end before they begin", info.Begin, info.End)
	}
	if want := numel * int64(size); info.End-info.Begin != want {
		return Info{}, fail(ErrMalformed, name, "data_offsets [%d, %d] hold %d bytes; shape %v of %s needs %d",
			info.Begin, info.End, info.End-info.Begin, info.Shape, info.DType, want)
	}
	return info, nil
}

// checkLayout orders the tensors by offset and checks that they tile the data section.
func (f *File) checkLayout(dataLen int64) error {
	slices.SortStableFunc(f.infos, func(a, b Info) int {
		switch {
		case a.Begin != b.Begin:
			return cmpInt(a.Begin, b.Begin)
		case a.End != b.End:
			return cmpInt(a.End, b.End)
		}
		return strings.Compare(a.Name, b.Name)
	})
	var at int64
	for i, info := range f.infos {
		f.byName[info.Name] = i
		if info.Begin != at {
			if info.Begin < at {
				return fail(ErrMalformed, info.Name, "data_offsets [%d, %d] overlap the previous tensor, which ends at %d", info.Begin, info.End, at)
			}
			return fail(ErrMalformed, info.Name, "data_offsets [%d, %d] leave a gap after byte %d", info.Begin, info.End, at)
		}
		if info.End > dataLen {
			return fail(ErrTruncated, info.Name, "data_offsets [%d, %d], but the data section has %d bytes", info.Begin, info.End, dataLen)
		}
		at = info.End
	}
	if at != dataLen {
		return fail(ErrMalformed, "", "the tensors end at byte %d of a %d-byte data section", at, dataLen)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close closes the file Open opened; it is a no-op for other Files.
func (f *File) Close() error {
	if f == nil || f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Names lists the tensors in file order.
func (f *File) Names() []string {
	out := make([]string, len(f.infos))
	for i, info := range f.infos {
		out[i] = info.Name
	}
	return out
}

// Info describes the named tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	info := f.infos[i]
	info.Shape = slices.Clone(info.Shape)
	return info, true
}

// Metadata returns a copy of the header's __metadata__ (nil without one).
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	out := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		out[k] = v
	}
	return out
}

// Tensor reads the named tensor in the file's dtype.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fail(ErrMissing, name, "not in the file (it has %d tensors)", len(f.infos))
	}
	info := f.infos[i]
	dt, ok := dtypes[info.DType]
	if !ok {
		return nil, fail(ErrDType, name, "dtype %s; Orchard reads F32, F16, BF16 and F64", info.DType)
	}
	t, err := tensor.New(dt, info.Shape...)
	if err != nil {
		return nil, fail(ErrMalformed, name, "shape %v: %v", info.Shape, err)
	}
	b := t.Storage().Bytes()
	if len(b) > 0 {
		if _, err := f.r.ReadAt(b, f.dataAt+info.Begin); err != nil {
			return nil, fail(ErrTruncated, name, "reading %d bytes: %v", len(b), err)
		}
	}
	return t, nil
}

// Load reads the named tensor, checks that its shape is shape (ErrShape otherwise), and
// converts it to dtype dt, rounding to nearest even when dt is narrower.
func (f *File) Load(name string, dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	if info, ok := f.Info(name); ok && !slices.Equal(info.Shape, shape) {
		return nil, fail(ErrShape, name, "shape %v in the file, want %v", info.Shape, shape)
	}
	t, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if t.DType() == dt {
		return t, nil
	}
	c, err := t.Convert(dt)
	if err != nil {
		return nil, fail(ErrDType, name, "converting %v to %v: %v", t.DType(), dt, err)
	}
	return c, nil
}
