package metal

import (
	"fmt"
	"sync"
	"time"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	metalrt "github.com/orchard-ml/orchard/native/objc"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// fakeDevice stands in for a Metal GPU in the Linux tests. It records what the executor
// (and the Metal strategies) ask of it, "runs" dispatches by filling the byte range each
// kernel writes with a recognisable byte (its binding index + 1) — or, with emulate set,
// by running the kernel through the MSL emulator (tools/mslemu) on the bound bytes with
// the pipeline's function constants — and blits by copying,
// keeps a separate CPU copy of managed buffers (so a missing synchronisation shows as
// stale bytes, as on a discrete GPU), and can be told to fail in each way a Metal device
// can.
type fakeDevice struct {
	name     string
	id       uint64
	unified  bool
	os       metalrt.OSVersion
	families map[metalrt.Family]bool
	maxTG    int
	maxThr   int // pipelines' maxTotalThreadsPerThreadgroup

	// Failures.
	failQueue    error
	failCompile  error
	failLibData  error
	failPipeline map[string]error // by kernel name; "*" for every kernel
	failAllocAt  int              // fail the n-th NewBuffer (1-based); 0: never
	failAllocGE  int              // fail every NewBuffer from the n-th on; 0: never
	failRun      error            // returned by Run after it has written the outputs
	failRunAt    int              // with failRun: only the n-th Run (1-based) fails; 0: every Run
	onRun        func(n int)      // called before the n-th Run (1-based) executes

	// emulate runs dispatches through tools/mslemu instead of filling their outputs.
	emulate bool

	mu        sync.Mutex
	allocs    int
	allocLog  []metalrt.StorageMode
	live      map[*fakeBuffer]bool
	compiles  int
	sources   []string
	opts      []metalrt.CompileOptions
	libData   [][]byte
	runs      [][]command
	snapshots []map[int][]byte // per run: binding index -> bytes the GPU saw from the binding's offset
	transfers [][]allocator.Transfer
	closed    bool
	queues    []*fakeQueue
	libs      []*fakeLibrary
	pipes     []*fakePipeline
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{
		name:     "Fake GPU",
		id:       0xfa4e,
		unified:  true,
		os:       metalrt.OSVersion{Major: 15, Minor: 1},
		families: map[metalrt.Family]bool{metalrt.FamilyApple7: true, metalrt.FamilyApple8: true, metalrt.FamilyMac2: true},
		maxTG:    32 << 10,
		maxThr:   1024,
		live:     map[*fakeBuffer]bool{},
	}
}

func (f *fakeDevice) ID() uint64                       { return f.id }
func (f *fakeDevice) Name() string                     { return f.name }
func (f *fakeDevice) HasUnifiedMemory() bool           { return f.unified }
func (f *fakeDevice) OSVersion() metalrt.OSVersion     { return f.os }
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
	return f.newLibrary(), nil
}

func (f *fakeDevice) NewLibraryFromData(data []byte) (library, error) {
	f.mu.Lock()
	f.libData = append(f.libData, data)
	f.mu.Unlock()
	if f.failLibData != nil {
		return nil, f.failLibData
	}
	return f.newLibrary(), nil
}

func (f *fakeDevice) newLibrary() *fakeLibrary {
	l := &fakeLibrary{dev: f}
	f.mu.Lock()
	f.libs = append(f.libs, l)
	f.mu.Unlock()
	return l
}

func (f *fakeDevice) NewBuffer(n int, mode metalrt.StorageMode) (allocator.MetalBuffer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allocs++
	if f.failAllocAt > 0 && f.allocs == f.failAllocAt || f.failAllocGE > 0 && f.allocs >= f.failAllocGE {
		return nil, &metalrt.Error{Op: "NewBuffer", Kind: metalrt.ErrOutOfMemory, Detail: fmt.Sprintf("fake: allocation %d of %d bytes", f.allocs, n)}
	}
	f.allocLog = append(f.allocLog, mode)
	b := &fakeBuffer{dev: f, gpu: make([]byte, n), mode: mode}
	switch mode {
	case metalrt.Shared:
		b.cpu = b.gpu
	case metalrt.Managed:
		b.cpu = make([]byte, n)
	}
	f.live[b] = true
	return b, nil
}

func (f *fakeDevice) Transfer(steps ...allocator.Transfer) error {
	f.mu.Lock()
	f.transfers = append(f.transfers, steps)
	f.mu.Unlock()
	for _, s := range steps {
		src := s.Src.(*fakeBuffer)
		if s.Sync {
			copy(src.cpu, src.gpu)
			continue
		}
		dst := s.Dst.(*fakeBuffer)
		copy(dst.gpu[s.DstOffset:s.DstOffset+s.Size], src.gpu[s.SrcOffset:s.SrcOffset+s.Size])
	}
	return nil
}

func (f *fakeDevice) liveBuffers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

type fakeBuffer struct {
	dev      *fakeDevice
	mode     metalrt.StorageMode
	gpu, cpu []byte // the same slice for shared buffers; cpu is nil for private ones
	modified [][2]int
	closed   bool
}

func (b *fakeBuffer) Len() int                  { return len(b.gpu) }
func (b *fakeBuffer) Mode() metalrt.StorageMode { return b.mode }
func (b *fakeBuffer) Bytes() []byte {
	if b.closed {
		return nil
	}
	return b.cpu
}

func (b *fakeBuffer) DidModify(off, n int) error {
	b.dev.mu.Lock()
	defer b.dev.mu.Unlock()
	b.modified = append(b.modified, [2]int{off, n})
	if b.mode == metalrt.Managed {
		copy(b.gpu[off:off+n], b.cpu[off:off+n])
	}
	return nil
}

func (b *fakeBuffer) Close() error {
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

func (l *fakeLibrary) Pipeline(name string, constants []mslplan.Constant) (pipeline, error) {
	if err := l.dev.failPipeline[name]; err != nil {
		return nil, err
	}
	if err := l.dev.failPipeline["*"]; err != nil {
		return nil, err
	}
	p := &fakePipeline{name: name, maxThreads: l.dev.maxThr, constants: append([]mslplan.Constant(nil), constants...)}
	l.dev.mu.Lock()
	l.dev.pipes = append(l.dev.pipes, p)
	l.dev.mu.Unlock()
	return p, nil
}

type fakePipeline struct {
	name       string
	maxThreads int
	constants  []mslplan.Constant
	closed     bool
}

func (p *fakePipeline) Name() string                       { return p.name }
func (p *fakePipeline) MaxTotalThreadsPerThreadgroup() int { return p.maxThreads }
func (p *fakePipeline) StaticThreadgroupMemory() int       { return 0 }
func (p *fakePipeline) Close() error                       { p.closed = true; return nil }

type fakeQueue struct {
	dev    *fakeDevice
	wait   []time.Duration
	closed bool
}

func (q *fakeQueue) Close() error { q.closed = true; return nil }

func (q *fakeQueue) SetWaitLimit(d time.Duration) { q.wait = append(q.wait, d) }

func (q *fakeQueue) Run(cmds []command) error {
	f := q.dev
	f.mu.Lock()
	n := len(f.runs) + 1
	f.mu.Unlock()
	if f.onRun != nil {
		f.onRun(n)
	}
	snap := map[int][]byte{}
	for _, c := range cmds {
		switch c.kind {
		case cmdCopy:
			src, dst := c.src.(*fakeBuffer), c.dst.(*fakeBuffer)
			copy(dst.gpu[c.dstOffset:c.dstOffset+c.size], src.gpu[c.srcOffset:c.srcOffset+c.size])
		case cmdSync:
			b := c.src.(*fakeBuffer)
			copy(b.cpu, b.gpu)
		case cmdDispatch:
			for _, a := range c.buffers {
				b := a.buf.(*fakeBuffer)
				if b.closed {
					return fmt.Errorf("fake: dispatch binds a closed buffer at %d", a.index)
				}
				end := min(len(b.gpu), a.offset+a.size)
				if a.size == 0 { // the dummy
					end = len(b.gpu)
				}
				if _, seen := snap[a.index]; !seen {
					snap[a.index] = append([]byte(nil), b.gpu[a.offset:end]...)
				}
				if a.written && !f.emulate {
					for i := a.offset; i < a.offset+a.size; i++ {
						b.gpu[i] = byte(a.index + 1)
					}
				}
			}
			for _, a := range c.bytes {
				snap[a.index] = append([]byte(nil), a.data...)
			}
			if f.emulate {
				if err := emulateDispatch(c); err != nil {
					return err
				}
			}
		}
	}
	f.mu.Lock()
	f.runs = append(f.runs, cmds)
	f.snapshots = append(f.snapshots, snap)
	f.mu.Unlock()
	if f.failRun != nil && (f.failRunAt == 0 || f.failRunAt == n) {
		return f.failRun
	}
	return nil
}

// emulateDispatch runs dispatch c through the MSL emulator: each bound buffer's bytes
// from its offset (the binding's size; the dummy of unused bindings stays unbound, as
// the kernels never read it), the setBytes data, and the pipeline's function constants.
// The emulator copies written buffers back into the fake buffers' GPU bytes.
func emulateDispatch(c command) error {
	slots := make([]mslemu.Buffer, mslplan.NumBuffers)
	for _, a := range c.buffers {
		if a.size == 0 {
			continue
		}
		b := a.buf.(*fakeBuffer)
		slots[a.index] = mslemu.Buffer{Data: b.gpu[a.offset : a.offset+a.size]}
	}
	for _, a := range c.bytes {
		slots[a.index] = mslemu.Buffer{Data: append([]byte(nil), a.data...)}
	}
	var cs []mslemu.Constant
	if p, ok := c.pipeline.(*fakePipeline); ok {
		cs = make([]mslemu.Constant, len(p.constants))
		for i, k := range p.constants {
			cs[i] = mslemu.Constant{Index: k.Index, Value: k.Value}
		}
	}
	if err := mslemu.LaunchWith(c.name, c.groups, c.threads, slots, mslemu.Options{Constants: cs}); err != nil {
		return fmt.Errorf("fake: emulating %s: %w", c.name, err)
	}
	return nil
}
