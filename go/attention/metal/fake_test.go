package metal

import (
	"fmt"
	"sync"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// fakeDevice stands in for a Metal GPU in the Linux tests. It records what the
// executor asks of it, "runs" dispatches by filling the buffers a kernel writes
// with a recognisable byte (its binding index + 1) and blits by copying, and can
// be told to fail in each way a Metal device can.
type fakeDevice struct {
	name     string
	families map[metalrt.Family]bool
	maxTG    int
	maxThr   int // pipelines' maxTotalThreadsPerThreadgroup

	// Failures.
	failQueue    error
	failCompile  error
	failPipeline map[string]error // by kernel name; "*" for every kernel
	failAllocAt  int              // fail the n-th NewBuffer (1-based); 0: never
	failRun      error            // returned by Run after it has written the outputs

	mu        sync.Mutex
	allocs    int
	live      map[*fakeBuffer]bool
	compiles  int
	sources   []string
	opts      []metalrt.CompileOptions
	runs      [][]command
	snapshots []map[int][]byte // per run: binding index -> bytes of the bound buffer, as the GPU saw them
	closed    bool
	queues    []*fakeQueue
	libs      []*fakeLibrary
	pipes     []*fakePipeline
	externals map[*metalrt.Buffer]*fakeBuffer
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{
		name:      "Fake GPU",
		families:  map[metalrt.Family]bool{metalrt.FamilyApple7: true, metalrt.FamilyApple8: true, metalrt.FamilyMac2: true},
		maxTG:     32 << 10,
		maxThr:    1024,
		live:      map[*fakeBuffer]bool{},
		externals: map[*metalrt.Buffer]*fakeBuffer{},
	}
}

func (f *fakeDevice) Name() string                     { return f.name }
func (f *fakeDevice) Supports(fam metalrt.Family) bool { return f.families[fam] }
func (f *fakeDevice) MaxThreadgroupMemory() int        { return f.maxTG }

func (f *fakeDevice) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeDevice) NewQueue() (queue, error) {
	if f.failQueue != nil {
		return nil, f.failQueue
	}
	q := &fakeQueue{dev: f}
	f.mu.Lock()
	f.queues = append(f.queues, q)
	f.mu.Unlock()
	return q, nil
}

func (f *fakeDevice) NewLibrary(source string, opts metalrt.CompileOptions) (library, error) {
	f.mu.Lock()
	f.compiles++
	f.sources = append(f.sources, source)
	f.opts = append(f.opts, opts)
	f.mu.Unlock()
	if f.failCompile != nil {
		return nil, f.failCompile
	}
	l := &fakeLibrary{dev: f}
	f.mu.Lock()
	f.libs = append(f.libs, l)
	f.mu.Unlock()
	return l, nil
}

func (f *fakeDevice) NewBuffer(n int, mode metalrt.StorageMode) (buffer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allocs++
	if f.failAllocAt > 0 && f.allocs == f.failAllocAt {
		return nil, &metalrt.Error{Op: "NewBuffer", Kind: metalrt.ErrOutOfMemory, Detail: fmt.Sprintf("fake: allocation %d of %d bytes", f.allocs, n)}
	}
	b := &fakeBuffer{dev: f, data: make([]byte, n), mode: mode}
	f.live[b] = true
	return b, nil
}

func (f *fakeDevice) External(b *metalrt.Buffer) (buffer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fb, ok := f.externals[b]
	if !ok {
		return nil, fmt.Errorf("fake: unknown external buffer")
	}
	return fb, nil
}

// register makes an external private buffer holding data, as a caller's tensor
// storage would.
func (f *fakeDevice) register(data []byte) (*metalrt.Buffer, *fakeBuffer) {
	key := &metalrt.Buffer{}
	fb := &fakeBuffer{dev: f, data: append([]byte(nil), data...), mode: metalrt.Private, external: true}
	f.mu.Lock()
	f.externals[key] = fb
	f.mu.Unlock()
	return key, fb
}

func (f *fakeDevice) liveBuffers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

type fakeBuffer struct {
	dev      *fakeDevice
	data     []byte
	mode     metalrt.StorageMode
	external bool
	closed   bool
}

func (b *fakeBuffer) Len() int                  { return len(b.data) }
func (b *fakeBuffer) Mode() metalrt.StorageMode { return b.mode }
func (b *fakeBuffer) Bytes() []byte {
	if b.mode == metalrt.Private || b.closed {
		return nil
	}
	return b.data
}

func (b *fakeBuffer) Close() error {
	if b.external {
		panic("the executor closed a caller's buffer")
	}
	b.dev.mu.Lock()
	defer b.dev.mu.Unlock()
	if !b.closed {
		b.closed = true
		delete(b.dev.live, b)
	}
	return nil
}

type fakeLibrary struct {
	dev    *fakeDevice
	closed bool
}

func (l *fakeLibrary) Close() error { l.closed = true; return nil }

func (l *fakeLibrary) Pipeline(name string) (pipeline, error) {
	if err := l.dev.failPipeline[name]; err != nil {
		return nil, err
	}
	if err := l.dev.failPipeline["*"]; err != nil {
		return nil, err
	}
	p := &fakePipeline{name: name, maxThreads: l.dev.maxThr}
	l.dev.mu.Lock()
	l.dev.pipes = append(l.dev.pipes, p)
	l.dev.mu.Unlock()
	return p, nil
}

type fakePipeline struct {
	name       string
	maxThreads int
	closed     bool
}

func (p *fakePipeline) Name() string                       { return p.name }
func (p *fakePipeline) MaxTotalThreadsPerThreadgroup() int { return p.maxThreads }
func (p *fakePipeline) StaticThreadgroupMemory() int       { return 0 }
func (p *fakePipeline) Close() error                       { p.closed = true; return nil }

type fakeQueue struct {
	dev    *fakeDevice
	closed bool
}

func (q *fakeQueue) Close() error { q.closed = true; return nil }

// written are the binding indices kernels write.
var written = map[int]bool{
	mslplan.BufO: true, mslplan.BufL: true, mslplan.BufDelta: true,
	mslplan.BufDQ: true, mslplan.BufDK: true, mslplan.BufDV: true,
}

func (q *fakeQueue) Run(cmds []command) error {
	f := q.dev
	snap := map[int][]byte{}
	for _, c := range cmds {
		switch c.kind {
		case cmdCopy:
			src, dst := c.src.(*fakeBuffer), c.dst.(*fakeBuffer)
			copy(dst.data[c.dstOffset:c.dstOffset+c.size], src.data[c.srcOffset:c.srcOffset+c.size])
		case cmdDispatch:
			for _, a := range c.buffers {
				b := a.buf.(*fakeBuffer)
				if b.closed {
					return fmt.Errorf("fake: dispatch binds a closed buffer at %d", a.index)
				}
				if _, seen := snap[a.index]; !seen {
					snap[a.index] = append([]byte(nil), b.data...)
				}
				if written[a.index] {
					for i := range b.data {
						b.data[i] = byte(a.index + 1)
					}
				}
			}
			for _, a := range c.bytes {
				snap[a.index] = append([]byte(nil), a.data...)
			}
		}
	}
	f.mu.Lock()
	f.runs = append(f.runs, cmds)
	f.snapshots = append(f.snapshots, snap)
	f.mu.Unlock()
	return f.failRun
}
