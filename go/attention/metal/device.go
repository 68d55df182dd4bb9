package metal

import (
	"fmt"
	"time"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// The executor talks to the GPU through these small interfaces. rtDevice below
// implements them over package metalrt (a real GPU on macOS, ErrUnavailable
// elsewhere); the tests implement them with a fake that records what it is asked
// to do and can fail in each way Metal can. A device is also the
// allocator.MetalDevice its output strategies allocate from.

type device interface {
	allocator.MetalDevice
	Supports(f metalrt.Family) bool
	MaxThreadgroupMemory() int
	// OSVersion is the running system's version (bfloat16 needs macOS 14).
	OSVersion() metalrt.OSVersion
	NewQueue() (queue, error)
	NewLibrary(source string, opts metalrt.CompileOptions) (library, error)
	NewLibraryFromData(data []byte) (library, error)
	Close() error
}

type queue interface {
	// Run encodes cmds into one command buffer, commits it, waits (at most the wait
	// limit) and returns its error.
	Run(cmds []command) error
	// SetWaitLimit bounds Run's wait (0: none).
	SetWaitLimit(d time.Duration)
	Close() error
}

type library interface {
	// Pipeline looks up a function by name, specialises it on the constants and makes a
	// compute pipeline of it.
	Pipeline(name string, constants []mslplan.Constant) (pipeline, error)
	Close() error
}

type pipeline interface {
	Name() string
	MaxTotalThreadsPerThreadgroup() int
	StaticThreadgroupMemory() int
	Close() error
}

// buffer is a Metal buffer: the executor's own (from the pool or an output strategy)
// or a caller's, bound where a tensor lives.
type buffer = allocator.MetalBuffer

type commandKind int

const (
	cmdDispatch commandKind = iota
	cmdCopy
	cmdSync // synchronizeResource: on a managed buffer (src)
)

// command is one step of a command buffer.
type command struct {
	kind commandKind

	// cmdDispatch
	pipeline pipeline
	name     string // the kernel's name, for fakes and errors
	groups   [3]int // threadgroups per grid
	threads  [3]int // threads per threadgroup
	buffers  []bufferArg
	bytes    []bytesArg

	// cmdCopy (src, dst, offsets, size); cmdSync (src)
	src, dst             buffer
	srcOffset, dstOffset int
	size                 int
}

type bufferArg struct {
	index   int
	buf     buffer
	offset  int  // setBuffer:offset: — where the tensor starts in the buffer
	size    int  // bytes the kernel may touch from offset (the plan's Binding.Bytes)
	written bool // the kernel writes it
}

type bytesArg struct {
	index int
	data  []byte
}

// ---------------------------------------------------------------- metalrt adapter

// rtDevice is the real device: package metalrt, through the allocator's MetalRuntime
// (which adds a queue for staging blits).
type rtDevice struct {
	*allocator.MetalRuntime
	d *metalrt.Device
}

func openDevice(name string) (*rtDevice, error) {
	d, err := metalrt.Open(name)
	if err != nil {
		return nil, err
	}
	m, err := allocator.NewMetalDevice(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	return &rtDevice{MetalRuntime: m, d: d}, nil
}

func (r *rtDevice) Supports(f metalrt.Family) bool { return r.d.Supports(f) }
func (r *rtDevice) MaxThreadgroupMemory() int      { return r.d.MaxThreadgroupMemory() }
func (r *rtDevice) OSVersion() metalrt.OSVersion {
	v, _ := metalrt.SystemVersion() // never fails where a device exists
	return v
}

func (r *rtDevice) Close() error {
	err := r.MetalRuntime.Close()
	r.d.Close()
	return err
}

func (r *rtDevice) NewQueue() (queue, error) {
	q, err := r.d.NewQueue()
	if err != nil {
		return nil, err
	}
	return rtQueue{q}, nil
}

func (r *rtDevice) NewLibrary(source string, opts metalrt.CompileOptions) (library, error) {
	l, err := r.d.NewLibrary(source, opts)
	if err != nil {
		return nil, err
	}
	return rtLibrary{d: r.d, l: l}, nil
}

func (r *rtDevice) NewLibraryFromData(data []byte) (library, error) {
	l, err := r.d.NewLibraryFromData(data)
	if err != nil {
		return nil, err
	}
	return rtLibrary{d: r.d, l: l}, nil
}

type rtLibrary struct {
	d *metalrt.Device
	l *metalrt.Library
}

func (r rtLibrary) Close() error { return r.l.Close() }

func (r rtLibrary) Pipeline(name string, constants []mslplan.Constant) (pipeline, error) {
	cs := make([]metalrt.BoolConstant, len(constants))
	for i, c := range constants {
		cs[i] = metalrt.BoolConstant{Index: c.Index, Value: c.Value}
	}
	fn, err := r.l.SpecializedFunction(name, cs)
	if err != nil {
		return nil, err
	}
	defer fn.Close() // the pipeline keeps what it needs
	p, err := r.d.NewPipeline(fn)
	if err != nil {
		return nil, err
	}
	return p, nil
}

type rtQueue struct{ q *metalrt.Queue }

func (r rtQueue) Close() error                 { return r.q.Close() }
func (r rtQueue) SetWaitLimit(d time.Duration) { r.q.SetWaitLimit(d) }

func (r rtQueue) Run(cmds []command) error {
	out := make([]metalrt.Command, 0, len(cmds))
	for _, c := range cmds {
		switch c.kind {
		case cmdDispatch:
			p, ok := c.pipeline.(*metalrt.Pipeline)
			if !ok {
				return fmt.Errorf("metal: pipeline %T is not a Metal pipeline", c.pipeline)
			}
			d := metalrt.Dispatch{
				Pipeline: p,
				Grid:     metalrt.Size{X: c.groups[0], Y: c.groups[1], Z: c.groups[2]},
				Group:    metalrt.Size{X: c.threads[0], Y: c.threads[1], Z: c.threads[2]},
			}
			for _, a := range c.buffers {
				b, err := rtBufferOf(a.buf)
				if err != nil {
					return err
				}
				d.Buffers = append(d.Buffers, metalrt.BufferArg{Index: a.index, Buffer: b, Offset: a.offset})
			}
			for _, a := range c.bytes {
				d.Bytes = append(d.Bytes, metalrt.BytesArg{Index: a.index, Data: a.data})
			}
			out = append(out, d)
		case cmdCopy:
			src, err := rtBufferOf(c.src)
			if err != nil {
				return err
			}
			dst, err := rtBufferOf(c.dst)
			if err != nil {
				return err
			}
			out = append(out, metalrt.Copy{Src: src, SrcOffset: c.srcOffset, Dst: dst, DstOffset: c.dstOffset, Size: c.size})
		case cmdSync:
			src, err := rtBufferOf(c.src)
			if err != nil {
				return err
			}
			out = append(out, metalrt.Synchronize{Buffer: src})
		}
	}
	return r.q.Run(out...)
}

func rtBufferOf(b buffer) (*metalrt.Buffer, error) {
	rb, ok := b.(*metalrt.Buffer)
	if !ok {
		return nil, fmt.Errorf("metal: buffer %T is not a Metal buffer", b)
	}
	return rb, nil
}
