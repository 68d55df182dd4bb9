//go:build !darwin || ios || !cgo

package metalrt

import "time"

// This file stands in for metal_darwin.go where Metal cannot be used: another
// system, or darwin built with CGO_ENABLED=0. The API is the same; every
// constructor fails with an error wrapping ErrUnavailable, and the handle types
// exist so that code using them compiles (and command validation can be tested)
// everywhere.

func unavailable(op string) error {
	return newError(op, ErrUnavailable, "this build has no Metal support (it needs darwin and cgo)")
}

// Device is a Metal GPU; none can be opened in this build.
type Device struct{}

// DeviceNames fails with ErrUnavailable in this build.
func DeviceNames() ([]string, error) { return nil, unavailable("DeviceNames") }

// OpenDefault fails with ErrUnavailable in this build.
func OpenDefault() (*Device, error) { return nil, unavailable("OpenDefault") }

// Open fails with ErrUnavailable in this build.
func Open(name string) (*Device, error) { return nil, unavailable("Open") }

// Name returns "".
func (d *Device) Name() string { return "" }

// Supports returns false.
func (d *Device) Supports(Family) bool { return false }

// Families returns nil.
func (d *Device) Families() []Family { return nil }

// MaxThreadgroupMemory returns 0.
func (d *Device) MaxThreadgroupMemory() int { return 0 }

// HasUnifiedMemory returns false.
func (d *Device) HasUnifiedMemory() bool { return false }

// NewQueue fails with ErrUnavailable.
func (d *Device) NewQueue() (*Queue, error) { return nil, unavailable("NewQueue") }

// NewBuffer fails with ErrUnavailable.
func (d *Device) NewBuffer(n int, mode StorageMode) (*Buffer, error) {
	return nil, unavailable("NewBuffer")
}

// NewLibrary fails with ErrUnavailable.
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	return nil, unavailable("NewLibrary")
}

// NewLibraryFromData fails with ErrUnavailable.
func (d *Device) NewLibraryFromData(data []byte) (*Library, error) {
	return nil, unavailable("NewLibraryFromData")
}

// NewPipeline fails with ErrUnavailable.
func (d *Device) NewPipeline(f *Function) (*Pipeline, error) {
	return nil, unavailable("NewPipeline")
}

// Close does nothing.
func (d *Device) Close() error { return nil }

// SystemVersion fails with ErrUnavailable.
func SystemVersion() (OSVersion, error) { return OSVersion{}, unavailable("SystemVersion") }

// SetFaultHook does nothing: no device exists in this build.
func (d *Device) SetFaultHook(FaultHook) {}

// RegistryID returns 0.
func (d *Device) RegistryID() uint64 { return 0 }

// MaxBufferLength returns 0.
func (d *Device) MaxBufferLength() int64 { return 0 }

// RecommendedWorkingSet returns 0.
func (d *Device) RecommendedWorkingSet() int64 { return 0 }

// NewBufferNoCopy fails with ErrUnavailable.
func (d *Device) NewBufferNoCopy(n int, mode StorageMode) (*Buffer, error) {
	return nil, unavailable("NewBufferNoCopy")
}

// Queue is a command queue; none exists in this build.
type Queue struct {
	maxTG int
}

// Run checks the commands like the Metal build does, then fails with
// ErrUnavailable.
func (q *Queue) Run(cmds ...Command) error {
	const op = "Queue.Run"
	if q == nil {
		return newError(op, ErrClosed, "queue is nil")
	}
	if _, err := encode(op, cmds, q.maxTG); err != nil {
		return err
	}
	return unavailable(op)
}

// Close does nothing.
func (q *Queue) Close() error { return nil }

// SetWaitLimit does nothing in this build.
func (q *Queue) SetWaitLimit(time.Duration) {}

// WaitLimit returns 0.
func (q *Queue) WaitLimit() time.Duration { return 0 }

// Buffer is GPU memory; in this build only tests make them, to exercise
// command validation.
type Buffer struct {
	info bufferInfo
}

// Len is the buffer's length in bytes.
func (b *Buffer) Len() int {
	if b == nil {
		return 0
	}
	return b.info.length
}

// Mode is the buffer's storage mode.
func (b *Buffer) Mode() StorageMode {
	if b == nil {
		return Shared
	}
	return b.info.mode
}

// Bytes returns nil.
func (b *Buffer) Bytes() []byte { return nil }

// DidModify fails with ErrUnavailable.
func (b *Buffer) DidModify(off, n int) error { return unavailable("Buffer.DidModify") }

func (b *Buffer) closed() bool { return false }

// DeviceID returns 0.
func (b *Buffer) DeviceID() uint64 { return 0 }

// NoCopy returns false.
func (b *Buffer) NoCopy() bool { return false }

// Close does nothing.
func (b *Buffer) Close() error { return nil }

// Library is a set of compiled functions; none exists in this build.
type Library struct{}

// Function fails with ErrUnavailable.
func (l *Library) Function(name string) (*Function, error) {
	return nil, unavailable("Library.Function")
}

// SpecializedFunction fails with ErrUnavailable.
func (l *Library) SpecializedFunction(name string, constants []BoolConstant) (*Function, error) {
	return nil, unavailable("Library.SpecializedFunction")
}

// Warnings returns "".
func (l *Library) Warnings() string { return "" }

// Close does nothing.
func (l *Library) Close() error { return nil }

// Function is a library function; none exists in this build.
type Function struct{}

// Name returns "".
func (f *Function) Name() string { return "" }

// Close does nothing.
func (f *Function) Close() error { return nil }

// Pipeline is a compute pipeline; in this build only tests make them.
type Pipeline struct {
	info pipelineInfo
}

// Name is the name of the pipeline's function.
func (p *Pipeline) Name() string {
	if p == nil {
		return ""
	}
	return p.info.name
}

// MaxTotalThreadsPerThreadgroup is the largest threadgroup the pipeline runs.
func (p *Pipeline) MaxTotalThreadsPerThreadgroup() int {
	if p == nil {
		return 0
	}
	return p.info.maxThreads
}

// ThreadExecutionWidth is the SIMD width the pipeline runs with.
func (p *Pipeline) ThreadExecutionWidth() int {
	if p == nil {
		return 0
	}
	return p.info.executionWidth
}

// StaticThreadgroupMemory is the threadgroup memory the function declares.
func (p *Pipeline) StaticThreadgroupMemory() int {
	if p == nil {
		return 0
	}
	return p.info.staticThreadgroup
}

func (p *Pipeline) closed() bool { return false }

// Close does nothing.
func (p *Pipeline) Close() error { return nil }
