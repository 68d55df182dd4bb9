//go:build darwin && !ios && cgo

package metalrt

/*
#cgo CFLAGS: -x objective-c -fobjc-arc -Werror -mmacosx-version-min=12.0
#cgo LDFLAGS: -framework Metal -framework Foundation -framework CoreGraphics
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"slices"
	"unsafe"
)

// The Go mirrors of shim.h's enums must match it; each line fails to compile
// when a value differs (the index of a one-element array must be 0).
var (
	_ = [1]struct{}{}[codeOK-C.MR_OK]
	_ = [1]struct{}{}[codeNoDevice-C.MR_ERR_NO_DEVICE]
	_ = [1]struct{}{}[codeCompile-C.MR_ERR_COMPILE]
	_ = [1]struct{}{}[codeFunction-C.MR_ERR_FUNCTION]
	_ = [1]struct{}{}[codePipeline-C.MR_ERR_PIPELINE]
	_ = [1]struct{}{}[codeNoMemory-C.MR_ERR_NO_MEMORY]
	_ = [1]struct{}{}[codeCommand-C.MR_ERR_COMMAND]
	_ = [1]struct{}{}[codeEncode-C.MR_ERR_ENCODE]
	_ = [1]struct{}{}[codeInvalid-C.MR_ERR_INVALID]
	_ = [1]struct{}{}[int(Shared)-C.MR_SHARED]
	_ = [1]struct{}{}[int(Private)-C.MR_PRIVATE]
	_ = [1]struct{}{}[int(Managed)-C.MR_MANAGED]
	_ = [1]struct{}{}[int(MathDefault)-C.MR_MATH_DEFAULT]
	_ = [1]struct{}{}[int(MathSafe)-C.MR_MATH_SAFE]
	_ = [1]struct{}{}[int(MathRelaxed)-C.MR_MATH_RELAXED]
	_ = [1]struct{}{}[int(MathFast)-C.MR_MATH_FAST]
	_ = [1]struct{}{}[int(kindDispatch)-C.MR_CMD_DISPATCH]
	_ = [1]struct{}{}[int(kindCopy)-C.MR_CMD_COPY]
	_ = [1]struct{}{}[int(kindSync)-C.MR_CMD_SYNC]
)

// take unpacks a shim result: the retained handle, any message that came with
// success (compiler warnings), or an *Error carrying the message.
func take(op string, r C.mr_result) (C.mr_ref, string, error) {
	var msg string
	if r.err != nil {
		msg = C.GoString(r.err)
		C.free(unsafe.Pointer(r.err))
	}
	if r.code != C.MR_OK {
		if r.ref != nil {
			C.mr_release(r.ref)
		}
		return nil, "", &Error{Op: op, Kind: kindOf(int(r.code)), Detail: msg}
	}
	return r.ref, msg, nil
}

// track registers ref's release as a leak backstop, for when Close is never
// called. It runs on the runtime's cleanup goroutine; CFRelease is thread safe.
func track[T any](owner *T, ref C.mr_ref) runtime.Cleanup {
	return runtime.AddCleanup(owner, func(r C.mr_ref) { C.mr_release(r) }, ref)
}

// release gives ref back to Objective-C once; later calls do nothing.
func release(ref *C.mr_ref, c *runtime.Cleanup) {
	if *ref == nil {
		return
	}
	c.Stop()
	C.mr_release(*ref)
	*ref = nil
}

// ---------------------------------------------------------------- devices

// Device is a Metal GPU (id<MTLDevice>). Its methods are safe for concurrent
// use; Close must not run concurrently with them.
type Device struct {
	ref     C.mr_ref
	cleanup runtime.Cleanup
	name    string
	maxTG   int
	unified bool
}

func newDevice(ref C.mr_ref) *Device {
	name := C.mr_device_name(ref)
	d := &Device{
		ref:     ref,
		name:    C.GoString(name),
		maxTG:   int(C.mr_device_max_threadgroup_memory(ref)),
		unified: C.mr_device_has_unified_memory(ref) != 0,
	}
	C.free(unsafe.Pointer(name))
	d.cleanup = track(d, ref)
	return d
}

// DeviceNames lists the names of the system's Metal devices (MTLCopyAllDevices).
func DeviceNames() ([]string, error) {
	n := int(C.mr_device_count())
	names := make([]string, 0, n)
	for i := range n {
		ref, _, err := take("DeviceNames", C.mr_device_at(C.size_t(i)))
		if err != nil {
			return nil, err
		}
		cname := C.mr_device_name(ref)
		names = append(names, C.GoString(cname))
		C.free(unsafe.Pointer(cname))
		C.mr_release(ref)
	}
	return names, nil
}

// OpenDefault opens the system default device (MTLCreateSystemDefaultDevice);
// the error wraps ErrNoDevice when there is none.
func OpenDefault() (*Device, error) {
	ref, _, err := take("OpenDefault", C.mr_device_default())
	if err != nil {
		return nil, err
	}
	return newDevice(ref), nil
}

// Open opens the device called name, or the system default when name is "".
func Open(name string) (*Device, error) {
	if name == "" {
		return OpenDefault()
	}
	n := int(C.mr_device_count())
	var seen []string
	for i := range n {
		ref, _, err := take("Open", C.mr_device_at(C.size_t(i)))
		if err != nil {
			return nil, err
		}
		d := newDevice(ref)
		if d.name == name {
			return d, nil
		}
		seen = append(seen, d.name)
		d.Close()
	}
	return nil, newError("Open", ErrNoDevice, "no device named %q (have %q)", name, seen)
}

// Name is the device's name, e.g. "Apple M2".
func (d *Device) Name() string {
	if d == nil {
		return ""
	}
	return d.name
}

// Supports reports whether the device supports family f (supportsFamily:).
func (d *Device) Supports(f Family) bool {
	if d == nil || d.ref == nil {
		return false
	}
	return C.mr_device_supports_family(d.ref, C.int64_t(f)) != 0
}

// Families returns the known families the device supports, Apple families
// newest first.
func (d *Device) Families() []Family {
	var out []Family
	for _, f := range knownFamilies {
		if d.Supports(f) {
			out = append(out, f)
		}
	}
	return out
}

// MaxThreadgroupMemory is the most threadgroup memory one threadgroup may use,
// in bytes (maxThreadgroupMemoryLength).
func (d *Device) MaxThreadgroupMemory() int {
	if d == nil {
		return 0
	}
	return d.maxTG
}

// HasUnifiedMemory reports whether the CPU and GPU share memory.
func (d *Device) HasUnifiedMemory() bool { return d != nil && d.unified }

func (d *Device) check(op string) error {
	if d == nil || d.ref == nil {
		return newError(op, ErrClosed, "device is nil or closed")
	}
	return nil
}

// Close releases the device. It is nil-safe and idempotent. Objects made from
// the device stay valid; Metal keeps the device alive for them.
func (d *Device) Close() error {
	if d != nil {
		release(&d.ref, &d.cleanup)
	}
	return nil
}

// ---------------------------------------------------------------- queues

// Queue is a command queue (id<MTLCommandQueue>). Run may be called from
// several goroutines at once.
type Queue struct {
	ref     C.mr_ref
	cleanup runtime.Cleanup
	maxTG   int
}

// NewQueue creates a command queue (newCommandQueue).
func (d *Device) NewQueue() (*Queue, error) {
	if err := d.check("NewQueue"); err != nil {
		return nil, err
	}
	ref, _, err := take("NewQueue", C.mr_queue_new(d.ref))
	if err != nil {
		return nil, err
	}
	q := &Queue{ref: ref, maxTG: d.maxTG}
	q.cleanup = track(q, ref)
	return q, nil
}

// Close releases the queue; nil-safe and idempotent.
func (q *Queue) Close() error {
	if q != nil {
		release(&q.ref, &q.cleanup)
	}
	return nil
}

// Run encodes cmds into one command buffer, commits it, waits for it and
// returns its error (an *Error wrapping ErrCommandBuffer or ErrOutOfMemory when
// the command buffer's status is MTLCommandBufferStatusError). Every command is
// checked first; an invalid one returns an error wrapping ErrInvalid (or
// ErrClosed) and nothing runs.
func (q *Queue) Run(cmds ...Command) error {
	const op = "Queue.Run"
	if q == nil || q.ref == nil {
		return newError(op, ErrClosed, "queue is nil or closed")
	}
	e, err := encode(op, cmds, q.maxTG)
	if err != nil {
		return err
	}
	if len(e.cmds) == 0 {
		return nil
	}
	ccmds := make([]C.mr_command, len(e.cmds))
	for i, c := range e.cmds {
		var cc C.mr_command
		cc.kind = C.int(c.kind)
		switch c.kind {
		case kindDispatch:
			cc.pipeline = c.pipeline.ref
			cc.grid = [3]C.size_t{C.size_t(c.grid.X), C.size_t(c.grid.Y), C.size_t(c.grid.Z)}
			cc.group = [3]C.size_t{C.size_t(c.group.X), C.size_t(c.group.Y), C.size_t(c.group.Z)}
			cc.first_buffer, cc.nbuffers = C.uint32_t(c.firstBuffer), C.uint32_t(c.nBuffers)
			cc.first_bytes, cc.nbytes = C.uint32_t(c.firstBytes), C.uint32_t(c.nBytes)
			cc.first_tg, cc.ntg = C.uint32_t(c.firstTG), C.uint32_t(c.nTG)
		case kindCopy:
			cc.src, cc.dst = c.src.ref, c.dst.ref
			cc.src_offset, cc.dst_offset, cc.size = C.size_t(c.srcOffset), C.size_t(c.dstOffset), C.size_t(c.size)
		case kindSync:
			cc.src = c.src.ref
		}
		ccmds[i] = cc
	}
	// The argument arrays hold only C handles and integers, and the arena only
	// bytes, so passing them is within cgo's pointer rules; the shim copies
	// what it needs before returning.
	cbufs := make([]C.mr_buffer_arg, len(e.buffers)+1)
	for i, b := range e.buffers {
		cbufs[i] = C.mr_buffer_arg{index: C.uint32_t(b.index), buffer: b.buffer.ref, offset: C.size_t(b.offset)}
	}
	cbytes := make([]C.mr_bytes_arg, len(e.bytes)+1)
	for i, b := range e.bytes {
		cbytes[i] = C.mr_bytes_arg{index: C.uint32_t(b.index), offset: C.size_t(b.offset), length: C.size_t(b.length)}
	}
	ctgs := make([]C.mr_tg_arg, len(e.tgs)+1)
	for i, t := range e.tgs {
		ctgs[i] = C.mr_tg_arg{index: C.uint32_t(t.index), length: C.size_t(t.length)}
	}
	var arena *C.uint8_t
	if len(e.arena) > 0 {
		arena = (*C.uint8_t)(unsafe.Pointer(&e.arena[0]))
	}
	r := C.mr_queue_run(q.ref, &ccmds[0], C.size_t(len(ccmds)), &cbufs[0], &cbytes[0], arena, &ctgs[0])
	// Keep every handle the commands name alive until the GPU is done with
	// them (the shim waits), even if the caller dropped its last reference.
	runtime.KeepAlive(cmds)
	runtime.KeepAlive(e)
	_, _, err = take(op, r)
	return err
}

// ---------------------------------------------------------------- buffers

// Buffer is GPU memory (id<MTLBuffer>).
type Buffer struct {
	ref      C.mr_ref
	cleanup  runtime.Cleanup
	info     bufferInfo
	contents unsafe.Pointer // nil for Private
}

// NewBuffer allocates n zeroed bytes in the given storage mode
// (newBufferWithLength:options:). Metal may round the length up; Len reports it.
func (d *Device) NewBuffer(n int, mode StorageMode) (*Buffer, error) {
	const op = "NewBuffer"
	if err := d.check(op); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, newError(op, ErrInvalid, "length %d is not positive", n)
	}
	if !mode.valid() {
		return nil, newError(op, ErrInvalid, "unknown storage mode %d", int(mode))
	}
	ref, _, err := take(op, C.mr_buffer_new(d.ref, C.size_t(n), C.int(mode)))
	if err != nil {
		return nil, err
	}
	b := &Buffer{ref: ref, info: bufferInfo{length: int(C.mr_buffer_length(ref)), mode: mode}}
	if mode.HostVisible() {
		b.contents = C.mr_buffer_contents(ref)
	}
	b.cleanup = track(b, ref)
	return b, nil
}

// Len is the buffer's length in bytes; 0 after Close.
func (b *Buffer) Len() int {
	if b == nil || b.ref == nil {
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

// Bytes returns the CPU view of a Shared or Managed buffer (contents), valid
// until Close; nil for Private buffers and after Close. Do not touch it while a
// command buffer that writes the buffer runs.
func (b *Buffer) Bytes() []byte {
	if b == nil || b.ref == nil || b.contents == nil {
		return nil
	}
	return unsafe.Slice((*byte)(b.contents), b.info.length)
}

// DidModify tells Metal the CPU wrote [off, off+n) of a Managed buffer
// (didModifyRange:); it does nothing for other modes.
func (b *Buffer) DidModify(off, n int) error {
	const op = "Buffer.DidModify"
	if b == nil || b.ref == nil {
		return newError(op, ErrClosed, "buffer is nil or closed")
	}
	if off < 0 || n < 0 || off+n > b.info.length {
		return newError(op, ErrInvalid, "range [%d, %d) is outside the buffer's %d bytes", off, off+n, b.info.length)
	}
	if b.info.mode == Managed && n > 0 {
		C.mr_buffer_did_modify(b.ref, C.size_t(off), C.size_t(n))
	}
	return nil
}

func (b *Buffer) closed() bool { return b.ref == nil }

// Close releases the buffer; nil-safe and idempotent. Slices from Bytes must not
// be used afterwards.
func (b *Buffer) Close() error {
	if b != nil {
		release(&b.ref, &b.cleanup)
		b.contents = nil
	}
	return nil
}

// ---------------------------------------------------------------- libraries

// Library is a set of compiled functions (id<MTLLibrary>).
type Library struct {
	ref      C.mr_ref
	cleanup  runtime.Cleanup
	warnings string
}

// NewLibrary compiles Metal Shading Language source
// (newLibraryWithSource:options:error:). Metal has no include path here: the
// source must be self-contained. A compile error wraps ErrCompile and carries
// the compiler's message.
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	const op = "NewLibrary"
	if err := d.check(op); err != nil {
		return nil, err
	}
	if source == "" {
		return nil, newError(op, ErrInvalid, "source is empty")
	}
	lang, err := opts.Language.raw()
	if err != nil {
		return nil, newError(op, ErrInvalid, "%v", err)
	}
	if opts.Math < MathDefault || opts.Math > MathFast {
		return nil, newError(op, ErrInvalid, "unknown math mode %d", int(opts.Math))
	}
	keys := make([]string, 0, len(opts.Macros))
	for k := range opts.Macros {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var names, values **C.char
	if n := len(keys); n > 0 {
		size := C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
		names, values = (**C.char)(C.malloc(size)), (**C.char)(C.malloc(size))
		ns, vs := unsafe.Slice(names, n), unsafe.Slice(values, n)
		for i, k := range keys {
			ns[i], vs[i] = C.CString(k), C.CString(opts.Macros[k])
		}
		defer func() {
			for i := range n {
				C.free(unsafe.Pointer(ns[i]))
				C.free(unsafe.Pointer(vs[i]))
			}
			C.free(unsafe.Pointer(names))
			C.free(unsafe.Pointer(values))
		}()
	}
	// The source is passed for the call's duration only; the shim copies it
	// into an NSString.
	src := (*C.char)(unsafe.Pointer(unsafe.StringData(source)))
	r := C.mr_library_from_source(d.ref, src, C.size_t(len(source)), C.uint32_t(lang), C.int(opts.Math), names, values, C.size_t(len(keys)))
	runtime.KeepAlive(source)
	ref, warnings, err := take(op, r)
	if err != nil {
		return nil, err
	}
	l := &Library{ref: ref, warnings: warnings}
	l.cleanup = track(l, ref)
	return l, nil
}

// NewLibraryFromData loads a precompiled metallib (newLibraryWithData:error:).
// The bytes are copied; data may be reused afterwards.
func (d *Device) NewLibraryFromData(data []byte) (*Library, error) {
	const op = "NewLibraryFromData"
	if err := d.check(op); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, newError(op, ErrInvalid, "metallib data is empty")
	}
	ref, _, err := take(op, C.mr_library_from_data(d.ref, unsafe.Pointer(&data[0]), C.size_t(len(data))))
	runtime.KeepAlive(data)
	if err != nil {
		return nil, err
	}
	l := &Library{ref: ref}
	l.cleanup = track(l, ref)
	return l, nil
}

// Warnings returns the compiler's warnings, if it gave any.
func (l *Library) Warnings() string {
	if l == nil {
		return ""
	}
	return l.warnings
}

// Close releases the library; nil-safe and idempotent.
func (l *Library) Close() error {
	if l != nil {
		release(&l.ref, &l.cleanup)
	}
	return nil
}

// Function is one function of a library (id<MTLFunction>).
type Function struct {
	ref     C.mr_ref
	cleanup runtime.Cleanup
	name    string
}

// Function looks a function up by name (newFunctionWithName:); a missing one
// wraps ErrFunctionNotFound.
func (l *Library) Function(name string) (*Function, error) {
	const op = "Library.Function"
	if l == nil || l.ref == nil {
		return nil, newError(op, ErrClosed, "library is nil or closed")
	}
	if name == "" {
		return nil, newError(op, ErrInvalid, "name is empty")
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	ref, _, err := take(op, C.mr_function_new(l.ref, cname))
	if err != nil {
		return nil, err
	}
	f := &Function{ref: ref, name: name}
	f.cleanup = track(f, ref)
	return f, nil
}

// Name is the function's name.
func (f *Function) Name() string {
	if f == nil {
		return ""
	}
	return f.name
}

// Close releases the function; nil-safe and idempotent.
func (f *Function) Close() error {
	if f != nil {
		release(&f.ref, &f.cleanup)
	}
	return nil
}

// ---------------------------------------------------------------- pipelines

// Pipeline is a compute pipeline (id<MTLComputePipelineState>).
type Pipeline struct {
	ref     C.mr_ref
	cleanup runtime.Cleanup
	info    pipelineInfo
}

// NewPipeline creates a compute pipeline from a function
// (newComputePipelineStateWithFunction:error:); a failure wraps ErrPipeline.
func (d *Device) NewPipeline(f *Function) (*Pipeline, error) {
	const op = "NewPipeline"
	if err := d.check(op); err != nil {
		return nil, err
	}
	if f == nil || f.ref == nil {
		return nil, newError(op, ErrClosed, "function is nil or closed")
	}
	ref, _, err := take(op, C.mr_pipeline_new(d.ref, f.ref))
	if err != nil {
		err.(*Error).Detail = f.name + ": " + err.(*Error).Detail
		return nil, err
	}
	p := &Pipeline{ref: ref, info: pipelineInfo{
		name:              f.name,
		maxThreads:        int(C.mr_pipeline_max_threads(ref)),
		executionWidth:    int(C.mr_pipeline_execution_width(ref)),
		staticThreadgroup: int(C.mr_pipeline_static_threadgroup_memory(ref)),
	}}
	p.cleanup = track(p, ref)
	return p, nil
}

// Name is the name of the pipeline's function.
func (p *Pipeline) Name() string {
	if p == nil {
		return ""
	}
	return p.info.name
}

// MaxTotalThreadsPerThreadgroup is the largest threadgroup this pipeline runs.
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

// StaticThreadgroupMemory is the threadgroup memory the function declares
// itself, in bytes (staticThreadgroupMemoryLength).
func (p *Pipeline) StaticThreadgroupMemory() int {
	if p == nil {
		return 0
	}
	return p.info.staticThreadgroup
}

func (p *Pipeline) closed() bool { return p.ref == nil }

// Close releases the pipeline; nil-safe and idempotent.
func (p *Pipeline) Close() error {
	if p != nil {
		release(&p.ref, &p.cleanup)
	}
	return nil
}
