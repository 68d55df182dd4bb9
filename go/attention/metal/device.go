package metal

import (
	"fmt"

	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// The executor talks to the GPU through these small interfaces. rtDevice below
// implements them over package metalrt (a real GPU on macOS, ErrUnavailable
// elsewhere); the tests implement them with a fake that records what it is asked
// to do and can fail in each way Metal can.

type device interface {
	Name() string
	Supports(f metalrt.Family) bool
	MaxThreadgroupMemory() int
	NewQueue() (queue, error)
	NewBuffer(n int, mode metalrt.StorageMode) (buffer, error)
	NewLibrary(source string, opts metalrt.CompileOptions) (library, error)
	// External wraps a caller's Metal buffer so it can be copied from; closing
	// the wrapper leaves the caller's buffer alone.
	External(b *metalrt.Buffer) (buffer, error)
	Close() error
}

type queue interface {
	// Run encodes cmds into one command buffer, commits it, waits and returns
	// its error.
	Run(cmds []command) error
	Close() error
}

type library interface {
	// Pipeline looks up a function by name and makes a compute pipeline of it.
	Pipeline(name string) (pipeline, error)
	Close() error
}

type pipeline interface {
	Name() string
	MaxTotalThreadsPerThreadgroup() int
	StaticThreadgroupMemory() int
	Close() error
}

type buffer interface {
	Len() int
	Mode() metalrt.StorageMode
	// Bytes is the CPU view of a host-visible buffer; nil for private ones.
	Bytes() []byte
	Close() error
}

type commandKind int

const (
	cmdDispatch commandKind = iota
	cmdCopy
)

// command is one step of a command buffer: a dispatch or a blit copy.
type command struct {
	kind commandKind

	// cmdDispatch
	pipeline pipeline
	groups   [3]int // threadgroups per grid
	threads  [3]int // threads per threadgroup
	buffers  []bufferArg
	bytes    []bytesArg

	// cmdCopy
	src, dst             buffer
	srcOffset, dstOffset int
	size                 int
}

type bufferArg struct {
	index  int
	buf    buffer
	offset int
}

type bytesArg struct {
	index int
	data  []byte
}

// ---------------------------------------------------------------- metalrt adapter

// rtDevice is the real device: package metalrt.
type rtDevice struct{ d *metalrt.Device }

func openDevice(name string) (device, error) {
	d, err := metalrt.Open(name)
	if err != nil {
		return nil, err
	}
	return rtDevice{d}, nil
}

func (r rtDevice) Name() string                   { return r.d.Name() }
func (r rtDevice) Supports(f metalrt.Family) bool { return r.d.Supports(f) }
func (r rtDevice) MaxThreadgroupMemory() int      { return r.d.MaxThreadgroupMemory() }
func (r rtDevice) Close() error                   { return r.d.Close() }
func (r rtDevice) External(b *metalrt.Buffer) (buffer, error) {
	if b == nil || b.Len() == 0 {
		return nil, fmt.Errorf("metal: external buffer is nil or closed")
	}
	return rtBuffer{b: b, external: true}, nil
}

func (r rtDevice) NewQueue() (queue, error) {
	q, err := r.d.NewQueue()
	if err != nil {
		return nil, err
	}
	return rtQueue{q}, nil
}

func (r rtDevice) NewBuffer(n int, mode metalrt.StorageMode) (buffer, error) {
	b, err := r.d.NewBuffer(n, mode)
	if err != nil {
		return nil, err
	}
	return rtBuffer{b: b}, nil
}

func (r rtDevice) NewLibrary(source string, opts metalrt.CompileOptions) (library, error) {
	l, err := r.d.NewLibrary(source, opts)
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

func (r rtLibrary) Pipeline(name string) (pipeline, error) {
	fn, err := r.l.Function(name)
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

type rtBuffer struct {
	b        *metalrt.Buffer
	external bool
}

func (r rtBuffer) Len() int                  { return r.b.Len() }
func (r rtBuffer) Mode() metalrt.StorageMode { return r.b.Mode() }
func (r rtBuffer) Bytes() []byte             { return r.b.Bytes() }
func (r rtBuffer) Close() error {
	if r.external {
		return nil
	}
	return r.b.Close()
}

type rtQueue struct{ q *metalrt.Queue }

func (r rtQueue) Close() error { return r.q.Close() }

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
		}
	}
	return r.q.Run(out...)
}

func rtBufferOf(b buffer) (*metalrt.Buffer, error) {
	rb, ok := b.(rtBuffer)
	if !ok {
		return nil, fmt.Errorf("metal: buffer %T is not a Metal buffer", b)
	}
	return rb.b, nil
}
