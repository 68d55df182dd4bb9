package metal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// DefaultPoolBytes is how many bytes of finished calls' buffers the executor keeps for
// reuse unless Params.PoolBytes says otherwise.
const DefaultPoolBytes = 256 << 20

// MetallibDirEnv names the environment variable New reads for a directory of metallibs
// when Params.MetallibDir and Params.Metallibs are empty.
const MetallibDirEnv = "ORCHARD_METALLIB_DIR"

// ErrUnavailable is wrapped by New's error when this build or machine cannot run the
// kernels: not macOS, built without cgo, no Metal device, or a device older than the
// kernels need (apple7). It is metalrt.ErrUnavailable.
var ErrUnavailable = metalrt.ErrUnavailable

// ErrClosed is returned by Forward and Backward after Close.
var ErrClosed = errors.New("metal: executor is closed")

// Params configure an Executor.
type Params struct {
	// Priority orders executors in the engine; 0 means DefaultPriority.
	Priority int
	// Device names the Metal device to use (metalrt.DeviceNames lists them); "" means
	// the system default.
	Device string
	// Source replaces the kernels' Metal Shading Language source (tests). It must be
	// self-contained: Metal has no include path. "" means native/msl's kernels.
	Source string
	// Metallibs are precompiled libraries by mslplan.Library name ("attention",
	// "attention_bf16"), as Bazel's apple_metal_library builds them (native/msl/metallib
	// finds them among a program's runfiles). For each library the plan needs, the
	// executor loads the metallib of that name when there is one and the system has its
	// language version, and otherwise compiles Source; a metallib that fails to load is
	// logged (Info) and replaced by the compiled source. Info says which happened.
	Metallibs map[string][]byte
	// MetallibDir, when Metallibs is empty, is a directory New reads <name>.metallib
	// files from ("" means $ORCHARD_METALLIB_DIR; missing files are skipped).
	MetallibDir string
	// Math is the compiler's floating-point mode for Source; MathDefault selects
	// MathSafe, since the kernels are checked against an exact reference (they call
	// fast:: functions by name where they want them).
	Math metalrt.MathMode
	// Tiles, when set, replaces mslplan's tile table (tests and tuning).
	Tiles *mslplan.Tiles
	// Policy chooses the storage mode of outputs and intermediates (zero: shared outputs
	// on unified memory, managed on a discrete GPU, private intermediates).
	Policy allocator.Policy
	// WaitLimit bounds the wait for one command buffer; 0 means metalrt.DefaultWaitLimit,
	// a negative value no limit.
	WaitLimit time.Duration
	// PoolBytes caps the bytes of reusable buffers kept between calls; 0 means
	// DefaultPoolBytes, a negative value keeps none.
	PoolBytes int64
	// Logger receives the library's origin and fallbacks inside the executor; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Executor runs FlashAttention forward and backward on an Apple GPU. It is safe for
// concurrent use; Close waits for calls in flight.
type Executor struct {
	dev      device
	family   mslplan.GPUFamily
	priority int
	source   string
	metallib map[string][]byte
	libFrom  string // where the metallibs came from, for Info
	math     metalrt.MathMode
	tiles    *mslplan.Tiles
	policy   allocator.Policy
	wait     time.Duration
	log      *slog.Logger

	pool    *pool
	outputs *allocator.MetalStrategy // the policy's mode for results
	shared  *allocator.MetalStrategy // results copied into a caller's destination
	counts  allocator.CopyCounter

	mu     sync.RWMutex // calls hold it for reading, Close for writing
	closed bool

	lostMu sync.Mutex
	lost   error // sticky: the device is gone for this process

	initOnce sync.Once
	initErr  error
	queue    queue

	lmu       sync.Mutex
	libs      map[string]libraryResult // by mslplan.Library.Name (or "metallib")
	pmu       sync.Mutex
	pipelines map[string]pipelineResult
}

type libraryResult struct {
	l      library
	origin string
	err    error
}

type pipelineResult struct {
	p   pipeline
	err error
}

var _ spec.Executor = (*Executor)(nil)

// New opens the Metal device and returns an executor for it. The kernels are compiled
// (or the metallib loaded) on first use, or by Warmup. The error wraps ErrUnavailable
// when Metal cannot run them here.
func New(p Params) (*Executor, error) {
	dev, err := openDevice(p.Device)
	if err != nil {
		return nil, fmt.Errorf("metal: New: %w", err)
	}
	if len(p.Metallibs) == 0 {
		if p.MetallibDir == "" {
			p.MetallibDir = os.Getenv(MetallibDirEnv)
		}
		if p.MetallibDir != "" {
			libs, err := readMetallibs(p.MetallibDir)
			if err != nil {
				dev.Close()
				return nil, fmt.Errorf("metal: New: %w", err)
			}
			p.Metallibs = libs
		}
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
	if err := p.Policy.Validate(); err != nil {
		return nil, &spec.ArgError{Arg: "Params.Policy", Rule: err.Error()}
	}
	if p.Priority == 0 {
		p.Priority = DefaultPriority
	}
	if p.Math == metalrt.MathDefault {
		p.Math = metalrt.MathSafe
	}
	switch {
	case p.WaitLimit == 0:
		p.WaitLimit = metalrt.DefaultWaitLimit
	case p.WaitLimit < 0:
		p.WaitLimit = 0
	}
	switch {
	case p.PoolBytes == 0:
		p.PoolBytes = DefaultPoolBytes
	case p.PoolBytes < 0:
		p.PoolBytes = 0
	}
	src := p.Source
	if src == "" {
		var err error
		if src, err = defaultSource(); err != nil {
			return nil, fmt.Errorf("metal: New: %w", err)
		}
	}
	outputs, err := allocator.NewMetalStrategy(dev, p.Policy.Mode(allocator.RoleHostVisible, dev.HasUnifiedMemory()))
	if err != nil {
		return nil, fmt.Errorf("metal: New: %w", err)
	}
	shared, err := allocator.NewMetalStrategy(dev, metalrt.Shared)
	if err != nil {
		return nil, fmt.Errorf("metal: New: %w", err)
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}
	from := "Params.Metallibs"
	if p.MetallibDir != "" {
		from = p.MetallibDir
	}
	return &Executor{
		dev:       dev,
		family:    fam,
		priority:  p.Priority,
		source:    src,
		metallib:  p.Metallibs,
		libFrom:   from,
		math:      p.Math,
		tiles:     p.Tiles,
		policy:    p.Policy,
		wait:      p.WaitLimit,
		log:       logger,
		pool:      newPool(dev, p.PoolBytes),
		outputs:   outputs,
		shared:    shared,
		libs:      map[string]libraryResult{},
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

// Device is the executor's device as the Metal strategies see it: allocate tensors with
// allocator.NewMetalStrategy(e.Device(), mode) and the executor binds them with no copy.
func (e *Executor) Device() allocator.MetalDevice { return e.dev }

// Needs accepts every storage kind: the kernels read strides (any view with unit stride
// along the head dim is bound as it is), tensors in a buffer of this device are bound
// at their byte offset, and host-visible ones are uploaded by the executor (counted in
// CopyStats). Supports declines what it cannot read: private memory of another device
// or of unknown type.
func (e *Executor) Needs() allocator.Needs {
	return allocator.Needs{
		Storage: []tensor.StorageKind{tensor.Host, tensor.Shared, tensor.Managed, tensor.Private},
	}
}

// CopyStats returns the copies the executor made (uploads, conversions, copies into
// destinations, managed synchronisations) and the host reads and writes of the outputs
// it allocated (private results read through staging), by kind.
func (e *Executor) CopyStats() allocator.CopyStats {
	return e.counts.Snapshot().Merge(e.outputs.CopyStats(), e.shared.CopyStats())
}

// Info describes the executor's state for debugging and Stats-style reports.
type Info struct {
	Device string
	Family mslplan.GPUFamily
	OS     metalrt.OSVersion
	// Libraries maps each library the executor loaded to its origin: "metallib (path)"
	// or "compiled from source (MSL 3.0)", or the error that stopped it.
	Libraries map[string]string
	// Pipelines is the number of (kernel, function constants) pipelines built.
	Pipelines int
	// PoolAllocations and PoolReuses count buffers the pool allocated and handed out
	// again; PoolWaiting is the bytes it holds now.
	PoolAllocations, PoolReuses, PoolWaiting int64
	// Lost is the error that made the device unusable for this process, if any.
	Lost string
}

// Info returns the executor's state.
func (e *Executor) Info() Info {
	in := Info{Device: e.dev.Name(), Family: e.family, OS: e.dev.OSVersion(), Libraries: map[string]string{}}
	e.lmu.Lock()
	for name, r := range e.libs {
		if r.err != nil {
			in.Libraries[name] = "failed: " + r.err.Error()
		} else {
			in.Libraries[name] = r.origin
		}
	}
	e.lmu.Unlock()
	e.pmu.Lock()
	in.Pipelines = len(e.pipelines)
	e.pmu.Unlock()
	in.PoolAllocations, in.PoolReuses, in.PoolWaiting = e.pool.counts()
	if err := e.lostErr(); err != nil {
		in.Lost = err.Error()
	}
	return in
}

// lostError is the executor's answer once its device is gone: a decline (it wraps
// spec.ErrUnsupported, so nothing is attempted) that the engine counts as a lost device.
type lostError struct{ err error }

func (l *lostError) Error() string {
	return "metal: the GPU is unusable for the rest of this process: " + l.err.Error()
}
func (l *lostError) Unwrap() []error         { return []error{spec.ErrUnsupported, l.err} }
func (*lostError) FallbackCause() spec.Cause { return spec.CauseDeviceLost }

func (e *Executor) lostErr() error {
	e.lostMu.Lock()
	defer e.lostMu.Unlock()
	if e.lost == nil {
		return nil
	}
	return &lostError{e.lost}
}

// markLost records err when it means the device will not work again in this process: a
// lost device, or a command buffer that outlived the wait limit (it may still write
// its buffers, so nothing else should be sent after it).
func (e *Executor) markLost(err error) {
	if !gpuMayStillRun(err) {
		return
	}
	e.lostMu.Lock()
	if e.lost == nil {
		e.lost = err
	}
	e.lostMu.Unlock()
}

// gpuError gives an error from the GPU its fallback cause.
type gpuError struct{ err error }

func (g *gpuError) Error() string { return g.err.Error() }
func (g *gpuError) Unwrap() error { return g.err }
func (g *gpuError) FallbackCause() spec.Cause {
	switch {
	case errors.Is(g.err, metalrt.ErrDeviceLost), errors.Is(g.err, metalrt.ErrNoDevice):
		return spec.CauseDeviceLost
	case errors.Is(g.err, metalrt.ErrOutOfMemory):
		return spec.CauseOutOfMemory
	case errors.Is(g.err, metalrt.ErrCommandBuffer), errors.Is(g.err, metalrt.ErrTimeout), errors.Is(g.err, metalrt.ErrEncode):
		return spec.CauseCommandBuffer
	case errors.Is(g.err, metalrt.ErrCompile), errors.Is(g.err, metalrt.ErrFunctionNotFound), errors.Is(g.err, metalrt.ErrPipeline):
		return spec.CauseCompile
	}
	return spec.CauseError
}

func wrapGPU(err error) error {
	if err == nil {
		return nil
	}
	var ae *spec.ArgError
	if errors.Is(err, spec.ErrUnsupported) || errors.As(err, &ae) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, spec.ErrMemoryBudget) {
		return err
	}
	return &gpuError{err}
}

// Supports returns nil when the kernels can run p on this device, a *spec.ArgError when
// p is invalid, and an error wrapping spec.ErrUnsupported that says why not otherwise
// (including, after a lost device, for every problem).
func (e *Executor) Supports(p *spec.Problem) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return spec.Unsupported(Name, "the executor is closed")
	}
	if err := e.lostErr(); err != nil {
		return err
	}
	_, err := e.plan(p, nil, nil, nil, false)
	return err
}

// plan asks mslplan for the dispatches and checks what mslplan cannot know: whether
// the system can compile the plan's library, whether the device has the threadgroup
// memory, and whether the executor can read each input's storage. L is the backward
// pass's saved L (nil for forward). serial forbids the GQA/MQA head split of the dK/dV
// pass (mslplan.Request.SerialDKDV).
func (e *Executor) plan(p *spec.Problem, o, dO, l *tensor.Tensor, serial bool) (*mslplan.Plan, error) {
	pl, err := mslplan.New(mslplan.Request{Problem: p, O: o, DO: dO, Family: e.family, Tiles: e.tiles, SerialDKDV: serial})
	if err != nil {
		return nil, err
	}
	if lib := pl.Library; lib.LanguageMajor > 3 || lib.LanguageMajor == 3 && lib.LanguageMinor >= 1 {
		if v := e.dev.OSVersion(); !v.AtLeast(14, 0) {
			return nil, spec.Unsupported(Name, "%v kernels need Metal Shading Language %d.%d (macOS 14); this system is macOS %v",
				pl.DType, lib.LanguageMajor, lib.LanguageMinor, v)
		}
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
		if err := e.readable(in.name, in.t); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// readable says whether the executor can read t: a buffer of this device (bound where
// it is) or host-visible memory (uploaded). The saved L is read as a contiguous float32
// [B, H, N] array: one in a private buffer must already be that.
func (e *Executor) readable(name string, t *tensor.Tensor) error {
	st := t.Storage()
	if ms, ok := st.(*allocator.MetalStorage); ok && ms.Device().ID() == e.dev.ID() {
		if name == "Saved.L" && st.Bytes() == nil && (t.DType() != tensor.Float32 || !t.IsContiguous()) {
			return spec.Unsupported(Name, "Saved.L is a %v view of private memory; the kernels read a contiguous float32 L", t.DType())
		}
		return nil
	}
	if st.Kind().HostVisible() && st.Bytes() != nil {
		return nil
	}
	if ms, ok := st.(*allocator.MetalStorage); ok {
		return spec.Unsupported(Name, "%s is in %v memory of another device (%s), not %s", name, st.Kind(), ms.Device().Name(), e.dev.Name())
	}
	return spec.Unsupported(Name, "%s is in %v storage (%T) that is neither host visible nor a Metal buffer of %s", name, st.Kind(), st, e.dev.Name())
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

// init creates the command queue, once. A failure is kept: every later call fails the
// same way (and the engine falls back).
func (e *Executor) init() error {
	e.initOnce.Do(func() {
		q, err := e.dev.NewQueue()
		if err != nil {
			e.initErr = fmt.Errorf("metal: creating a command queue: %w", err)
			return
		}
		q.SetWaitLimit(e.wait)
		e.queue = q
	})
	return e.initErr
}

// readMetallibs reads <dir>/<name>.metallib for each library name; missing files are
// skipped.
func readMetallibs(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.BFloat16} {
		name := mslplan.LibraryFor(dt).Name
		data, err := os.ReadFile(filepath.Join(dir, name+".metallib"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the %s metallib: %w", name, err)
		}
		out[name] = data
	}
	return out, nil
}

// library returns the library that holds lib's kernels: its precompiled metallib when
// one was given (the system has every version the executor asks for: Supports declines
// bfloat16 before macOS 14), else lib compiled from source with its language version
// and macros. Each is made once; a failure is kept.
func (e *Executor) library(lib mslplan.Library) (library, error) {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if r, ok := e.libs[lib.Name]; ok {
		return r.l, r.err
	}
	var loadErr error
	if data, ok := e.metallib[lib.Name]; ok {
		l, err := e.dev.NewLibraryFromData(data)
		origin := fmt.Sprintf("metallib (%s, %d bytes)", e.libFrom, len(data))
		if err == nil {
			e.libs[lib.Name] = libraryResult{l: l, origin: origin}
			e.log.Info("orchard: Metal kernels loaded", "library", lib.Name, "from", origin)
			return l, nil
		}
		loadErr = err
		e.log.Info("orchard: a metallib did not load; compiling the kernels from source", "library", lib.Name, "from", e.libFrom, "error", err)
	}
	opts := metalrt.CompileOptions{
		Language: metalrt.LanguageVersion{Major: lib.LanguageMajor, Minor: lib.LanguageMinor},
		Math:     e.math,
		Macros:   lib.Macros,
	}
	l, err := e.dev.NewLibrary(e.source, opts)
	origin := fmt.Sprintf("compiled from source (MSL %d.%d, math %v)", lib.LanguageMajor, lib.LanguageMinor, e.math)
	if loadErr != nil {
		origin += "; the metallib did not load: " + loadErr.Error()
	}
	if err != nil {
		err = fmt.Errorf("metal: compiling the %s kernels: %w", lib.Name, err)
	} else {
		e.log.Debug("orchard: Metal kernels compiled", "library", lib.Name, "from", origin)
	}
	e.libs[lib.Name] = libraryResult{l: l, origin: origin, err: err}
	return l, err
}

// pipelineKey names a pipeline: the library, the kernel and its function constants.
func pipelineKey(lib, name string, cs []mslplan.Constant) string {
	var b strings.Builder
	b.WriteString(lib)
	b.WriteByte('/')
	b.WriteString(name)
	b.WriteByte('/')
	for _, c := range cs {
		b.WriteString(strconv.Itoa(c.Index))
		if c.Value {
			b.WriteString("t")
		} else {
			b.WriteString("f")
		}
	}
	return b.String()
}

// pipeline returns the compute pipeline of kernel name specialised on cs, building it
// once per (library, name, constants).
func (e *Executor) pipeline(lib mslplan.Library, name string, cs []mslplan.Constant) (pipeline, error) {
	if err := e.init(); err != nil {
		return nil, err
	}
	l, err := e.library(lib)
	if err != nil {
		return nil, err
	}
	key := pipelineKey(lib.Name, name, cs)
	e.pmu.Lock()
	defer e.pmu.Unlock()
	if r, ok := e.pipelines[key]; ok {
		return r.p, r.err
	}
	p, err := l.Pipeline(name, cs)
	if err != nil {
		err = fmt.Errorf("metal: kernel %s: %w", name, err)
	}
	e.pipelines[key] = pipelineResult{p: p, err: err}
	return p, err
}

// Warmup compiles the libraries this system can run and builds the pipeline of every
// kernel this device's tile table can select, specialised for problems without options
// (other constant sets are built on first use), so that compilation errors surface now
// rather than on the first call. It returns every failure.
func (e *Executor) Warmup() error {
	if err := e.lock(); err != nil {
		return err
	}
	defer e.mu.RUnlock()
	if err := e.init(); err != nil {
		return err
	}
	var errs []error
	for _, k := range kernelNames(e.family) {
		lib := mslplan.LibraryFor(k.dt)
		if lib.LanguageMajor == 3 && lib.LanguageMinor >= 1 && !e.dev.OSVersion().AtLeast(14, 0) {
			continue // Supports declines these here
		}
		cs := make([]mslplan.Constant, mslplan.NumConstants)
		for i := range cs {
			cs[i] = mslplan.Constant{Index: i}
		}
		if _, err := e.pipeline(lib, k.name, cs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type kernelName struct {
	name string
	dt   tensor.DType
}

// kernelNames lists the kernels the tile table selects for family f, over every dtype
// and head dim.
func kernelNames(f mslplan.GPUFamily) []kernelName {
	seen := map[string]bool{}
	var out []kernelName
	add := func(n string, dt tensor.DType) {
		if !seen[n] {
			seen[n] = true
			out = append(out, kernelName{n, dt})
		}
	}
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		add(mslplan.KernelName(mslplan.Delta, mslplan.Tile{}, dt), dt)
		add(mslplan.KernelName(mslplan.Reduce, mslplan.Tile{}, dt), dt)
		for _, d := range mslplan.HeadDims() {
			t, err := mslplan.TilesFor(f, dt, d)
			if err != nil {
				continue
			}
			add(mslplan.KernelName(mslplan.Forward, t.Forward, dt), dt)
			add(mslplan.KernelName(mslplan.DKDV, t.DKDV, dt), dt)
			add(mslplan.KernelName(mslplan.DQ, t.DQ, dt), dt)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].dt < out[j].dt })
	return out
}

// prepare builds the pipelines of ds and checks their threadgroup sizes.
func (e *Executor) prepare(pl *mslplan.Plan, ds []mslplan.Dispatch) ([]pipeline, error) {
	ps := make([]pipeline, len(ds))
	for i, d := range ds {
		p, err := e.pipeline(pl.Library, d.Name, d.Constants)
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

// run sends one command buffer, after checking the context (cancellation takes effect
// between command buffers), and records a lost device.
func (e *Executor) run(ctx context.Context, cmds []command) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := e.queue.Run(cmds)
	if err != nil {
		e.markLost(err)
	}
	return err
}

// inputBytes is what uploading t would take: its span when the executor must copy it,
// 0 when it is bound in place.
func (e *Executor) inputBytes(t *tensor.Tensor) int64 {
	if t == nil {
		return 0
	}
	if ms, ok := t.Storage().(*allocator.MetalStorage); ok && ms.Device().ID() == e.dev.ID() {
		return 0
	}
	return spec.MulBytes(mslplan.Extent(t), t.DType().Size())
}

// auxBytes is the mask's and lengths' upload size.
func auxBytes(p *spec.Problem) int64 {
	return spec.AddBytes(maskBytes(p), spec.MulBytes(4, len(p.SeqLensQ)), spec.MulBytes(4, len(p.SeqLensK)))
}

func maskBytes(p *spec.Problem) int64 {
	if p.Mask == nil {
		return 0
	}
	n := p.Mask.Shape[0] * p.Mask.Shape[1] * p.Mask.Shape[2] * p.Mask.Shape[3]
	if p.Mask.Kind == spec.MaskAdditive {
		return spec.MulBytes(4, n)
	}
	return int64(n)
}

// bindCommon binds what every kernel may read from the problem: Q, K, V, the mask and
// the lengths.
func bindCommon(c *call, p *spec.Problem, b mslplan.Binding) (binding, bool, error) {
	var bd binding
	var err error
	switch b.Name {
	case "Q":
		bd, err = c.input("Q", p.Q, b)
	case "K":
		bd, err = c.input("K", p.K, b)
	case "V":
		bd, err = c.input("V", p.V, b)
	case "Mask":
		bd, err = c.upload("Mask", copyUploadAux, mslplan.AppendMask(nil, p.Mask))
	case "LensQ":
		bd, err = c.upload("LensQ", copyUploadAux, mslplan.AppendLens(nil, p.SeqLensQ))
	case "LensK":
		bd, err = c.upload("LensK", copyUploadAux, mslplan.AppendLens(nil, p.SeqLensK))
	default:
		return binding{}, false, nil
	}
	return bd, true, err
}

// Forward computes O and L in one command buffer. Inputs in a buffer of this device are
// bound where they are; host inputs are uploaded into pooled shared buffers. Outputs
// are written in place into destinations (into) that live in a buffer of this device,
// and otherwise into new storage in the policy's mode (shared on Apple silicon: the
// returned tensor's bytes are the buffer's, no copy), then copied into any other
// destination. Nothing is returned unless the command buffer completed; on failure
// output storage allocated for the call is released and pooled buffers go back.
func (e *Executor) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	s, err := e.forward(ctx, p, into)
	return s, wrapGPU(err)
}

func (e *Executor) forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
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
	if err := e.lostErr(); err != nil {
		return nil, err
	}
	pl, err := e.plan(p, nil, nil, nil, false)
	if err != nil {
		return nil, err
	}
	ps, err := e.prepare(pl, []mslplan.Dispatch{pl.Forward})
	if err != nil {
		return nil, err
	}
	d := p.Dims()
	var dstO, dstL *tensor.Tensor
	if into != nil {
		dstO, dstL = into.O, into.L
	}
	need := spec.AddBytes(e.inputBytes(p.Q), e.inputBytes(p.K), e.inputBytes(p.V), auxBytes(p),
		spec.MulBytes(d.B, d.H, d.N, d.D, p.Q.DType().Size()), spec.MulBytes(d.B, d.H, d.N, 4))
	if err := spec.CheckMemory(ctx, "metal forward: buffers", need); err != nil {
		return nil, err
	}
	c := newCall(e)
	ok, mayRun := false, false
	defer func() { c.finish(ok, mayRun) }()
	var outO, outL *output
	bind := func(b mslplan.Binding) (binding, error) {
		if bd, handled, err := bindCommon(c, p, b); handled {
			return bd, err
		}
		var err error
		switch {
		case b.Written && b.Name == "O":
			outO, err = c.output("O", dstO, p.Q.DType(), p.Q.Shape(), b)
			if err != nil {
				return binding{}, err
			}
			return outO.bound, nil
		case b.Written && b.Name == "L":
			outL, err = c.output("L", dstL, tensor.Float32, []int{d.B, d.H, d.N}, b)
			if err != nil {
				return binding{}, err
			}
			return outL.bound, nil
		}
		return binding{}, fmt.Errorf("metal: kernel %s binds %s, which the forward pass does not provide", pl.Forward.Name, b.Name)
	}
	if err := c.addDispatch(pl.Forward, ps[0], pl.Params.Encode(), bind); err != nil {
		return nil, err
	}
	if outO == nil || outL == nil {
		return nil, fmt.Errorf("metal: kernel %s writes no O or L", pl.Forward.Name)
	}
	if err := e.run(ctx, c.commands()); err != nil {
		mayRun = gpuMayStillRun(err)
		return nil, fmt.Errorf("metal: forward: %w", err)
	}
	o, err := c.deliver(outO)
	if err != nil {
		return nil, fmt.Errorf("metal: forward: O: %w", err)
	}
	l, err := c.deliver(outL)
	if err != nil {
		return nil, fmt.Errorf("metal: forward: L: %w", err)
	}
	ok = true
	return &spec.Saved{O: o, L: l}, nil
}

// Backward computes dQ, dK and dV from the saved O and L and dO: Delta and dK/dV in a
// first command buffer, dQ in a second (the context is checked between them). Inputs
// and outputs are handled as in Forward; Delta lives in a pooled buffer in the policy's
// intermediate mode (private). With the plan's GQA/MQA head split (DKDVHeads) the first
// command buffer also holds the reduction of the per-head dK/dV partials, which live in
// two pooled private buffers counted against the memory budget first; when they do not
// fit it, the serial dK/dV plan runs instead.
func (e *Executor) Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
	g, err := e.backward(ctx, p, s, dO, into)
	return g, wrapGPU(err)
}

func (e *Executor) backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error) {
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
	if err := e.lostErr(); err != nil {
		return nil, err
	}
	pl, err := e.plan(p, s.O, dO, s.L, false)
	if err != nil {
		return nil, err
	}
	d := p.Dims()
	gdt := pl.GradDType
	l := s.L
	if l.DType() != tensor.Float32 || !l.IsContiguous() {
		// The kernels read a contiguous float32 L; readable has declined a private L
		// that is not one, so this one is host visible.
		if l, err = l.Convert(tensor.Float32); err != nil {
			return nil, fmt.Errorf("metal: backward: Saved.L: %w", err)
		}
		e.counts.Add(copyConvertL, int64(l.Bytes()))
	}
	need := spec.AddBytes(e.inputBytes(p.Q), e.inputBytes(p.K), e.inputBytes(p.V), e.inputBytes(s.O), e.inputBytes(dO),
		e.inputBytes(l), auxBytes(p), spec.MulBytes(d.B, d.H, d.N, 4), // Delta
		spec.MulBytes(d.B, d.H, d.N, d.D, gdt.Size()), spec.MulBytes(2, d.B, d.Hkv, d.M, d.D, gdt.Size()))
	if pl.DKDVHeads {
		// The GQA/MQA head split's float32 partials of dK and dV (pooled scratch, at most
		// mslplan.MaxDKDVScratch, so the int64 conversion is exact). When they do not fit
		// the budget, the serial walk over each group's heads needs none.
		scratch := int64(pl.DKDVScratchBytes())
		if spec.CheckMemory(ctx, "metal backward: buffers and dK/dV partials", spec.AddBytes(need, scratch)) != nil {
			if pl, err = e.plan(p, s.O, dO, s.L, true); err != nil {
				return nil, err
			}
		} else {
			need = spec.AddBytes(need, scratch)
		}
	}
	if err := spec.CheckMemory(ctx, "metal backward: buffers", need); err != nil {
		return nil, err
	}
	ds := pl.Backward()
	ps, err := e.prepare(pl, ds)
	if err != nil {
		return nil, err
	}
	var dst [3]*tensor.Tensor
	if into != nil {
		dst = [3]*tensor.Tensor{into.DQ, into.DK, into.DV}
	}
	c := newCall(e)
	ok, mayRun := false, false
	defer func() { c.finish(ok, mayRun) }()
	outs := map[string]*output{}
	bind := func(b mslplan.Binding) (binding, error) {
		if bd, handled, err := bindCommon(c, p, b); handled {
			return bd, err
		}
		grad := func(i int, like *tensor.Tensor) (binding, error) {
			o, err := c.output(b.Name, dst[i], gdt, like.Shape(), b)
			if err != nil {
				return binding{}, err
			}
			outs[b.Name] = o
			return o.bound, nil
		}
		switch {
		case b.Name == "O" && !b.Written:
			return c.input("Saved.O", s.O, b)
		case b.Name == "dO" && !b.Written:
			return c.input("dO", dO, b)
		case b.Name == "L" && !b.Written:
			lb := b
			lb.Offset = l.Offset() * 4 // the plan binds L at offset 0 of a contiguous array
			return c.input("Saved.L", l, lb)
		case b.Name == "Delta" && b.Written:
			buf, err := c.get("Delta", b.Bytes, e.policy.Mode(allocator.RoleIntermediate, e.dev.HasUnifiedMemory()))
			return binding{buf: buf}, err
		case (b.Name == "dKPart" || b.Name == "dVPart") && b.Written && pl.DKDVHeads:
			// Scratch of the head split: written by DKDV, read by Reduce (the call binds
			// the same buffer to both). Every element is written before it is read.
			buf, err := c.get(b.Name, b.Bytes, e.policy.Mode(allocator.RoleIntermediate, e.dev.HasUnifiedMemory()))
			return binding{buf: buf}, err
		case b.Written && b.Name == "dQ":
			return grad(0, p.Q)
		case b.Written && b.Name == "dK":
			return grad(1, p.K)
		case b.Written && b.Name == "dV":
			return grad(2, p.V)
		}
		return binding{}, fmt.Errorf("metal: backward binds %s (written %v), which the backward pass does not provide", b.Name, b.Written)
	}
	params := pl.Params.Encode()
	for i, dd := range ds {
		if err := c.addDispatch(dd, ps[i], params, bind); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"dQ", "dK", "dV"} {
		if outs[name] == nil {
			return nil, fmt.Errorf("metal: backward: no kernel writes %s", name)
		}
	}
	// Two command buffers: Delta and dK/dV (with the head split: the partials and their
	// reduction), then dQ and the synchronizations. dQ is the last dispatch of ds.
	cmds := c.commands()
	first, second := cmds[:len(ds)-1], cmds[len(ds)-1:]
	for _, cb := range [][]command{first, second} {
		if err := e.run(ctx, cb); err != nil {
			mayRun = gpuMayStillRun(err)
			return nil, fmt.Errorf("metal: backward: %w", err)
		}
	}
	var g spec.Grads
	for _, x := range []struct {
		name string
		dst  **tensor.Tensor
	}{{"dQ", &g.DQ}, {"dK", &g.DK}, {"dV", &g.DV}} {
		t, err := c.deliver(outs[x.name])
		if err != nil {
			return nil, fmt.Errorf("metal: backward: %s: %w", x.name, err)
		}
		*x.dst = t
	}
	ok = true
	return &g, nil
}

// Close releases the pooled buffers, the pipelines, the libraries, the queue and the
// device, after calls in flight finish. Later calls fail with ErrClosed. Tensors the
// executor returned keep their own buffers and stay readable where the host addresses
// them (shared memory); private results can no longer be staged to the host (their
// ReadAt fails with an error wrapping allocator.ErrMetalStorage). Close is idempotent.
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
	keep(e.pool.close())
	e.pmu.Lock()
	for name, r := range e.pipelines {
		if r.p != nil {
			keep(r.p.Close())
		}
		delete(e.pipelines, name)
	}
	e.pmu.Unlock()
	e.lmu.Lock()
	for name, r := range e.libs {
		if r.l != nil {
			keep(r.l.Close())
		}
		delete(e.libs, name)
	}
	e.lmu.Unlock()
	if e.queue != nil {
		keep(e.queue.Close())
	}
	keep(e.dev.Close())
	return errors.Join(errs...)
}
