package metal

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// Name is the executor's name.
const Name = mslplan.ExecutorName // "metal"

// DefaultPriority runs Metal before the CPU executors.
const DefaultPriority = 200

// ErrUnavailable is wrapped by New's error when this build or machine cannot run
// the kernels: not macOS, built without cgo, no Metal device, or a device older
// than the kernels need (apple7). It is metalrt.ErrUnavailable.
var ErrUnavailable = metalrt.ErrUnavailable

// ErrClosed is returned by Forward and Backward after Close.
var ErrClosed = errors.New("metal: executor is closed")

// Params configure an Executor.
type Params struct {
	// Priority orders executors in the engine; 0 means DefaultPriority.
	Priority int
	// Device names the Metal device to use (metalrt.DeviceNames lists them);
	// "" means the system default.
	Device string
	// Source replaces the kernels' Metal Shading Language source (tests). It
	// must be self-contained: Metal has no include path. "" means native/msl's
	// kernels.
	Source string
	// Math is the compiler's floating-point mode; MathDefault selects MathSafe
	// here, since the kernels are checked against an exact reference.
	Math metalrt.MathMode
	// Language is the MSL version to compile with; zero means Metal's newest.
	Language metalrt.LanguageVersion
	// Tiles, when set, replaces mslplan's tile table (tests and tuning).
	Tiles *mslplan.Tiles
}

// BufferStorage is tensor storage held in a Metal buffer of the executor's
// device. The executor reads a private one by a blit at the start of its command
// buffer; host-visible ones it reads through Bytes.
type BufferStorage interface {
	tensor.Storage
	MetalBuffer() *metalrt.Buffer
}

// Executor runs FlashAttention forward and backward on an Apple GPU. It is safe
// for concurrent use; Close waits for calls in flight.
type Executor struct {
	dev      device
	family   mslplan.GPUFamily
	priority int
	source   string
	opts     metalrt.CompileOptions
	tiles    *mslplan.Tiles

	mu     sync.RWMutex // calls hold it for reading, Close for writing
	closed bool

	initOnce sync.Once
	initErr  error
	queue    queue
	lib      library

	pmu       sync.Mutex
	pipelines map[string]pipelineResult
}

type pipelineResult struct {
	p   pipeline
	err error
}

var _ spec.Executor = (*Executor)(nil)

// New opens the Metal device and returns an executor for it. The kernels are
// compiled on first use (or by Warmup). The error wraps ErrUnavailable when
// Metal cannot run them here.
func New(p Params) (*Executor, error) {
	dev, err := openDevice(p.Device)
	if err != nil {
		return nil, fmt.Errorf("metal: New: %w", err)
	}
	e, err := newExecutor(dev, p)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return e, nil
}

// newExecutor builds an executor over dev; the tests call it with a fake device.
func newExecutor(dev device, p Params) (*Executor, error) {
	fam, ok := familyOf(dev)
	if !ok {
		return nil, fmt.Errorf("metal: New: %w: device %q supports none of apple7, apple8, apple9; the kernels need SIMD-group matrices", ErrUnavailable, dev.Name())
	}
	if p.Priority == 0 {
		p.Priority = DefaultPriority
	}
	if p.Math == metalrt.MathDefault {
		p.Math = metalrt.MathSafe
	}
	src := p.Source
	if src == "" {
		var err error
		if src, err = defaultSource(); err != nil {
			return nil, fmt.Errorf("metal: New: %w", err)
		}
	}
	return &Executor{
		dev:       dev,
		family:    fam,
		priority:  p.Priority,
		source:    src,
		opts:      metalrt.CompileOptions{Language: p.Language, Math: p.Math},
		tiles:     p.Tiles,
		pipelines: map[string]pipelineResult{},
	}, nil
}

func familyOf(dev device) (mslplan.GPUFamily, bool) {
	switch {
	case dev.Supports(metalrt.FamilyApple9):
		return mslplan.Apple9, true
	case dev.Supports(metalrt.FamilyApple8):
		return mslplan.Apple8, true
	case dev.Supports(metalrt.FamilyApple7):
		return mslplan.Apple7, true
	}
	return 0, false
}

// Name returns "metal".
func (e *Executor) Name() string { return Name }

// Priority returns the configured priority (DefaultPriority unless set).
func (e *Executor) Priority() int { return e.priority }

// DeviceName is the name of the GPU the executor runs on.
func (e *Executor) DeviceName() string { return e.dev.Name() }

// Family is the GPU family whose tile table the executor uses.
func (e *Executor) Family() mslplan.GPUFamily { return e.family }

// Needs asks the engine for contiguous inputs in storage the executor can read:
// host memory, Metal shared or managed memory, or Metal private memory held in a
// BufferStorage.
func (e *Executor) Needs() allocator.Needs {
	return allocator.Needs{
		Contiguous: true,
		Storage:    []tensor.StorageKind{tensor.Host, tensor.Shared, tensor.Managed, tensor.Private},
	}
}

// Supports returns nil when the kernels can run p on this device, a
// *spec.ArgError when p is invalid, and an error wrapping spec.ErrUnsupported
// that says why not otherwise.
func (e *Executor) Supports(p *spec.Problem) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return spec.Unsupported(Name, "the executor is closed")
	}
	if gt := p.GradDTypeValue(); gt != p.Q.DType() {
		return spec.Unsupported(Name, "gradients in %v for %v inputs are not written by the Metal kernels yet", gt, p.Q.DType())
	}
	_, err := e.plan(p, nil, nil, nil)
	return err
}

// plan asks mslplan for the dispatches and checks what mslplan cannot know:
// whether the device has the threadgroup memory, and whether the executor can
// read each input's storage. L is the backward pass's saved L (nil for forward).
func (e *Executor) plan(p *spec.Problem, o, dO, l *tensor.Tensor) (*mslplan.Plan, error) {
	pl, err := mslplan.New(mslplan.Request{Problem: p, O: o, DO: dO, Family: e.family, Tiles: e.tiles})
	if err != nil {
		return nil, err
	}
	for _, d := range pl.Dispatches() {
		if max := e.dev.MaxThreadgroupMemory(); d.ThreadgroupMemory > max {
			return nil, spec.Unsupported(Name, "kernel %s uses %d bytes of threadgroup memory; %s has %d", d.Name, d.ThreadgroupMemory, e.dev.Name(), max)
		}
	}
	inputs := []struct {
		name string
		t    *tensor.Tensor
	}{{"Q", p.Q}, {"K", p.K}, {"V", p.V}, {"Saved.O", o}, {"dO", dO}, {"Saved.L", l}}
	for _, in := range inputs {
		if in.t == nil {
			continue
		}
		if err := readable(in.name, in.t, in.name == "Saved.L"); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// readable says whether the executor can read t: any host-visible storage, or a
// private Metal buffer whose bytes a blit can copy (4-byte aligned offset). L is
// read as a contiguous [B, H, N] array, so a private L must be contiguous.
func readable(name string, t *tensor.Tensor, mustBeContiguous bool) error {
	st := t.Storage()
	if st.Kind().HostVisible() && st.Bytes() != nil {
		return nil
	}
	if _, ok := st.(BufferStorage); !ok {
		return spec.Unsupported(Name, "%s is in %v storage (%T) that is neither host visible nor a Metal buffer", name, st.Kind(), st)
	}
	off := t.Offset() * t.DType().Size()
	if off%4 != 0 {
		return spec.Unsupported(Name, "%s starts %d bytes into its private buffer; a blit needs a multiple of 4", name, off)
	}
	if size := (mslplan.Extent(t)*t.DType().Size() + 3) / 4 * 4; off+size > st.Len() {
		return spec.Unsupported(Name, "%s: a blit of bytes [%d, %d) (sizes are multiples of 4) passes the end of its %d-byte private buffer", name, off, off+size, st.Len())
	}
	if mustBeContiguous && !t.IsContiguous() {
		return spec.Unsupported(Name, "%s is a non-contiguous view of private memory", name)
	}
	return nil
}

// lock takes the read lock for a call, or fails when the executor is closed.
func (e *Executor) lock() error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// init creates the command queue and compiles the library, once. A failure is
// kept: every later call fails the same way (and the engine falls back).
func (e *Executor) init() error {
	e.initOnce.Do(func() {
		q, err := e.dev.NewQueue()
		if err != nil {
			e.initErr = fmt.Errorf("metal: creating a command queue: %w", err)
			return
		}
		lib, err := e.dev.NewLibrary(e.source, e.opts)
		if err != nil {
			q.Close()
			e.initErr = fmt.Errorf("metal: compiling the attention kernels: %w", err)
			return
		}
		e.queue, e.lib = q, lib
	})
	return e.initErr
}

// pipeline returns the compute pipeline of kernel name, building it once.
func (e *Executor) pipeline(name string) (pipeline, error) {
	if err := e.init(); err != nil {
		return nil, err
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	if r, ok := e.pipelines[name]; ok {
		return r.p, r.err
	}
	p, err := e.lib.Pipeline(name)
	if err != nil {
		err = fmt.Errorf("metal: kernel %s: %w", name, err)
	}
	e.pipelines[name] = pipelineResult{p: p, err: err}
	return p, err
}

// Warmup compiles the kernels and builds the pipeline of every kernel this
// device's tile table can select, so that compilation errors surface now rather
// than on the first call. It returns every failure.
func (e *Executor) Warmup() error {
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.RUnlock()
	if err := e.init(); err != nil {
		return err
	}
	var errs []error
	for _, name := range kernelNames(e.family) {
		if _, err := e.pipeline(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kernelNames lists the kernels the tile table selects for family f, over every
// dtype and head dim.
func kernelNames(f mslplan.GPUFamily) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		add(mslplan.KernelName(mslplan.Delta, mslplan.Tile{}, dt))
		for _, d := range mslplan.HeadDims() {
			t, err := mslplan.TilesFor(f, dt, d)
			if err != nil {
				continue
			}
			add(mslplan.KernelName(mslplan.Forward, t.Forward, dt))
			add(mslplan.KernelName(mslplan.DKDV, t.DKDV, dt))
			add(mslplan.KernelName(mslplan.DQ, t.DQ, dt))
		}
	}
	return out
}

// prepare builds the pipelines of ds and checks their threadgroup sizes.
func (e *Executor) prepare(ds []mslplan.Dispatch) ([]pipeline, error) {
	ps := make([]pipeline, len(ds))
	for i, d := range ds {
		p, err := e.pipeline(d.Name)
		if err != nil {
			return nil, err
		}
		n := d.Threads[0] * d.Threads[1] * d.Threads[2]
		if max := p.MaxTotalThreadsPerThreadgroup(); n > max {
			return nil, fmt.Errorf("metal: kernel %s runs %d threads per threadgroup; its pipeline allows %d on %s", d.Name, n, max, e.dev.Name())
		}
		ps[i] = p
	}
	return ps, nil
}

// bindCommon binds what every kernel may read from the problem: Q, K, V, the
// mask and the lengths.
func bindCommon(c *call, p *spec.Problem, b mslplan.Binding) (buffer, bool, error) {
	var buf buffer
	var err error
	switch b.Name {
	case "Q":
		buf, err = c.tensorInput("Q", p.Q, b.Bytes)
	case "K":
		buf, err = c.tensorInput("K", p.K, b.Bytes)
	case "V":
		buf, err = c.tensorInput("V", p.V, b.Bytes)
	case "Mask":
		buf, err = c.upload("Mask", mslplan.AppendMask(nil, p.Mask))
	case "LensQ":
		buf, err = c.upload("LensQ", mslplan.AppendLens(nil, p.SeqLensQ))
	case "LensK":
		buf, err = c.upload("LensK", mslplan.AppendLens(nil, p.SeqLensK))
	default:
		return nil, false, nil
	}
	return buf, true, err
}

// Forward computes O and L. Outputs are new host tensors made only after the
// command buffer completed successfully; on any failure no output is returned
// and every GPU buffer of the call is released.
func (e *Executor) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(p); err != nil {
		return nil, err
	}
	if err := spec.ValidateSavedInto(p, into); err != nil {
		return nil, err
	}
	if err := e.lock(); err != nil {
		return nil, err
	}
	defer e.mu.RUnlock()
	pl, err := e.plan(p, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	ps, err := e.prepare([]mslplan.Dispatch{pl.Forward})
	if err != nil {
		return nil, err
	}
	c := newCall(e.dev)
	defer c.release()
	bind := func(b mslplan.Binding) (buffer, error) {
		if buf, ok, err := bindCommon(c, p, b); ok {
			return buf, err
		}
		if b.Written && (b.Name == "O" || b.Name == "L") {
			return c.alloc(b.Name, b.Bytes, metalrt.Shared)
		}
		return nil, fmt.Errorf("metal: kernel %s binds %s, which the forward pass does not provide", pl.Forward.Name, b.Name)
	}
	if err := c.addDispatch(pl.Forward, ps[0], pl.Params.Encode(), bind); err != nil {
		return nil, err
	}
	if err := e.queue.Run(c.commands()); err != nil {
		return nil, fmt.Errorf("metal: forward: %w", err)
	}
	d := p.Dims()
	o, err := download(c.buffers["O"], p.Q.DType(), d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, fmt.Errorf("metal: forward: O: %w", err)
	}
	l, err := download(c.buffers["L"], tensor.Float32, d.B, d.H, d.N)
	if err != nil {
		return nil, fmt.Errorf("metal: forward: L: %w", err)
	}
	return spec.FillSaved(into, &spec.Saved{O: o, L: l})
}

// Backward computes dQ, dK and dV from the saved O and L and dO, running Delta,
// dK/dV and dQ in one command buffer. Like Forward, it returns outputs only on
// success and releases every GPU buffer of the call.
func (e *Executor) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	if err := spec.ValidateGradsInto(p, s, dO, into); err != nil {
		return nil, err
	}
	if err := e.lock(); err != nil {
		return nil, err
	}
	defer e.mu.RUnlock()
	pl, err := e.plan(p, s.O, dO, s.L)
	if err != nil {
		return nil, err
	}
	ds := pl.Backward()
	ps, err := e.prepare(ds)
	if err != nil {
		return nil, err
	}
	l := s.L
	if l.DType() != tensor.Float32 { // the kernels read a float32 L
		if l, err = l.Convert(tensor.Float32); err != nil {
			return nil, fmt.Errorf("metal: backward: Saved.L: %w", err)
		}
	}
	if !l.IsContiguous() { // readable checked that a private L is contiguous
		if l, _, err = l.Contiguous(); err != nil {
			return nil, fmt.Errorf("metal: backward: Saved.L: %w", err)
		}
	}
	c := newCall(e.dev)
	defer c.release()
	bind := func(b mslplan.Binding) (buffer, error) {
		if buf, ok, err := bindCommon(c, p, b); ok {
			return buf, err
		}
		switch {
		case b.Name == "O" && !b.Written:
			return c.tensorInput("Saved.O", s.O, b.Bytes)
		case b.Name == "dO" && !b.Written:
			return c.tensorInput("dO", dO, b.Bytes)
		case b.Name == "L" && !b.Written:
			return c.tensorInput("Saved.L", l, b.Bytes)
		case b.Name == "Delta" && b.Written:
			return c.alloc("Delta", b.Bytes, metalrt.Private) // only the GPU reads it
		case b.Written && (b.Name == "dQ" || b.Name == "dK" || b.Name == "dV"):
			return c.alloc(b.Name, b.Bytes, metalrt.Shared)
		}
		return nil, fmt.Errorf("metal: backward binds %s (written %v), which the backward pass does not provide", b.Name, b.Written)
	}
	params := pl.Params.Encode()
	for i, d := range ds {
		if err := c.addDispatch(d, ps[i], params, bind); err != nil {
			return nil, err
		}
	}
	if err := e.queue.Run(c.commands()); err != nil {
		return nil, fmt.Errorf("metal: backward: %w", err)
	}
	grads := &spec.Grads{}
	for _, g := range []struct {
		name string
		like *tensor.Tensor
		dst  **tensor.Tensor
	}{{"dQ", p.Q, &grads.DQ}, {"dK", p.K, &grads.DK}, {"dV", p.V, &grads.DV}} {
		buf, ok := c.buffers[g.name]
		if !ok {
			return nil, fmt.Errorf("metal: backward: no kernel wrote %s", g.name)
		}
		t, err := download(buf, g.like.DType(), g.like.Shape()...)
		if err != nil {
			return nil, fmt.Errorf("metal: backward: %s: %w", g.name, err)
		}
		*g.dst = t
	}
	return spec.FillGrads(into, grads)
}

// Close releases the pipelines, the library, the queue and the device, after
// calls in flight finish. Later calls fail with ErrClosed. Close is idempotent.
func (e *Executor) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	e.pmu.Lock()
	for name, r := range e.pipelines {
		if r.p != nil {
			keep(r.p.Close())
		}
		delete(e.pipelines, name)
	}
	e.pmu.Unlock()
	if e.lib != nil {
		keep(e.lib.Close())
	}
	if e.queue != nil {
		keep(e.queue.Close())
	}
	keep(e.dev.Close())
	return errors.Join(errs...)
}
