package cpuflash

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Name is the executor's name in engine stats and errors.
const Name = "cpuflash"

// DefaultPriority places the executor after Metal (200) and before the reference (0).
const DefaultPriority = 100

// blockUnit is the granule of block sizes: a block is a multiple of both GEMM micro-tile
// sides (mr = 6 rows, nr = 16 columns), because query blocks and key blocks each serve as
// rows of one product and columns of another.
const blockUnit = 48

// Params configure an Executor. The zero value is the production configuration.
type Params struct {
	// Workers is the number of goroutines a call uses; 0 (or less) means
	// runtime.GOMAXPROCS(0) at the time of the call. Results do not depend on it.
	Workers int
	// BlockQ and BlockK override the query and key block sizes (0 = chosen from D). They
	// are rounded up to a multiple of 48. For tests and tuning.
	BlockQ, BlockK int
	// Priority is the engine priority; 0 means DefaultPriority.
	Priority int
	// Portable selects the pure-Go kernels even where SIMD kernels exist (tests, and a way
	// to rule the assembly out when chasing a bug); the same as Kernels = "go".
	Portable bool
	// Kernels forces a kernel set by name ("avx512", "avx2", "neon" or "go"; KernelSets
	// lists those this CPU runs). Empty means the KernelsEnv environment variable if set,
	// else the best set. An executor asked for a set the CPU lacks declines every problem
	// with that reason.
	Kernels string
	// ScratchCache bounds the bytes of scratch buffers the executor keeps between calls
	// (0 means DefaultScratchCache, < 0 keeps none). Reused scratch spares a training loop
	// the page faults of fresh memory on every step.
	ScratchCache int64
}

// DefaultScratchCache is the default bound on cached scratch: enough for the partial dQ
// buffers and per-worker tiles of N = 16384, H = 8, D = 64 on a few workers.
const DefaultScratchCache = 64 << 20

// Executor is the tiled FlashAttention executor for CPUs. It is safe for concurrent use:
// each call takes its own scratch, from a cache of buffers the executor keeps between
// calls (Params.ScratchCache bounds it).
type Executor struct {
	params Params
	kn     *kernels
	knErr  error // the requested kernel set does not run here
	cache  *bufCache
	// strategy forces a backward strategy in tests (0 chooses; see fusedBackward).
	strategy backwardStrategy
}

type backwardStrategy uint8

const (
	strategyAuto backwardStrategy = iota
	strategyTwoPass
	strategyFused
)

// New returns an executor. It picks the best kernels the CPU runs (AVX-512, then AVX2 +
// FMA on amd64; NEON on arm64; pure Go otherwise) unless Params.Kernels, Portable or the
// KernelsEnv variable name a set.
func New(p Params) *Executor {
	name := p.Kernels
	if p.Portable {
		name = "go"
	}
	if name == "" {
		name = os.Getenv(KernelsEnv)
	}
	limit := p.ScratchCache
	if limit == 0 {
		limit = DefaultScratchCache
	}
	cache := &bufCache{limit: limit}
	kn, err := selectKernels(name)
	if err != nil {
		return &Executor{params: p, kn: genericKernels(), knErr: err, cache: cache}
	}
	return &Executor{params: p, kn: kn, cache: cache}
}

// Name returns "cpuflash".
func (e *Executor) Name() string { return Name }

// Priority returns Params.Priority, or DefaultPriority when that is 0.
func (e *Executor) Priority() int {
	if e.params.Priority == 0 {
		return DefaultPriority
	}
	return e.params.Priority
}

// Kernels names the inner loops in use: "avx512", "avx2", "neon" or "go".
func (e *Executor) Kernels() string { return e.kn.name }

// Needs asks the engine for contiguous inputs. The dtype is left alone: float16 and
// bfloat16 are converted tile by tile, which costs no extra memory.
func (e *Executor) Needs() allocator.Needs { return allocator.Needs{Contiguous: true} }

// Blocks returns the query and key block sizes the executor uses for head dimension d.
func (e *Executor) Blocks(d int) (bq, bk int) {
	bq, bk = defaultBlocks(d)
	if e.params.BlockQ > 0 {
		bq = roundUp(e.params.BlockQ, blockUnit)
	}
	if e.params.BlockK > 0 {
		bk = roundUp(e.params.BlockK, blockUnit)
	}
	return bq, bk
}

// defaultBlocks keeps a worker's tiles (Q and O of the query block, K and V of the key
// block, the logit tiles) within a 512 KiB L2 and the 16-column panels the GEMM kernel
// streams within L1.
func defaultBlocks(d int) (bq, bk int) {
	switch {
	case d <= 64:
		return 96, 96
	case d <= 128:
		return 96, 96
	default:
		return 48, 48
	}
}

// Supports accepts every valid problem over float32, float16 or bfloat16 tensors the CPU
// can read. Float64 problems are the reference's; non-contiguous tensors are fine (Needs
// asks the engine for contiguous ones, and a direct caller's are copied). An invalid
// problem gets its *spec.ArgError.
func (e *Executor) Supports(p *spec.Problem) error {
	if err := spec.Validate(p); err != nil {
		return err
	}
	return e.supports(p)
}

// supports is Supports for a validated problem.
func (e *Executor) supports(p *spec.Problem) error {
	if e.knErr != nil {
		return spec.Unsupported(Name, "%v", e.knErr)
	}
	switch dt := p.Q.DType(); dt {
	case tensor.Float32, tensor.Float16, tensor.BFloat16:
	default:
		return spec.Unsupported(Name, "dtype %v: cpuflash computes in float32 from float32, float16 or bfloat16 inputs; float64 problems are the reference's", dt)
	}
	if sc := p.ScaleValue(); sc > math.MaxFloat32 {
		return spec.Unsupported(Name, "scale %g is beyond float32, which cpuflash computes in", sc)
	}
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
	}{{"Q", p.Q}, {"K", p.K}, {"V", p.V}} {
		if err := hostReadable(a.name, a.t); err != nil {
			return err
		}
	}
	return nil
}

func hostReadable(name string, t *tensor.Tensor) error {
	if st := t.Storage(); !st.Kind().HostVisible() || st.Bytes() == nil {
		return spec.Unsupported(Name, "%s is in %v storage, which the CPU cannot read", name, st.Kind())
	}
	return nil
}

// Forward returns O (Q's dtype) and L (float64, or float32 when into.L is) for p.
// Destinations in into that are contiguous host memory are written in place (cleared
// first); others receive a copy. A cancelled ctx stops the call between tiles with an
// error wrapping ctx.Err(); the destinations' contents are then unspecified.
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
	if err := e.supports(p); err != nil {
		return nil, err
	}
	x, err := newPlan(ctx, e, p)
	if err != nil {
		return nil, err
	}
	var io, il *tensor.Tensor
	if into != nil {
		io, il = into.O, into.L
	}
	d := x.d
	lt := tensor.Float64
	if il != nil {
		lt = il.DType()
	}
	need := spec.AddBytes(
		outBytes(io, x.dt, d.B, d.H, d.N, d.D),
		outBytes(il, lt, d.B, d.H, d.N),
		copyBytes(p.Q, p.K, p.V),
		spec.MulBytes(int(x.fwdScratchBytes(false)), e.workers(d.B*d.H*((d.N+x.br-1)/x.br))))
	if err := spec.CheckMemory(ctx, "cpuflash: forward outputs and scratch", need); err != nil {
		return nil, err
	}
	if err := x.load(); err != nil {
		return nil, err
	}
	o, err := newDst(io, x.dt, d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, err
	}
	l, err := newLseDst(il, d.B, d.H, d.N)
	if err != nil {
		return nil, err
	}
	if err := x.forward(&o, &l); err != nil {
		return nil, err
	}
	out := &spec.Saved{O: o.t, L: l.t}
	rest := &spec.Saved{}
	if io != nil && !o.inPlace {
		rest.O = io
	}
	if il != nil && !l.inPlace {
		rest.L = il
	}
	return spec.FillSaved(rest, out)
}

// Backward returns dQ, dK and dV (in p.GradDTypeValue()) given the saved O and L of a
// forward pass of p (from any executor; L float32 or float64) and dO. Destinations in
// into are handled as by Forward.
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
	if err := e.supports(p); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
	}{{"Saved.O", s.O}, {"dO", dO}, {"Saved.L", s.L}} {
		if err := hostReadable(a.name, a.t); err != nil {
			return nil, err
		}
	}
	x, err := newPlan(ctx, e, p)
	if err != nil {
		return nil, err
	}
	var dst spec.Grads
	if into != nil {
		dst = *into
	}
	need := x.backwardBytes(s, dO, &dst)
	if err := spec.CheckMemory(ctx, "cpuflash: backward outputs and scratch", need); err != nil {
		return nil, err
	}
	lse, err := newLseSrc(s.L) // (B, H, N)
	if err != nil {
		return nil, fmt.Errorf("cpuflash: reading Saved.L: %w", err)
	}
	for i := range lse.n {
		if v := lse.at(i); v != v || math.IsInf(v, 1) {
			return nil, &spec.ArgError{Arg: "Saved.L", Rule: fmt.Sprintf("element %d is %v; a logsumexp is finite, or −Inf for a row with no visible key", i, v)}
		}
	}
	if err := x.load(); err != nil {
		return nil, err
	}
	g, rest, err := x.backward(s.O, &lse, dO, &dst)
	if err != nil {
		return nil, err
	}
	return spec.FillGrads(rest, g)
}

// workers returns the number of goroutines for a call with n tasks.
func (e *Executor) workers(n int) int {
	w := e.params.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	return max(1, min(w, n))
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }
