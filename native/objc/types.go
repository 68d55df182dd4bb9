package metalrt

import (
	"fmt"
	"time"
)

// StorageMode is where a buffer lives (MTLResourceStorageMode*).
type StorageMode int

// Storage modes.
const (
	// Shared memory is read and written by both the CPU and the GPU; on Apple
	// silicon it is the unified memory itself.
	Shared StorageMode = iota
	// Private memory only the GPU reads and writes; the CPU reaches it through a
	// blit Copy from or to a Shared buffer.
	Private
	// Managed memory has a CPU and a GPU copy (macOS only): call DidModify after
	// CPU writes, and run a Synchronize command before CPU reads of GPU writes.
	Managed
)

func (m StorageMode) String() string {
	switch m {
	case Shared:
		return "shared"
	case Private:
		return "private"
	case Managed:
		return "managed"
	}
	return fmt.Sprintf("StorageMode(%d)", int(m))
}

// HostVisible reports whether the CPU can read and write the buffer's bytes.
func (m StorageMode) HostVisible() bool { return m == Shared || m == Managed }

// Family is a GPU family (MTLGPUFamily); the values are Metal's.
type Family int64

// The families Orchard asks about.
const (
	FamilyApple7 Family = 1007 // A14, M1
	FamilyApple8 Family = 1008 // A15, A16, M2
	FamilyApple9 Family = 1009 // A17 Pro, M3, M4
	FamilyMac2   Family = 2002 // every Mac GPU Metal supports today
)

// knownFamilies are the families Device.Families probes.
var knownFamilies = [...]Family{FamilyApple9, FamilyApple8, FamilyApple7, FamilyMac2}

// KnownFamilies returns the families Device.Families probes, Apple families
// newest first.
func KnownFamilies() []Family { return append([]Family(nil), knownFamilies[:]...) }

func (f Family) String() string {
	switch f {
	case FamilyApple7:
		return "apple7"
	case FamilyApple8:
		return "apple8"
	case FamilyApple9:
		return "apple9"
	case FamilyMac2:
		return "mac2"
	}
	return fmt.Sprintf("family(%d)", int64(f))
}

// LanguageVersion is a Metal Shading Language version; the zero value lets
// Metal use the newest version it knows.
type LanguageVersion struct {
	Major, Minor int
}

// Language versions the kernels may ask for.
var (
	MSL2_4 = LanguageVersion{2, 4}
	MSL3_0 = LanguageVersion{3, 0}
	MSL3_1 = LanguageVersion{3, 1} // bfloat
	MSL3_2 = LanguageVersion{3, 2}
)

func (v LanguageVersion) String() string {
	if v == (LanguageVersion{}) {
		return "default"
	}
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

// raw returns MTLLanguageVersion's value for v: major << 16 | minor (for
// example MTLLanguageVersion3_1 is 0x30001), or 0 for the default.
func (v LanguageVersion) raw() (uint32, error) {
	if v == (LanguageVersion{}) {
		return 0, nil
	}
	if v.Major < 1 || v.Major > 0x7fff || v.Minor < 0 || v.Minor > 0xffff {
		return 0, fmt.Errorf("language version %d.%d is out of range", v.Major, v.Minor)
	}
	return uint32(v.Major)<<16 | uint32(v.Minor), nil
}

// MathMode says which floating-point shortcuts the compiler may take.
type MathMode int

// Math modes. Orchard's kernels rely on −Inf and NaN behaving as IEEE says
// (masked logits are −Inf), so fast math, which assumes neither occurs, is not
// safe for them.
const (
	// MathDefault leaves Metal's default (relaxed on Apple silicon since
	// macOS 15, fast math before).
	MathDefault MathMode = iota
	// MathSafe forbids transformations that change results.
	MathSafe
	// MathRelaxed allows reassociation and the like but honours Inf and NaN
	// (macOS 15; earlier systems treat it as MathSafe).
	MathRelaxed
	// MathFast allows everything, including assuming no Inf or NaN.
	MathFast
)

func (m MathMode) String() string {
	switch m {
	case MathDefault:
		return "default"
	case MathSafe:
		return "safe"
	case MathRelaxed:
		return "relaxed"
	case MathFast:
		return "fast"
	}
	return fmt.Sprintf("MathMode(%d)", int(m))
}

// CompileOptions configure compilation from source (MTLCompileOptions).
type CompileOptions struct {
	Language LanguageVersion
	Math     MathMode
	// Macros are preprocessor definitions, name to value.
	Macros map[string]string
}

// Size is a 3-D extent: threadgroups per grid, or threads per threadgroup.
type Size struct {
	X, Y, Z int
}

func (s Size) volume() int { return s.X * s.Y * s.Z }

// Command is one step of a command buffer: a Dispatch, a Copy or a Synchronize.
type Command interface {
	command()
}

// Dispatch runs a compute pipeline over Grid threadgroups of Group threads
// (dispatchThreadgroups:threadsPerThreadgroup:) with the given arguments bound.
// Dispatches in one Run see the writes of the ones before them.
type Dispatch struct {
	Pipeline    *Pipeline
	Grid        Size // threadgroups per grid
	Group       Size // threads per threadgroup
	Buffers     []BufferArg
	Bytes       []BytesArg
	Threadgroup []ThreadgroupArg
}

// BufferArg binds Buffer from Offset at Index of the buffer argument table
// (setBuffer:offset:atIndex:).
type BufferArg struct {
	Index  int
	Buffer *Buffer
	Offset int
}

// BytesArg copies Data into the buffer argument table at Index
// (setBytes:length:atIndex:); at most MaxBytesLength bytes. Data is copied when
// Run encodes it; the caller may reuse it afterwards.
type BytesArg struct {
	Index int
	Data  []byte
}

// ThreadgroupArg sizes the threadgroup memory at Index
// (setThreadgroupMemoryLength:atIndex:); Length is a multiple of 16.
type ThreadgroupArg struct {
	Index  int
	Length int
}

// Copy copies Size bytes between buffers on the GPU
// (copyFromBuffer:sourceOffset:toBuffer:destinationOffset:size:); it is the way
// in and out of Private buffers. Offsets and Size are multiples of 4.
type Copy struct {
	Src       *Buffer
	SrcOffset int
	Dst       *Buffer
	DstOffset int
	Size      int
}

// Synchronize makes the CPU copy of a Managed buffer match the GPU's
// (synchronizeResource:); run it after the dispatches that write the buffer and
// before reading its Bytes.
type Synchronize struct {
	Buffer *Buffer
}

func (Dispatch) command()    {}
func (Copy) command()        {}
func (Synchronize) command() {}

// Metal limits that Run checks before encoding anything.
const (
	// MaxArgumentIndex bounds buffer, bytes and threadgroup indices: Metal's
	// argument tables have 31 entries, 0 to 30.
	MaxArgumentIndex = 30
	// MaxBytesLength is the most setBytes may copy (4 KiB).
	MaxBytesLength = 4096
	// ThreadgroupMemoryAlign: threadgroup memory lengths are multiples of 16.
	ThreadgroupMemoryAlign = 16
	// CopyAlign: on macOS, blit offsets and sizes are multiples of 4.
	CopyAlign = 4
)

// bufferInfo is what validation needs to know about a buffer, on every system.
type bufferInfo struct {
	length int
	mode   StorageMode
}

// pipelineInfo is what validation needs to know about a pipeline.
type pipelineInfo struct {
	name              string
	maxThreads        int // maxTotalThreadsPerThreadgroup
	executionWidth    int // threadExecutionWidth
	staticThreadgroup int // staticThreadgroupMemoryLength
}

// DefaultWaitLimit is how long Queue.Run waits for a command buffer unless
// SetWaitLimit says otherwise. Orchard's largest calls take seconds; a command
// buffer still running after a minute means a hung GPU, and Metal's own
// watchdog would have stopped it well before.
const DefaultWaitLimit = time.Minute

// BoolConstant is a boolean function constant: the value of the MSL declaration
// `constant bool name [[function_constant(Index)]]`.
type BoolConstant struct {
	Index int
	Value bool
}

// OSVersion is a macOS version.
type OSVersion struct {
	Major, Minor, Patch int
}

// AtLeast reports whether v is major.minor or later.
func (v OSVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

func (v OSVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }
