//go:build darwin && !ios && cgo

package metalrt

/*
#cgo CFLAGS: -x objective-c -fobjc-arc
#cgo LDFLAGS: -framework Metal -framework Foundation -framework CoreGraphics
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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
	_ = [1]struct{}{}[codeDeviceLost-C.MR_ERR_DEVICE_LOST]
	_ = [1]struct{}{}[codeTimeout-C.MR_ERR_TIMEOUT]
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
	ref        C.mr_ref
	cleanup    runtime.Cleanup
	name       string
	maxTG      int
	unified    bool
	registryID uint64
	maxBuffer  int64
	workingSet int64
	faults     *faults
}

func newDevice(ref C.mr_ref) *Device {
	name := C.mr_device_name(ref)
	d := &Device{
		ref:        ref,
		name:       C.GoString(name),
		maxTG:      int(C.mr_device_max_threadgroup_memory(ref)),
		unified:    C.mr_device_has_unified_memory(ref) != 0,
		registryID: uint64(C.mr_device_registry_id(ref)),
		maxBuffer:  clampInt64(uint64(C.mr_device_max_buffer_length(ref))),
		workingSet: clampInt64(uint64(C.mr_device_recommended_working_set(ref))),
		faults:     &faults{},
	}
	C.free(unsafe.Pointer(name))
	d.cleanup = track(d, ref)
	return d
}

func (m StorageMode) valid() bool { return m >= Shared && m <= Managed }

type atomicDuration struct{ v atomic.Int64 }

func (a *atomicDuration) Load() time.Duration   { return time.Duration(a.v.Load()) }
func (a *atomicDuration) Store(d time.Duration) { a.v.Store(int64(d)) }

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

var osVersion = sync.OnceValue(func() OSVersion {
	var major, minor, patch C.int
	C.mr_os_version(&major, &minor, &patch)
	return OSVersion{Major: int(major), Minor: int(minor), Patch: int(patch)}
})

// SystemVersion is the running macOS version (NSProcessInfo operatingSystemVersion).
func SystemVersion() (OSVersion, error) { return osVersion(), nil }

// SetFaultHook installs h (nil removes it) on the device and on every queue, library and
// buffer made from it, before or after the call: a test hook that makes the shim fail on
// purpose (see Fault). Safe to call concurrently with other methods.
func (d *Device) SetFaultHook(h FaultHook) {
	if d == nil {
		return
	}
	if h == nil {
		d.faults.hook.Store(nil)
		return
	}
	d.faults.hook.Store(&h)
}

// RegistryID identifies the GPU across Device values and processes (registryID): two
// Devices with the same RegistryID are the same GPU, and a buffer of one can be used
// with the other.
func (d *Device) RegistryID() uint64 {
	if d == nil {
		return 0
	}
	return d.registryID
}

// MaxBufferLength is the largest buffer the device allocates, in bytes (maxBufferLength).
func (d *Device) MaxBufferLength() int64 {
	if d == nil {
		return 0
	}
	return d.maxBuffer
}

// RecommendedWorkingSet is the memory the device can use without hurting performance,
// in bytes (recommendedMaxWorkingSetSize).
func (d *Device) RecommendedWorkingSet() int64 {
	if d == nil {
		return 0
	}
	return d.workingSet
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
	ok := C.mr_device_supports_family(d.ref, C.int64_t(f)) != 0
	runtime.KeepAlive(d)
	return ok
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
	faults  *faults
	waitNS  atomicDuration
}

// NewQueue creates a command queue (newCommandQueue). Its wait limit is
// DefaultWaitLimit.
func (d *Device) NewQueue() (*Queue, error) {
	if err := d.check(OpNewQueue); err != nil {
		return nil, err
	}
	ref, _, err := take(OpNewQueue, C.mr_queue_new(d.ref, C.int(d.faults.code(OpNewQueue))))
	runtime.KeepAlive(d)
	if err != nil {
		return nil, err
	}
	q := &Queue{ref: ref, maxTG: d.maxTG, faults: d.faults}
	q.waitNS.Store(DefaultWaitLimit)
	q.cleanup = track(q, ref)
	return q, nil
}

// SetWaitLimit bounds how long Run waits for a command buffer; 0 means no limit.
func (q *Queue) SetWaitLimit(d time.Duration) {
	if q != nil {
		q.waitNS.Store(max(d, 0))
	}
}

// WaitLimit is the current wait limit (0: none).
func (q *Queue) WaitLimit() time.Duration {
	if q == nil {
		return 0
	}
	return q.waitNS.Load()
}

// Close releases the queue; nil-safe and idempotent.
func (q *Queue) Close() error {
	if q != nil {
		release(&q.ref, &q.cleanup)
	}
	return nil
}

// Run encodes cmds into one command buffer, commits it, waits for it (at most
// the wait limit) and returns its error: an *Error wrapping ErrDeviceLost
// (device removed, access revoked or not permitted), ErrOutOfMemory or
// ErrCommandBuffer when the command buffer's status is
// MTLCommandBufferStatusError, ErrTimeout when the wait limit passed first (the
// command buffer may still be running and still uses its buffers: do not reuse
// them). Every command is checked first; an invalid one returns an error
// wrapping ErrInvalid (or ErrClosed) and nothing runs.
func (q *Queue) Run(cmds ...Command) error {
	const op = OpRun
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
	r := C.mr_queue_run(q.ref, &ccmds[0], C.size_t(len(ccmds)), &cbufs[0], &cbytes[0], arena, &ctgs[0],
		C.uint64_t(q.waitNS.Load()), C.int(q.faults.code(op)))
	// Keep the queue and every handle the commands name alive until the shim
	// returns, even if the caller dropped its last reference: their cleanups
	// would otherwise release them while the shim uses them.
	runtime.KeepAlive(q)
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
	device   uint64         // the device's RegistryID
	noCopy   bool
}

// NewBuffer allocates n zeroed bytes in the given storage mode
// (newBufferWithLength:options:). Metal may round the length up; Len reports it.
func (d *Device) NewBuffer(n int, mode StorageMode) (*Buffer, error) {
	return d.newBuffer(OpNewBuffer, n, mode)
}

// NewBufferNoCopy allocates n zeroed bytes of host memory, outside the Go heap, and
// hands them to Metal without a copy (newBufferWithBytesNoCopy:length:options:
// deallocator:): the shim mmaps whole pages (so Len is n rounded up to the page size),
// and the buffer's deallocator unmaps them when Metal destroys the buffer, after Close
// and after the last command buffer that uses it. mode is Shared or Managed.
func (d *Device) NewBufferNoCopy(n int, mode StorageMode) (*Buffer, error) {
	if mode == Private {
		return nil, newError(OpNewBufferNoCopy, ErrInvalid, "a no-copy buffer is host memory: shared or managed, not private")
	}
	return d.newBuffer(OpNewBufferNoCopy, n, mode)
}

func (d *Device) newBuffer(op string, n int, mode StorageMode) (*Buffer, error) {
	if err := d.check(op); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, newError(op, ErrInvalid, "length %d is not positive", n)
	}
	if !mode.valid() {
		return nil, newError(op, ErrInvalid, "unknown storage mode %d", int(mode))
	}
	fault := C.int(d.faults.code(op))
	var r C.mr_result
	if op == OpNewBufferNoCopy {
		r = C.mr_buffer_new_nocopy(d.ref, C.size_t(n), C.int(mode), fault)
	} else {
		r = C.mr_buffer_new(d.ref, C.size_t(n), C.int(mode), fault)
	}
	runtime.KeepAlive(d)
	ref, _, err := take(op, r)
	if err != nil {
		return nil, err
	}
	b := &Buffer{ref: ref, info: bufferInfo{length: int(C.mr_buffer_length(ref)), mode: mode}, device: d.registryID, noCopy: op == OpNewBufferNoCopy}
	if mode.HostVisible() {
		b.contents = C.mr_buffer_contents(ref)
	}
	b.cleanup = track(b, ref)
	return b, nil
}

// DeviceID is the RegistryID of the device the buffer belongs to.
func (b *Buffer) DeviceID() uint64 {
	if b == nil {
		return 0
	}
	return b.device
}

// NoCopy reports whether the buffer wraps host memory the shim allocated
// (NewBufferNoCopy).
func (b *Buffer) NoCopy() bool { return b != nil && b.noCopy }

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

// Bytes returns the CPU view of a Shared or Managed buffer (contents); nil for
// Private buffers and after Close. The slice points into Metal's memory, which
// the Go garbage collector does not know about: it is valid only while the
// *Buffer is reachable and open. Keep the *Buffer (or a value holding it, such
// as a tensor storage) alive for as long as the slice is used; once the buffer
// is closed or collected, the memory may be unmapped. Do not touch it while a
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
		runtime.KeepAlive(b)
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
	faults   *faults
}

// NewLibrary compiles Metal Shading Language source
// (newLibraryWithSource:options:error:). Metal has no include path here: the
// source must be self-contained. A compile error wraps ErrCompile and carries
// the compiler's message.
func (d *Device) NewLibrary(source string, opts CompileOptions) (*Library, error) {
	const op = OpNewLibrary
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
	r := C.mr_library_from_source(d.ref, src, C.size_t(len(source)), C.uint32_t(lang), C.int(opts.Math), names, values, C.size_t(len(keys)),
		C.int(d.faults.code(op)))
	runtime.KeepAlive(source)
	runtime.KeepAlive(d)
	ref, warnings, err := take(op, r)
	if err != nil {
		return nil, err
	}
	l := &Library{ref: ref, warnings: warnings, faults: d.faults}
	l.cleanup = track(l, ref)
	return l, nil
}

// NewLibraryFromData loads a precompiled metallib (newLibraryWithData:error:).
// The bytes are copied; data may be reused afterwards.
func (d *Device) NewLibraryFromData(data []byte) (*Library, error) {
	const op = OpNewLibraryFromData
	if err := d.check(op); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, newError(op, ErrInvalid, "metallib data is empty")
	}
	ref, _, err := take(op, C.mr_library_from_data(d.ref, unsafe.Pointer(&data[0]), C.size_t(len(data)), C.int(d.faults.code(op))))
	runtime.KeepAlive(data)
	runtime.KeepAlive(d)
	if err != nil {
		return nil, err
	}
	l := &Library{ref: ref, faults: d.faults}
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
	return l.SpecializedFunction(name, nil)
}

// SpecializedFunction looks a function up by name and specialises it on the given
// boolean function constants (newFunctionWithName:constantValues:error:); with no
// constants it is Function. A missing function, or constants the function cannot take,
// wrap ErrFunctionNotFound with Metal's message.
func (l *Library) SpecializedFunction(name string, constants []BoolConstant) (*Function, error) {
	const op = OpFunction
	if l == nil || l.ref == nil {
		return nil, newError(op, ErrClosed, "library is nil or closed")
	}
	if name == "" {
		return nil, newError(op, ErrInvalid, "name is empty")
	}
	n := len(constants)
	idx := make([]C.uint32_t, n+1) // +1: never empty, so &idx[0] is valid
	val := make([]C.uint8_t, n+1)
	for i, c := range constants {
		if c.Index < 0 || c.Index > 0xffff {
			return nil, newError(op, ErrInvalid, "function constant index %d is outside [0, 65535]", c.Index)
		}
		idx[i] = C.uint32_t(c.Index)
		if c.Value {
			val[i] = 1
		}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	// idx and val hold only integers: within cgo's pointer rules; the shim copies
	// them into MTLFunctionConstantValues before returning.
	ref, _, err := take(op, C.mr_function_new(l.ref, cname, &idx[0], &val[0], C.size_t(n), C.int(l.faults.code(op))))
	runtime.KeepAlive(l)
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
	const op = OpNewPipeline
	if err := d.check(op); err != nil {
		return nil, err
	}
	if f == nil || f.ref == nil {
		return nil, newError(op, ErrClosed, "function is nil or closed")
	}
	ref, _, err := take(op, C.mr_pipeline_new(d.ref, f.ref, C.int(d.faults.code(op))))
	runtime.KeepAlive(d)
	runtime.KeepAlive(f)
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
