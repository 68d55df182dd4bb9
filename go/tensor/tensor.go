package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// Tensor is a strided view of typed elements over a Storage. The zero value is not
// usable; build tensors with New, FromFloat32s, FromFloat64s or a view of another one.
// A Tensor value is immutable as a view (its shape and strides never change); its
// elements change only through Set, Storage writes, or an executor's output buffers.
type Tensor struct {
	dtype   DType
	shape   []int
	strides []int // in elements
	offset  int   // in elements
	storage Storage
}

// New allocates a zeroed, contiguous tensor in host memory.
func New(dtype DType, shape ...int) (*Tensor, error) {
	if !dtype.Valid() {
		return nil, &Error{Op: "New", Rule: "unknown dtype " + dtype.String(), Kind: ErrDType}
	}
	n, err := numel("New", shape)
	if err != nil {
		return nil, err
	}
	size, err := byteSize("New", shape, n, dtype)
	if err != nil {
		return nil, err
	}
	return &Tensor{
		dtype:   dtype,
		shape:   append([]int(nil), shape...),
		strides: ContiguousStrides(shape),
		storage: NewHostStorage(size),
	}, nil
}

// FromStorage wraps existing memory as a tensor. The storage must hold every element the
// view addresses (by its Len), and the offset and strides must keep every element index
// within [0, MaxBytes/size): views whose extent overflows are refused with ErrShape.
func FromStorage(s Storage, dtype DType, shape, strides []int, offset int) (*Tensor, error) {
	if s == nil {
		return nil, shapeErr("FromStorage", "storage is nil")
	}
	if !dtype.Valid() {
		return nil, &Error{Op: "FromStorage", Rule: "unknown dtype " + dtype.String(), Kind: ErrDType}
	}
	if _, err := numel("FromStorage", shape); err != nil {
		return nil, err
	}
	if len(strides) != len(shape) {
		return nil, shapeErr("FromStorage", "%d strides for %d dimensions", len(strides), len(shape))
	}
	t := &Tensor{dtype: dtype, shape: append([]int(nil), shape...), strides: append([]int(nil), strides...), offset: offset, storage: s}
	if t.Len() == 0 {
		return t, nil
	}
	lo, hi, ok := t.checkedSpan()
	if !ok {
		return nil, shapeErr("FromStorage", "offset %d with shape %v and strides %v overflows an int", offset, shape, strides)
	}
	if hiBytes, ok := mulInt(hi, dtype.Size()); lo < 0 || !ok || hiBytes > s.Len() {
		return nil, shapeErr("FromStorage", "view reaches elements [%d, %d) outside storage of %d bytes", lo, hi, s.Len())
	}
	return t, nil
}

// FromFloat32s copies data into a new float32 tensor of the given shape.
func FromFloat32s(data []float32, shape ...int) (*Tensor, error) {
	t, err := New(Float32, shape...)
	if err != nil {
		return nil, err
	}
	if len(data) != t.Len() {
		return nil, shapeErr("FromFloat32s", "%d values for shape %v (%d elements)", len(data), shape, t.Len())
	}
	copy(t.unsafeFloat32s(), data)
	return t, nil
}

// FromFloat64s converts data into a new tensor of the given dtype and shape, rounding to
// nearest even.
func FromFloat64s(dtype DType, data []float64, shape ...int) (*Tensor, error) {
	t, err := New(dtype, shape...)
	if err != nil {
		return nil, err
	}
	if len(data) != t.Len() {
		return nil, shapeErr("FromFloat64s", "%d values for shape %v (%d elements)", len(data), shape, t.Len())
	}
	b := t.storage.Bytes()
	for i, v := range data {
		putElem(b, dtype, i, v)
	}
	return t, nil
}

// ContiguousStrides returns row-major strides for shape.
func ContiguousStrides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

func numel(op string, shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, shapeErr(op, "dimension %d is %d, must be ≥ 0", i, d)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, shapeErr(op, "shape %v overflows int", shape)
		}
		n *= d
	}
	return n, nil
}

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape returns a copy of the shape.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Dim returns the size of dimension i; negative i counts from the end. An i outside the
// rank returns 0 (an empty extent) rather than panicking; check Rank first where that
// matters.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	if i < 0 || i >= len(t.shape) {
		return 0
	}
	return t.shape[i]
}

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Strides returns a copy of the strides, in elements.
func (t *Tensor) Strides() []int { return append([]int(nil), t.strides...) }

// Offset returns the offset of the first element in the storage, in elements.
func (t *Tensor) Offset() int { return t.offset }

// Storage returns the memory under the tensor.
func (t *Tensor) Storage() Storage { return t.storage }

// Len returns the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// Bytes returns the number of bytes the elements take when contiguous. A view with more
// elements than its storage (stride 0) can exceed what an int holds: Bytes then returns
// math.MaxInt rather than a wrapped number.
func (t *Tensor) Bytes() int {
	b, ok := mulInt(t.Len(), t.dtype.Size())
	if !ok {
		return math.MaxInt
	}
	return b
}

// span returns the half-open range of storage elements the view can touch.
func (t *Tensor) span() (lo, hi int) {
	lo, hi = t.offset, t.offset+1
	for i, d := range t.shape {
		if d == 0 {
			return t.offset, t.offset
		}
		if s := t.strides[i] * (d - 1); s < 0 {
			lo += s
		} else {
			hi += s
		}
	}
	return lo, hi
}

// IsContiguous reports whether the elements are laid out row-major with no gaps
// (dimensions of size 1 may have any stride).
func (t *Tensor) IsContiguous() bool {
	acc := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != acc {
			return t.Len() == 0
		}
		acc *= t.shape[i]
	}
	return true
}

// SameShape reports whether t and u have equal shapes.
func (t *Tensor) SameShape(u *Tensor) bool {
	if len(t.shape) != len(u.shape) {
		return false
	}
	for i := range t.shape {
		if t.shape[i] != u.shape[i] {
			return false
		}
	}
	return true
}

// index turns a multi-index into a storage element index.
func (t *Tensor) index(op string, idx []int) (int, error) {
	if len(idx) != len(t.shape) {
		return 0, shapeErr(op, "%d indices for rank %d", len(idx), len(t.shape))
	}
	p := t.offset
	for i, x := range idx {
		if x < 0 || x >= t.shape[i] {
			return 0, shapeErr(op, "index %d is %d, out of range [0, %d)", i, x, t.shape[i])
		}
		p += x * t.strides[i]
	}
	return p, nil
}

// HostBytes returns the bytes of the storage under t after checking that the CPU can read
// them and that they cover every element the view reaches; a storage whose Bytes() is
// nil or shorter than the view gets an error wrapping ErrStorage. Readers of a tensor's raw
// bytes (executors, say) call it instead of Storage().Bytes().
func (t *Tensor) HostBytes() ([]byte, error) { return t.hostBytes("HostBytes") }

func (t *Tensor) hostBytes(op string) ([]byte, error) {
	b := t.storage.Bytes()
	if b == nil {
		return nil, &Error{Op: op, Rule: t.storage.Kind().String() + " storage", Kind: ErrStorage}
	}
	if t.Len() == 0 {
		return b, nil
	}
	_, hi := t.span() // FromStorage checked it does not overflow
	if need := hi * t.dtype.Size(); len(b) < need {
		return nil, &Error{Op: op, Rule: fmt.Sprintf("storage hands out %d bytes (Len says %d); the view reaches %d", len(b), t.storage.Len(), need), Kind: ErrStorage}
	}
	return b, nil
}

// At returns the element at idx as float64.
func (t *Tensor) At(idx ...int) (float64, error) {
	p, err := t.index("At", idx)
	if err != nil {
		return 0, err
	}
	b, err := t.hostBytes("At")
	if err != nil {
		return 0, err
	}
	return getElem(b, t.dtype, p), nil
}

// Set stores v (rounded to the dtype) at idx.
func (t *Tensor) Set(v float64, idx ...int) error {
	p, err := t.index("Set", idx)
	if err != nil {
		return err
	}
	b, err := t.hostBytes("Set")
	if err != nil {
		return err
	}
	putElem(b, t.dtype, p, v)
	return nil
}

func getElem(b []byte, d DType, i int) float64 {
	switch d {
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	case Float16:
		return float64(Float16ToFloat32(binary.LittleEndian.Uint16(b[2*i:])))
	case BFloat16:
		return float64(BFloat16ToFloat32(binary.LittleEndian.Uint16(b[2*i:])))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return math.NaN()
}

func putElem(b []byte, d DType, i int, v float64) {
	switch d {
	case Float32:
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	case Float16:
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToFloat16(roundToFloat32(v)))
	case BFloat16:
		binary.LittleEndian.PutUint16(b[2*i:], Float32ToBFloat16(roundToFloat32(v)))
	case Float64:
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
}

// roundToFloat32 narrows v for a 16-bit conversion. Going through float32 can round
// twice; it changes the result only for float64 values within 2^-29 relative of a 16-bit
// tie, which test inputs and kernels (that compute in float32) never produce.
func roundToFloat32(v float64) float32 { return float32(v) }

// unsafeFloat32s views contiguous float32 host storage from the offset on.
func (t *Tensor) unsafeFloat32s() []float32 {
	b := t.storage.Bytes()
	if len(b) < 4 {
		return nil
	}
	all := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
	return all[t.offset : t.offset+t.Len()]
}

// Float32s returns the elements of a contiguous float32 tensor in host-visible storage as
// a slice that aliases the storage (writes change the tensor).
func (t *Tensor) Float32s() ([]float32, error) {
	if t.dtype != Float32 {
		return nil, &Error{Op: "Float32s", Rule: "dtype is " + t.dtype.String() + ", want float32", Kind: ErrDType}
	}
	if !t.IsContiguous() {
		return nil, shapeErr("Float32s", "tensor is not contiguous (strides %v)", t.strides)
	}
	if _, err := t.hostBytes("Float32s"); err != nil {
		return nil, err
	}
	if t.Len() == 0 {
		return []float32{}, nil
	}
	return t.unsafeFloat32s(), nil
}

// Float64s returns the elements of a contiguous float64 tensor as an aliasing slice.
func (t *Tensor) Float64s() ([]float64, error) {
	if t.dtype != Float64 {
		return nil, &Error{Op: "Float64s", Rule: "dtype is " + t.dtype.String() + ", want float64", Kind: ErrDType}
	}
	if !t.IsContiguous() {
		return nil, shapeErr("Float64s", "tensor is not contiguous (strides %v)", t.strides)
	}
	b, err := t.hostBytes("Float64s")
	if err != nil {
		return nil, err
	}
	if t.Len() == 0 {
		return []float64{}, nil
	}
	all := unsafe.Slice((*float64)(unsafe.Pointer(&b[0])), len(b)/8)
	return all[t.offset : t.offset+t.Len()], nil
}

// Uint16s returns the raw elements of a contiguous float16 or bfloat16 tensor as an
// aliasing slice.
func (t *Tensor) Uint16s() ([]uint16, error) {
	if t.dtype != Float16 && t.dtype != BFloat16 {
		return nil, &Error{Op: "Uint16s", Rule: "dtype is " + t.dtype.String() + ", want float16 or bfloat16", Kind: ErrDType}
	}
	if !t.IsContiguous() {
		return nil, shapeErr("Uint16s", "tensor is not contiguous (strides %v)", t.strides)
	}
	b, err := t.hostBytes("Uint16s")
	if err != nil {
		return nil, err
	}
	if t.Len() == 0 {
		return []uint16{}, nil
	}
	all := unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
	return all[t.offset : t.offset+t.Len()], nil
}

// each calls f with the storage index of every element in row-major order.
func (t *Tensor) each(f func(i, p int)) {
	n := t.Len()
	if n == 0 {
		return
	}
	idx := make([]int, len(t.shape))
	p := t.offset
	for i := 0; i < n; i++ {
		f(i, p)
		for d := len(t.shape) - 1; d >= 0; d-- {
			idx[d]++
			p += t.strides[d]
			if idx[d] < t.shape[d] {
				break
			}
			p -= t.strides[d] * t.shape[d]
			idx[d] = 0
		}
	}
}

// ToFloat64s copies the elements, in row-major order, into a new float64 slice.
func (t *Tensor) ToFloat64s() ([]float64, error) {
	b, err := t.hostBytes("ToFloat64s")
	if err != nil {
		return nil, err
	}
	out := make([]float64, t.Len())
	t.each(func(i, p int) { out[i] = getElem(b, t.dtype, p) })
	return out, nil
}

// ToFloat32s copies the elements, in row-major order, into a new float32 slice.
func (t *Tensor) ToFloat32s() ([]float32, error) {
	b, err := t.hostBytes("ToFloat32s")
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.Len())
	t.each(func(i, p int) { out[i] = float32(getElem(b, t.dtype, p)) })
	return out, nil
}

// Convert returns a new contiguous host tensor of dtype d holding t's elements, rounded to
// nearest even. It always copies.
func (t *Tensor) Convert(d DType) (*Tensor, error) {
	if !d.Valid() {
		return nil, &Error{Op: "Convert", Rule: "unknown dtype " + d.String(), Kind: ErrDType}
	}
	src, err := t.hostBytes("Convert")
	if err != nil {
		return nil, err
	}
	out, err := New(d, t.shape...)
	if err != nil {
		return nil, err
	}
	dst := out.storage.Bytes()
	if d == t.dtype {
		sz := d.Size()
		t.each(func(i, p int) { copy(dst[i*sz:(i+1)*sz], src[p*sz:(p+1)*sz]) })
		return out, nil
	}
	t.each(func(i, p int) { putElem(dst, d, i, getElem(src, t.dtype, p)) })
	return out, nil
}

// Clone returns a contiguous host copy with the same dtype.
func (t *Tensor) Clone() (*Tensor, error) { return t.Convert(t.dtype) }

// Contiguous returns t itself when it is already contiguous, and a contiguous host copy
// otherwise. The second result says whether it copied.
func (t *Tensor) Contiguous() (*Tensor, bool, error) {
	if t.IsContiguous() {
		return t, false, nil
	}
	c, err := t.Clone()
	return c, err == nil, err
}
