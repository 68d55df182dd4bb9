package metal

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

const testSource = "// the fake device does not compile anything\n"

func testProblem(t *testing.T, dt tensor.DType, b, h, hkv, n, m, d int) *spec.Problem {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(n*1000+m)))
	return &spec.Problem{
		Q: attntest.Tensor(t, rng, dt, b, h, n, d),
		K: attntest.Tensor(t, rng, dt, b, hkv, m, d),
		V: attntest.Tensor(t, rng, dt, b, hkv, m, d),
	}
}

func testExecutor(t *testing.T, dev *fakeDevice) *Executor {
	t.Helper()
	e, err := newExecutor(dev, Params{Source: testSource})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

func snapshot(ts ...*tensor.Tensor) [][]byte {
	out := make([][]byte, len(ts))
	for i, x := range ts {
		out[i] = append([]byte(nil), x.Storage().Bytes()...)
	}
	return out
}

func allBytes(t *testing.T, x *tensor.Tensor, want byte) {
	t.Helper()
	b := x.Storage().Bytes()
	require.NotEmpty(t, b)
	assert.Equal(t, bytes.Repeat([]byte{want}, len(b)), b)
}

// pooled is the number of the fake's live buffers that wait in the executor's pool.
func pooled(e *Executor) int {
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	n := 0
	for _, l := range e.pool.free {
		n += len(l)
	}
	return n
}

func TestNewWithoutMetal(t *testing.T) {
	if _, err := metalrt.OpenDefault(); err == nil {
		t.Skip("this machine has a Metal device")
	}
	e, err := New(Params{})
	assert.Nil(t, e)
	assert.ErrorIs(t, err, ErrUnavailable)
}

func TestNewDeclinesOldFamilies(t *testing.T) {
	dev := newFakeDevice()
	dev.families = map[metalrt.Family]bool{metalrt.FamilyMac2: true}
	_, err := newExecutor(dev, Params{Source: testSource})
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "Fake GPU")
	_, err = newExecutor(newFakeDevice(), Params{Source: testSource, Policy: allocator.Policy{Outputs: tensor.Host}})
	var ae *spec.ArgError
	assert.ErrorAs(t, err, &ae)
}

func TestNewDefaults(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	assert.Equal(t, "metal", e.Name())
	assert.Equal(t, DefaultPriority, e.Priority())
	assert.Equal(t, mslplan.Apple8, e.Family())
	assert.Equal(t, "Fake GPU", e.DeviceName())
	assert.False(t, e.Needs().Contiguous, "the kernels read strided views")
	assert.ElementsMatch(t, []tensor.StorageKind{tensor.Host, tensor.Shared, tensor.Managed, tensor.Private}, e.Needs().Storage)
	assert.Zero(t, dev.compiles, "kernels compile on first use, not in New")
	assert.Equal(t, uint64(0xfa4e), e.Device().ID())

	dev.families[metalrt.FamilyApple9] = true
	e2, err := newExecutor(dev, Params{Source: testSource, Priority: 7, Math: metalrt.MathRelaxed, WaitLimit: 3 * time.Second})
	require.NoError(t, err)
	defer e2.Close()
	assert.Equal(t, 7, e2.Priority())
	assert.Equal(t, mslplan.Apple9, e2.Family())
	require.NoError(t, e2.Warmup())
	require.Len(t, dev.queues, 1)
	assert.Equal(t, []time.Duration{3 * time.Second}, dev.queues[0].wait, "the wait limit reaches the queue")
	// Two libraries: float32 and float16 with MSL 3.0, bfloat16 alone with MSL 3.1.
	assert.ElementsMatch(t, []metalrt.CompileOptions{
		{Language: metalrt.LanguageVersion{Major: 3, Minor: 0}, Math: metalrt.MathRelaxed},
		{Language: metalrt.MSL3_1, Math: metalrt.MathRelaxed, Macros: map[string]string{"ATTN_LIBRARY_BFLOAT": "1"}},
	}, dev.opts)
	assert.Equal(t, []string{testSource, testSource}, dev.sources)
	in := e2.Info()
	assert.Contains(t, in.Libraries["attention"], "compiled from source (MSL 3.0")
	assert.Contains(t, in.Libraries["attention_bf16"], "compiled from source (MSL 3.1")
	assert.Positive(t, in.Pipelines)
}

// Without macOS 14 there is no MSL 3.1: bfloat16 is declined with the reason, float32
// and float16 still run, and Warmup does not try to compile the bfloat library.
func TestBFloat16NeedsMacOS14(t *testing.T) {
	dev := newFakeDevice()
	dev.os = metalrt.OSVersion{Major: 13, Minor: 6}
	e := testExecutor(t, dev)
	err := e.Supports(testProblem(t, tensor.BFloat16, 1, 1, 1, 8, 8, 16))
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "Metal Shading Language 3.1 (macOS 14); this system is macOS 13.6")
	assert.NoError(t, e.Supports(testProblem(t, tensor.Float16, 1, 1, 1, 8, 8, 16)))
	require.NoError(t, e.Warmup())
	assert.Len(t, dev.opts, 1)
	assert.Equal(t, 3, dev.opts[0].Language.Major)
	assert.Equal(t, 0, dev.opts[0].Language.Minor)
}

// Metallibs from the build are loaded instead of compiling, per library; a library
// without one, or whose metallib does not load, is compiled from source, and Info says
// which happened.
func TestMetallibs(t *testing.T) {
	lib := []byte("MTLB fake metallib")
	dev := newFakeDevice()
	e, err := newExecutor(dev, Params{Source: testSource, Metallibs: map[string][]byte{"attention": lib}})
	require.NoError(t, err)
	defer e.Close()
	for range 2 {
		_, err = e.Forward(context.Background(), testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16), nil)
		require.NoError(t, err)
		_, err = e.Forward(context.Background(), testProblem(t, tensor.BFloat16, 1, 1, 1, 8, 8, 16), nil)
		require.NoError(t, err)
	}
	assert.Equal(t, [][]byte{lib}, dev.libData, "loaded once")
	assert.Equal(t, 1, dev.compiles, "the bfloat16 library, which has no metallib, is compiled")
	assert.Equal(t, metalrt.MSL3_1, dev.opts[0].Language)
	in := e.Info()
	assert.Equal(t, "metallib (Params.Metallibs, 18 bytes)", in.Libraries["attention"])
	assert.Contains(t, in.Libraries["attention_bf16"], "compiled from source (MSL 3.1")

	bad := newFakeDevice()
	bad.failLibData = &metalrt.Error{Op: "NewLibraryFromData", Kind: metalrt.ErrCompile, Detail: "fake: not a metallib"}
	e2, err := newExecutor(bad, Params{Source: testSource, Metallibs: map[string][]byte{"attention": lib}})
	require.NoError(t, err)
	defer e2.Close()
	_, err = e2.Forward(context.Background(), testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, bad.compiles, "compiled from source instead")
	assert.Contains(t, e2.Info().Libraries["attention"], "compiled from source (MSL 3.0")
	assert.Contains(t, e2.Info().Libraries["attention"], "the metallib did not load")

	// readMetallibs finds <name>.metallib files and skips missing ones.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "attention_bf16.metallib"), lib, 0o644))
	got, err := readMetallibs(dir)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"attention_bf16": lib}, got)
}

// Pipelines are specialised on the plan's function constants and cached per (kernel,
// constants).
func TestPipelinesPerConstants(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	plain := testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16)
	causal := testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16)
	causal.Causal = spec.CausalTopLeft
	for range 2 {
		for _, p := range []*spec.Problem{plain, causal} {
			_, err := e.Forward(context.Background(), p, nil)
			require.NoError(t, err)
		}
	}
	require.Len(t, dev.pipes, 2, "one pipeline per constant set, built once")
	assert.Equal(t, dev.pipes[0].name, dev.pipes[1].name, "the same kernel")
	pl, err := mslplan.New(mslplan.Request{Problem: causal, Family: mslplan.Apple8})
	require.NoError(t, err)
	assert.Equal(t, pl.Constants, dev.pipes[1].constants)
	assert.True(t, dev.pipes[1].constants[mslplan.FCCausal].Value)
	assert.False(t, dev.pipes[0].constants[mslplan.FCCausal].Value)
}

func TestSupports(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	assert.NoError(t, e.Supports(testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)))
	assert.NoError(t, e.Supports(testProblem(t, tensor.BFloat16, 1, 2, 2, 8, 8, 64)))
	f32grads := testProblem(t, tensor.Float16, 1, 2, 1, 8, 8, 16)
	f32grads.GradDType = tensor.Float32
	assert.NoError(t, e.Supports(f32grads), "float32 gradients for float16 inputs")

	f64 := testProblem(t, tensor.Float64, 1, 1, 1, 4, 4, 8)
	assert.ErrorIs(t, e.Supports(f64), spec.ErrUnsupported)
	big := testProblem(t, tensor.Float32, 1, 1, 1, 2, 2, 320)
	assert.ErrorIs(t, e.Supports(big), spec.ErrUnsupported)

	bad := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	bad.K = attntest.Tensor(t, rand.New(rand.NewPCG(3, 3)), tensor.Float32, 1, 1, 8, 32)
	var ae *spec.ArgError
	assert.ErrorAs(t, e.Supports(bad), &ae)

	opaque := testProblem(t, tensor.Float32, 1, 1, 1, 4, 4, 8)
	st := &opaqueStorage{n: opaque.V.Bytes()}
	v, err := tensor.FromStorage(st, tensor.Float32, opaque.V.Shape(), opaque.V.Strides(), 0)
	require.NoError(t, err)
	opaque.V = v
	err = e.Supports(opaque)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "neither host visible nor a Metal buffer")

	// Private memory of another GPU cannot be bound here.
	other := newFakeDevice()
	other.id, other.name = 2, "Other GPU"
	ps, err := allocator.NewMetalStrategy(other, metalrt.Private)
	require.NoError(t, err)
	foreign := testProblem(t, tensor.Float32, 1, 1, 1, 4, 4, 8)
	foreign.K, err = allocator.Place(ps, foreign.K)
	require.NoError(t, err)
	err = e.Supports(foreign)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "another device (Other GPU)")

	dev.maxTG = 1024
	err = e.Supports(testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 128))
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "threadgroup memory")
}

// opaqueStorage is private memory the executor cannot read.
type opaqueStorage struct{ n int }

func (s *opaqueStorage) Kind() tensor.StorageKind { return tensor.Private }
func (s *opaqueStorage) Len() int                 { return s.n }
func (s *opaqueStorage) Bytes() []byte            { return nil }

func TestForward(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			dev := newFakeDevice()
			e := testExecutor(t, dev)
			p := testProblem(t, dt, 2, 4, 2, 33, 17, 24)
			p.Causal = spec.CausalBottomRight
			p.SeqLensK = []int{17, 5}
			before := snapshot(p.Q, p.K, p.V)

			s, err := e.Forward(context.Background(), p, nil)
			require.NoError(t, err)
			assert.Equal(t, before, snapshot(p.Q, p.K, p.V), "inputs are not modified")
			assert.Equal(t, dt, s.O.DType())
			assert.Equal(t, p.Q.Shape(), s.O.Shape())
			assert.Equal(t, tensor.Float32, s.L.DType())
			assert.Equal(t, []int{2, 4, 33}, s.L.Shape())
			assert.Equal(t, tensor.Shared, s.O.Storage().Kind(), "outputs live in shared Metal memory")
			assert.IsType(t, &allocator.MetalStorage{}, s.L.Storage())
			allBytes(t, s.O, mslplan.BufO+1)
			allBytes(t, s.L, mslplan.BufL+1)

			pl, err := mslplan.New(mslplan.Request{Problem: p, Family: mslplan.Apple8})
			require.NoError(t, err)
			require.Len(t, dev.runs, 1)
			require.Len(t, dev.runs[0], 1, "one dispatch, no blits for host inputs")
			c := dev.runs[0][0]
			assert.Equal(t, pl.Forward.Name, c.pipeline.Name())
			assert.Equal(t, pl.Forward.Groups, c.groups)
			assert.Equal(t, pl.Forward.Threads, c.threads)
			snap := dev.snapshots[0]
			assert.Equal(t, pl.Params.Encode(), snap[mslplan.BufParams])
			assert.Equal(t, p.Q.Storage().Bytes(), snap[mslplan.BufQ][:p.Q.Bytes()])
			assert.Equal(t, p.V.Storage().Bytes(), snap[mslplan.BufV][:p.V.Bytes()])
			assert.Equal(t, mslplan.AppendLens(nil, p.SeqLensK), snap[mslplan.BufLensK][:8])
			var bound []int
			for _, a := range c.buffers {
				bound = append(bound, a.index)
			}
			for _, a := range c.bytes {
				bound = append(bound, a.index)
			}
			var want []int
			for _, b := range pl.Forward.Buffers {
				want = append(want, b.Index)
			}
			assert.ElementsMatch(t, want, bound, "every binding of the plan is bound")
			assert.Equal(t, pooled(e)+2, dev.liveBuffers(), "live: the two outputs and the pool")
			require.NoError(t, e.Close())
			assert.Equal(t, 2, dev.liveBuffers(), "Close empties the pool; the outputs keep their buffers")
		})
	}
}

// The pool hands the buffers of one call to the next: a steady loop allocates only its
// outputs.
func TestPoolReuse(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	_, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	first := dev.allocs
	for range 3 {
		_, err := e.Forward(context.Background(), p, nil)
		require.NoError(t, err)
	}
	assert.Equal(t, first+3*2, dev.allocs, "later calls allocate O and L only")
	in := e.Info()
	assert.Equal(t, int64(3*4), in.PoolReuses, "the uploads of Q, K, V and the dummy binding, reused by each later call")
}

func TestForwardMaskAndViews(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 2, 4, 6, 8)
	keep := make([]bool, 2*4*6)
	for i := range keep {
		keep[i] = i%3 != 0
	}
	p.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{1, 2, 4, 6}, Keep: keep}
	// K as a view: rows 2..7 of a larger host tensor; the executor uploads its span.
	big := attntest.Tensor(t, rand.New(rand.NewPCG(5, 5)), tensor.Float32, 1, 2, 10, 8)
	k, err := big.Slice(2, 2, 8)
	require.NoError(t, err)
	p.K = k

	_, err = e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	snap := dev.snapshots[0]
	assert.Equal(t, mslplan.AppendMask(nil, p.Mask), snap[mslplan.BufMask][:len(keep)])
	// Element (0, 0, 0, 0) of the view sits at the start of the uploaded span.
	assert.Equal(t, big.Storage().Bytes()[k.Offset()*4:k.Offset()*4+4], snap[mslplan.BufK][:4])
	ext := mslplan.Extent(k) * 4
	assert.Equal(t, int64(ext), e.CopyStats()[copyUpload].Bytes-int64(p.Q.Bytes()+p.V.Bytes()), "only the view's span is uploaded")
}

func TestBackward(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float16, 2, 4, 1, 9, 12, 40)
	p.Dropout = spec.Dropout{P: 0.25, Seed: 1<<40 + 7, Offset: 3}
	rng := rand.New(rand.NewPCG(9, 9))
	s := &spec.Saved{O: attntest.Tensor(t, rng, tensor.Float16, 2, 4, 9, 40), L: attntest.Tensor(t, rng, tensor.Float32, 2, 4, 9)}
	dO := attntest.Tensor(t, rng, tensor.Float16, 2, 4, 9, 40)
	before := snapshot(p.Q, p.K, p.V, s.O, s.L, dO)

	g, err := e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	assert.Equal(t, before, snapshot(p.Q, p.K, p.V, s.O, s.L, dO), "inputs are not modified")
	assert.Equal(t, p.Q.Shape(), g.DQ.Shape())
	assert.Equal(t, p.K.Shape(), g.DK.Shape())
	assert.Equal(t, p.V.Shape(), g.DV.Shape())
	for _, x := range []*tensor.Tensor{g.DQ, g.DK, g.DV} {
		assert.Equal(t, tensor.Float16, x.DType())
	}
	allBytes(t, g.DQ, mslplan.BufDQ+1)
	allBytes(t, g.DK, mslplan.BufDK+1)
	allBytes(t, g.DV, mslplan.BufDV+1)

	pl, err := mslplan.New(mslplan.Request{Problem: p, O: s.O, DO: dO, Family: mslplan.Apple8})
	require.NoError(t, err)
	require.Len(t, dev.runs, 2, "Delta and dK/dV, then dQ")
	require.True(t, pl.DKDVHeads, "MQA with one key block: the head split")
	require.Len(t, dev.runs[0], 3, "Delta, dK/dV partials, their reduction")
	cmds := append(append([]command(nil), dev.runs[0]...), dev.runs[1]...)
	require.Len(t, cmds, 4)
	for i, d := range pl.Backward() {
		assert.Equal(t, d.Name, cmds[i].pipeline.Name(), "dispatch %d", i)
		assert.Equal(t, d.Groups, cmds[i].groups)
	}
	delta := func(c command) buffer {
		for _, a := range c.buffers {
			if a.index == mslplan.BufDelta {
				return a.buf
			}
		}
		return nil
	}
	require.NotNil(t, delta(cmds[0]))
	assert.Same(t, delta(cmds[0]), delta(cmds[1]), "dK/dV reads the Delta the first kernel wrote")
	assert.Same(t, delta(cmds[0]), delta(cmds[3]))
	assert.Equal(t, metalrt.Private, delta(cmds[0]).Mode())
	// The partials: pooled private scratch of the plan's size, written by dK/dV and read
	// by the reduction.
	for _, idx := range []int{mslplan.BufDKPart, mslplan.BufDVPart} {
		var kv, red bufferArg
		for _, a := range cmds[1].buffers {
			if a.index == idx {
				kv = a
			}
		}
		for _, a := range cmds[2].buffers {
			if a.index == idx {
				red = a
			}
		}
		require.NotNil(t, kv.buf, "dK/dV binds partials at %d", idx)
		assert.Same(t, kv.buf, red.buf, "the reduction reads what dK/dV wrote at %d", idx)
		assert.True(t, kv.written)
		assert.False(t, red.written)
		assert.Equal(t, pl.DKDVScratchBytes()/2, kv.size)
		assert.Equal(t, metalrt.Private, kv.buf.Mode())
	}
	snap := dev.snapshots[0]
	assert.Equal(t, pl.Params.Encode(), snap[mslplan.BufParams])
	assert.Equal(t, s.L.Storage().Bytes(), snap[mslplan.BufL][:s.L.Bytes()])
	assert.Equal(t, dO.Storage().Bytes(), snap[mslplan.BufDO][:dO.Bytes()])

	// float32 gradients for float16 inputs.
	p.GradDType = tensor.Float32
	g32, err := e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	assert.Equal(t, tensor.Float32, g32.DQ.DType())
	allBytes(t, g32.DK, mslplan.BufDK+1)
}

// A float64 L (from the reference) is converted once, counted, and bound.
func TestBackwardFloat64L(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	rng := rand.New(rand.NewPCG(4, 4))
	s := &spec.Saved{O: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16), L: attntest.Tensor(t, rng, tensor.Float64, 1, 2, 8)}
	dO := attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16)
	_, err := e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	l32, err := s.L.Convert(tensor.Float32)
	require.NoError(t, err)
	assert.Equal(t, l32.Storage().Bytes(), dev.snapshots[0][mslplan.BufL][:l32.Bytes()])
	assert.Equal(t, allocator.Copy{Count: 1, Bytes: int64(l32.Bytes())}, e.CopyStats()[copyConvertL])
}

func TestFailures(t *testing.T) {
	compileErr := &metalrt.Error{Op: "NewLibrary", Kind: metalrt.ErrCompile, Detail: "fake: error: use of undeclared identifier"}
	cases := []struct {
		name  string
		setup func(*fakeDevice)
		want  error
		cause spec.Cause
	}{
		{"queue", func(d *fakeDevice) {
			d.failQueue = &metalrt.Error{Op: "NewQueue", Kind: metalrt.ErrNoDevice, Detail: "fake"}
		}, metalrt.ErrNoDevice, spec.CauseDeviceLost},
		{"compile", func(d *fakeDevice) { d.failCompile = compileErr }, metalrt.ErrCompile, spec.CauseCompile},
		{"function", func(d *fakeDevice) {
			d.failPipeline = map[string]error{"*": &metalrt.Error{Op: "Library.Function", Kind: metalrt.ErrFunctionNotFound, Detail: "fake"}}
		}, metalrt.ErrFunctionNotFound, spec.CauseCompile},
		{"pipeline", func(d *fakeDevice) {
			d.failPipeline = map[string]error{"*": &metalrt.Error{Op: "NewPipeline", Kind: metalrt.ErrPipeline, Detail: "fake"}}
		}, metalrt.ErrPipeline, spec.CauseCompile},
		{"command buffer", func(d *fakeDevice) {
			d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrCommandBuffer, Detail: "fake: Internal Error (0000000e:Internal Error)"}
		}, metalrt.ErrCommandBuffer, spec.CauseCommandBuffer},
		{"encode", func(d *fakeDevice) {
			d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrEncode, Detail: "fake"}
		}, metalrt.ErrEncode, spec.CauseCommandBuffer},
		{"gpu out of memory", func(d *fakeDevice) {
			d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrOutOfMemory, Detail: "fake"}
		}, metalrt.ErrOutOfMemory, spec.CauseOutOfMemory},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeDevice()
			c.setup(dev)
			e := testExecutor(t, dev)
			p := testProblem(t, tensor.Float32, 1, 2, 2, 8, 8, 16)
			rng := rand.New(rand.NewPCG(2, 2))
			s := &spec.Saved{O: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16), L: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8)}
			dO := attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16)
			before := snapshot(p.Q, p.K, p.V, s.O, s.L, dO)
			for i := 0; i < 2; i++ { // the second time, a cached failure
				out, err := e.Forward(context.Background(), p, nil)
				assert.Nil(t, out, "no partial outputs")
				assert.ErrorIs(t, err, c.want)
				assert.NotErrorIs(t, err, spec.ErrUnsupported, "a failure is not a decline")
				assert.Equal(t, c.cause, spec.CauseOf(err))
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				assert.Nil(t, g)
				assert.ErrorIs(t, err, c.want)
			}
			assert.Equal(t, pooled(e), dev.liveBuffers(), "only pooled buffers remain")
			require.NoError(t, e.Close())
			assert.Zero(t, dev.liveBuffers(), "every buffer is released")
			assert.Equal(t, before, snapshot(p.Q, p.K, p.V, s.O, s.L, dO), "inputs are not modified")
			assert.LessOrEqual(t, dev.compiles, 1, "a failed compilation is not retried")
		})
	}
}

// A lost device (or a command buffer past the wait limit) makes the executor decline
// everything afterwards, without touching the GPU again.
func TestDeviceLostIsSticky(t *testing.T) {
	for _, kind := range []error{metalrt.ErrDeviceLost, metalrt.ErrTimeout} {
		t.Run(kind.Error(), func(t *testing.T) {
			dev := newFakeDevice()
			dev.failRun = &metalrt.Error{Op: "Queue.Run", Kind: kind, Detail: "fake"}
			e := testExecutor(t, dev)
			p := testProblem(t, tensor.Float32, 1, 2, 2, 8, 8, 16)
			_, err := e.Forward(context.Background(), p, nil)
			assert.ErrorIs(t, err, kind)
			assert.Zero(t, pooled(e), "buffers the GPU may still use are not reused")
			err = e.Supports(p)
			assert.ErrorIs(t, err, spec.ErrUnsupported)
			assert.ErrorIs(t, err, kind)
			assert.Equal(t, spec.CauseDeviceLost, spec.CauseOf(err))
			_, err = e.Forward(context.Background(), p, nil)
			assert.Equal(t, spec.CauseDeviceLost, spec.CauseOf(err))
			assert.Len(t, dev.runs, 1, "nothing more is sent")
			assert.NotEmpty(t, e.Info().Lost)
		})
	}
}

// The context is checked between command buffers: cancelled during the first, the
// backward pass sends no second one and returns no gradients.
func TestCancelBetweenCommandBuffers(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	ctx, cancel := context.WithCancel(context.Background())
	dev.onRun = func(n int) {
		if n == 1 {
			cancel()
		}
	}
	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	rng := rand.New(rand.NewPCG(6, 6))
	s := &spec.Saved{O: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16), L: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8)}
	dO := attntest.Tensor(t, rng, tensor.Float32, 1, 2, 8, 16)
	g, err := e.Backward(ctx, p, s, dO, nil)
	assert.Nil(t, g)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Len(t, dev.runs, 1)
	assert.Equal(t, pooled(e), dev.liveBuffers(), "the gradients' storage is released")
}

func TestMemoryBudget(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 1, 64, 64, 32)
	ctx := spec.WithMemoryBudget(context.Background(), 1024)
	_, err := e.Forward(ctx, p, nil)
	assert.ErrorIs(t, err, spec.ErrMemoryBudget)
	assert.Zero(t, dev.allocs, "nothing is allocated over budget")
}

func TestAllocationFailureAtEveryStep(t *testing.T) {
	// Count the allocations of a good forward and backward, then fail each one.
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	p.SeqLensQ = []int{5}
	p.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, 8, 8}, Bias: make([]float32, 64)}
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	dO := attntest.Tensor(t, rand.New(rand.NewPCG(4, 4)), tensor.Float32, 1, 2, 8, 16)
	_, err = e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	total := dev.allocs
	require.Greater(t, total, 8)

	for n := 1; n <= total; n++ {
		dev := newFakeDevice()
		dev.failAllocAt = n
		e, err := newExecutor(dev, Params{Source: testSource})
		require.NoError(t, err)
		s2, ferr := e.Forward(context.Background(), p, nil)
		var berr error
		if ferr == nil {
			var g *spec.Grads
			g, berr = e.Backward(context.Background(), p, s2, dO, nil)
			if berr != nil {
				assert.Nil(t, g)
			}
		} else {
			assert.Nil(t, s2)
		}
		err = errors.Join(ferr, berr)
		assert.ErrorIs(t, err, metalrt.ErrOutOfMemory, "allocation %d", n)
		assert.Len(t, dev.runs, map[bool]int{true: 0, false: 1}[ferr != nil], "allocation %d: nothing runs after a failed allocation", n)
		require.NoError(t, e.Close())
		outputs := 0
		if ferr == nil {
			outputs = 2 // the forward's O and L, held by s2
		}
		assert.Equal(t, outputs, dev.liveBuffers(), "allocation %d: every buffer of a failed call released", n)
	}
}

func TestThreadLimitIsAFailureNotADecline(t *testing.T) {
	dev := newFakeDevice()
	dev.maxThr = 32
	e := testExecutor(t, dev)
	_, err := e.Forward(context.Background(), testProblem(t, tensor.Float32, 1, 1, 1, 64, 64, 64), nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "threads per threadgroup")
	assert.Empty(t, dev.runs)
}

func TestClose(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16)
	_, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	require.NoError(t, e.Close())
	require.NoError(t, e.Close(), "Close is idempotent")
	assert.True(t, dev.closed)
	for _, q := range dev.queues {
		assert.True(t, q.closed)
	}
	for _, l := range dev.libs {
		assert.True(t, l.closed)
	}
	for _, pp := range dev.pipes {
		assert.True(t, pp.closed)
	}
	_, err = e.Forward(context.Background(), p, nil)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, e.Supports(p), spec.ErrUnsupported)
	assert.ErrorIs(t, e.Warmup(), ErrClosed)
	var nilExec *Executor
	assert.NoError(t, nilExec.Close())
}

func TestInvalidInputGetsArgError(t *testing.T) {
	e := testExecutor(t, newFakeDevice())
	var ae *spec.ArgError
	_, err := e.Forward(context.Background(), nil, nil)
	assert.ErrorAs(t, err, &ae)
	p := testProblem(t, tensor.Float32, 1, 1, 1, 4, 4, 8)
	_, err = e.Backward(context.Background(), p, nil, nil, nil)
	assert.ErrorAs(t, err, &ae)
}

func TestConcurrentCalls(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := testProblem(t, tensor.Float32, 1, 2, 1, 8+i, 8, 16)
			_, err := e.Forward(context.Background(), p, nil)
			assert.NoError(t, err)
		}(i)
	}
	wg.Wait()
	assert.Equal(t, 1, dev.compiles)
}

func TestDefaultSourceIsSelfContained(t *testing.T) {
	src, err := defaultSource()
	require.NoError(t, err)
	assert.False(t, strings.Contains(src, "#include \""), "Metal has no include path: local headers are inlined")
	assert.True(t, strings.Contains(src, "AttentionParams"), "the params header is inlined")

	dev := newFakeDevice()
	e, err := newExecutor(dev, Params{})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Warmup())
	assert.Equal(t, []string{src, src}, dev.sources, "New compiles native/msl's kernels by default, in two libraries")
}
