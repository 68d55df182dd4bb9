package mslemu

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

//go:generate go run ./cmd/mslemu-gen

// ErrUnavailable is returned by Launch when the package was built without cgo or for
// another system than Linux: the emulator needs g++ 12 or later through cgo (clang rejects
// MSL's explicit-instantiation syntax, and a Mac has the real GPU).
var ErrUnavailable = errors.New("mslemu: unavailable: needs cgo on linux")

// ErrStale is returned by Launch when the compiled adapters were generated from other
// sources than the embedded .metal files: run `go generate ./tools/mslemu`.
var ErrStale = errors.New("mslemu: the kernel adapters are stale: run go generate ./tools/mslemu")

// ErrUnknownKernel is returned by Launch for a name no kernel has as [[host_name]].
var ErrUnknownKernel = errors.New("mslemu: no such kernel")

// DefaultTimeout bounds one launch when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Buffer is the memory bound at one [[buffer(i)]] slot: bytes in the kernel's layout
// (little-endian, as on Apple GPUs). Launch copies Data into memory that ends right before
// an inaccessible page (an access past the end is reported), and copies it back into
// Data after the launch when the kernel's parameter for the slot is writable (a pointer
// or reference without const, not in the constant address space). A nil Data leaves the
// slot unbound: the kernel may declare it but not touch it.
type Buffer struct{ Data []byte }

// Order is the order in which the emulator runs the ready threads of a threadgroup
// between two synchronisation points. Kernels must give the same result in every order;
// running a test in more than one catches many missing barriers.
type Order int

const (
	// Forward runs threads in increasing thread_index_in_threadgroup.
	Forward Order = iota
	// Reverse runs them in decreasing order.
	Reverse
	// Shuffle runs them in a random order drawn from Options.Seed, new for each
	// threadgroup.
	Shuffle
)

// Options tunes one launch. The zero value is Forward order and DefaultTimeout.
type Options struct {
	Order   Order
	Seed    uint64
	Timeout time.Duration // a launch running longer fails with a KernelError; 0: DefaultTimeout; < 0: none
	// Constants are the values of the function constants for this launch, like Metal's
	// MTLFunctionConstantValues when the pipeline is made. Every function constant the
	// kernel's .metal file declares must be given, unless the file tests it with
	// is_function_constant_defined; an index the file does not declare is an error.
	Constants []Constant
}

// Constant is the value of the function constant declared
// `constant T name [[function_constant(Index)]];`. Value's Go type must match T: bool
// for bool; int8, int16, int32, int64 for char, short, int, long; uint8, uint16, uint32,
// uint64 for uchar, ushort, uint, ulong; float32 for float; Half for half.
type Constant struct {
	Index int
	Value any
}

// Half is a float16 value by its bits, for a half function constant.
type Half uint16

// constBytes returns the kind letter, size and little-endian bytes of a constant's value.
func constBytes(v any) (kind byte, size int, b [8]byte, ok bool) {
	var u uint64
	switch x := v.(type) {
	case bool:
		kind, size = 'b', 1
		if x {
			u = 1
		}
	case int8:
		kind, size, u = 'i', 1, uint64(x)
	case int16:
		kind, size, u = 'i', 2, uint64(x)
	case int32:
		kind, size, u = 'i', 4, uint64(x)
	case int64:
		kind, size, u = 'i', 8, uint64(x)
	case uint8:
		kind, size, u = 'u', 1, uint64(x)
	case uint16:
		kind, size, u = 'u', 2, uint64(x)
	case uint32:
		kind, size, u = 'u', 4, uint64(x)
	case uint64:
		kind, size, u = 'u', 8, x
	case float32:
		kind, size, u = 'f', 4, uint64(math.Float32bits(x))
	case Half:
		kind, size, u = 'h', 2, uint64(x)
	default:
		return 0, 0, b, false
	}
	binary.LittleEndian.PutUint64(b[:], u)
	return kind, size, b, true
}

// KernelError reports a kernel that misbehaved: threads that diverge at a barrier or a
// SIMD function, a deadlock, an access outside a buffer, a timeout. Msg names the
// threadgroup, the call sites and what each thread was doing.
type KernelError struct {
	Kernel string
	Msg    string
}

func (e *KernelError) Error() string { return "mslemu: " + e.Msg }

// Launch runs kernel (a [[host_name]]) over groups[0]*groups[1]*groups[2] threadgroups of
// threadsPerGroup threads each, like Metal's dispatchThreadgroups, with buffers[i] bound
// at [[buffer(i)]]. It returns when every threadgroup has finished. Launches are
// serialised process-wide.
func Launch(kernel string, groups, threadsPerGroup [3]int, buffers []Buffer) error {
	return LaunchWith(kernel, groups, threadsPerGroup, buffers, Options{})
}

// Float32Bytes returns v as little-endian bytes, for a Buffer.
func Float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// BytesFloat32 reads little-endian float32s from b.
func BytesFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Uint32Bytes returns v as little-endian bytes, for a Buffer (also for int32 and
// structs of 4-byte fields written field by field).
func Uint32Bytes(v []uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

// BytesUint32 reads little-endian uint32s from b.
func BytesUint32(b []byte) []uint32 {
	v := make([]uint32, len(b)/4)
	for i := range v {
		v[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return v
}
