package metal

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

const testSource = "// the fake device does not compile anything\n"

func randTensor(t *testing.T, rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, s := range shape {
		n *= s
	}
	data := make([]float64, n)
	for i := range data {
		data[i] = rng.NormFloat64()
	}
	x, err := tensor.FromFloat64s(dt, data, shape...)
	require.NoError(t, err)
	return x
}

func testProblem(t *testing.T, dt tensor.DType, b, h, hkv, n, m, d int) *spec.Problem {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, uint64(n*1000+m)))
	return &spec.Problem{
		Q: randTensor(t, rng, dt, b, h, n, d),
		K: randTensor(t, rng, dt, b, hkv, m, d),
		V: randTensor(t, rng, dt, b, hkv, m, d),
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
}

func TestNewDefaults(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	assert.Equal(t, "metal", e.Name())
	assert.Equal(t, DefaultPriority, e.Priority())
	assert.Equal(t, mslplan.Apple8, e.Family())
	assert.Equal(t, "Fake GPU", e.DeviceName())
	assert.True(t, e.Needs().Contiguous)
	assert.Zero(t, dev.compiles, "kernels compile on first use, not in New")

	dev.families[metalrt.FamilyApple9] = true
	e2, err := newExecutor(dev, Params{Source: testSource, Priority: 7, Math: metalrt.MathRelaxed, Language: metalrt.MSL3_1})
	require.NoError(t, err)
	defer e2.Close()
	assert.Equal(t, 7, e2.Priority())
	assert.Equal(t, mslplan.Apple9, e2.Family())
	require.NoError(t, e2.Warmup())
	assert.Equal(t, []metalrt.CompileOptions{{Language: metalrt.MSL3_1, Math: metalrt.MathRelaxed}}, dev.opts)
	assert.Equal(t, []string{testSource}, dev.sources)
}

func TestSupports(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	assert.NoError(t, e.Supports(testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)))
	assert.NoError(t, e.Supports(testProblem(t, tensor.BFloat16, 1, 2, 2, 8, 8, 64)))

	f64 := testProblem(t, tensor.Float64, 1, 1, 1, 4, 4, 8)
	assert.ErrorIs(t, e.Supports(f64), spec.ErrUnsupported)
	big := testProblem(t, tensor.Float32, 1, 1, 1, 2, 2, 320)
	assert.ErrorIs(t, e.Supports(big), spec.ErrUnsupported)

	bad := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	bad.K = randTensor(t, rand.New(rand.NewPCG(3, 3)), tensor.Float32, 1, 1, 8, 32)
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
			assert.Zero(t, dev.liveBuffers(), "every buffer of the call is released")
		})
	}
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
	// K as a view: rows 2..7 of a larger tensor, so the plan reads it at an offset.
	big := randTensor(t, rand.New(rand.NewPCG(5, 5)), tensor.Float32, 1, 2, 10, 8)
	k, err := big.Slice(2, 2, 8)
	require.NoError(t, err)
	p.K = k

	_, err = e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	snap := dev.snapshots[0]
	assert.Equal(t, mslplan.AppendMask(nil, p.Mask), snap[mslplan.BufMask][:len(keep)])
	kf, err := k.ToFloat32s()
	require.NoError(t, err)
	first := kf[0] // element (0, 0, 0, 0) of the view sits at the start of the bound buffer
	assert.Equal(t, big.Storage().Bytes()[k.Offset()*4:k.Offset()*4+4], snap[mslplan.BufK][:4])
	assert.NotZero(t, first)
	assert.Zero(t, dev.liveBuffers())
}

func TestBackward(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float16, 2, 4, 1, 9, 12, 40)
	p.Dropout = spec.Dropout{P: 0.25, Seed: 1<<40 + 7, Offset: 3}
	rng := rand.New(rand.NewPCG(9, 9))
	s := &spec.Saved{O: randTensor(t, rng, tensor.Float16, 2, 4, 9, 40), L: randTensor(t, rng, tensor.Float32, 2, 4, 9)}
	dO := randTensor(t, rng, tensor.Float16, 2, 4, 9, 40)
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
	require.Len(t, dev.runs, 1, "one command buffer")
	cmds := dev.runs[0]
	require.Len(t, cmds, 3)
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
	assert.Same(t, delta(cmds[0]), delta(cmds[2]))
	assert.Equal(t, metalrt.Private, delta(cmds[0]).Mode())
	snap := dev.snapshots[0]
	assert.Equal(t, pl.Params.Encode(), snap[mslplan.BufParams])
	assert.Equal(t, s.L.Storage().Bytes(), snap[mslplan.BufL][:s.L.Bytes()])
	assert.Equal(t, dO.Storage().Bytes(), snap[mslplan.BufDO][:dO.Bytes()])
	assert.Zero(t, dev.liveBuffers())
}

// metalStorage is a caller's tensor in a private Metal buffer.
type metalStorage struct {
	b *metalrt.Buffer
	n int
}

func (s *metalStorage) Kind() tensor.StorageKind     { return tensor.Private }
func (s *metalStorage) Len() int                     { return s.n }
func (s *metalStorage) Bytes() []byte                { return nil }
func (s *metalStorage) MetalBuffer() *metalrt.Buffer { return s.b }

func TestForwardPrivateInputIsBlitted(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 1, 1, 8, 8, 16)
	key, ext := dev.register(p.V.Storage().Bytes())
	v, err := tensor.FromStorage(&metalStorage{b: key, n: p.V.Bytes()}, tensor.Float32, p.V.Shape(), p.V.Strides(), 0)
	require.NoError(t, err)
	want := append([]byte(nil), p.V.Storage().Bytes()...)
	p.V = v
	require.NoError(t, e.Supports(p))

	_, err = e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	cmds := dev.runs[0]
	require.Len(t, cmds, 2)
	assert.Equal(t, cmdCopy, cmds[0].kind, "the private input is copied first")
	assert.Same(t, ext, cmds[0].src)
	assert.Equal(t, want, dev.snapshots[0][mslplan.BufV][:len(want)])
	assert.Equal(t, want, ext.data, "the caller's buffer is untouched")
	assert.False(t, ext.closed)
	assert.Zero(t, dev.liveBuffers())

	// A view starting 2 bytes into a private buffer cannot be blitted.
	h16 := testProblem(t, tensor.Float16, 1, 1, 1, 8, 8, 16)
	key16, _ := dev.register(make([]byte, h16.V.Bytes()+2))
	v16, err := tensor.FromStorage(&metalStorage{b: key16, n: h16.V.Bytes() + 2}, tensor.Float16, h16.V.Shape(), h16.V.Strides(), 1)
	require.NoError(t, err)
	h16.V = v16
	assert.ErrorIs(t, e.Supports(h16), spec.ErrUnsupported)

	// An odd number of float16s fills no whole 4-byte word at the end: a blit
	// rounded up to 4 bytes would pass the end of an exactly sized buffer.
	odd := testProblem(t, tensor.Float16, 1, 1, 1, 3, 3, 3)
	n := odd.V.Bytes() // 18 bytes
	keyOdd, _ := dev.register(make([]byte, n))
	vOdd, err := tensor.FromStorage(&metalStorage{b: keyOdd, n: n}, tensor.Float16, odd.V.Shape(), odd.V.Strides(), 0)
	require.NoError(t, err)
	odd.V = vOdd
	err = e.Supports(odd)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "passes the end")
}

func TestFailures(t *testing.T) {
	compileErr := &metalrt.Error{Op: "NewLibrary", Kind: metalrt.ErrCompile, Detail: "fake: error: use of undeclared identifier"}
	cases := []struct {
		name  string
		setup func(*fakeDevice)
		want  error
	}{
		{"queue", func(d *fakeDevice) {
			d.failQueue = &metalrt.Error{Op: "NewQueue", Kind: metalrt.ErrEncode, Detail: "fake"}
		}, metalrt.ErrEncode},
		{"compile", func(d *fakeDevice) { d.failCompile = compileErr }, metalrt.ErrCompile},
		{"function", func(d *fakeDevice) {
			d.failPipeline = map[string]error{"*": &metalrt.Error{Op: "Library.Function", Kind: metalrt.ErrFunctionNotFound, Detail: "fake"}}
		}, metalrt.ErrFunctionNotFound},
		{"pipeline", func(d *fakeDevice) {
			d.failPipeline = map[string]error{"*": &metalrt.Error{Op: "NewPipeline", Kind: metalrt.ErrPipeline, Detail: "fake"}}
		}, metalrt.ErrPipeline},
		{"command buffer", func(d *fakeDevice) {
			d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrCommandBuffer, Detail: "fake: Internal Error (0000000e:Internal Error)"}
		}, metalrt.ErrCommandBuffer},
		{"gpu out of memory", func(d *fakeDevice) {
			d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrOutOfMemory, Detail: "fake"}
		}, metalrt.ErrOutOfMemory},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeDevice()
			c.setup(dev)
			e := testExecutor(t, dev)
			p := testProblem(t, tensor.Float32, 1, 2, 2, 8, 8, 16)
			rng := rand.New(rand.NewPCG(2, 2))
			s := &spec.Saved{O: randTensor(t, rng, tensor.Float32, 1, 2, 8, 16), L: randTensor(t, rng, tensor.Float32, 1, 2, 8)}
			dO := randTensor(t, rng, tensor.Float32, 1, 2, 8, 16)
			before := snapshot(p.Q, p.K, p.V, s.O, s.L, dO)
			for i := 0; i < 2; i++ { // the second time, a cached failure
				out, err := e.Forward(context.Background(), p, nil)
				assert.Nil(t, out, "no partial outputs")
				assert.ErrorIs(t, err, c.want)
				assert.NotErrorIs(t, err, spec.ErrUnsupported, "a failure is not a decline")
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				assert.Nil(t, g)
				assert.ErrorIs(t, err, c.want)
			}
			assert.Zero(t, dev.liveBuffers(), "every buffer is released")
			assert.Equal(t, before, snapshot(p.Q, p.K, p.V, s.O, s.L, dO), "inputs are not modified")
			assert.LessOrEqual(t, dev.compiles, 1, "a failed compilation is not retried")
		})
	}
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
	dO := randTensor(t, rand.New(rand.NewPCG(4, 4)), tensor.Float32, 1, 2, 8, 16)
	_, err = e.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	total := dev.allocs
	require.Greater(t, total, 8)

	for n := 1; n <= total; n++ {
		dev := newFakeDevice()
		dev.failAllocAt = n
		e := testExecutor(t, dev)
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
		err := errors.Join(ferr, berr)
		assert.ErrorIs(t, err, metalrt.ErrOutOfMemory, "allocation %d", n)
		assert.Zero(t, dev.liveBuffers(), "allocation %d: every buffer released", n)
		assert.Len(t, dev.runs, map[bool]int{true: 0, false: 1}[ferr != nil], "allocation %d: nothing runs after a failed allocation", n)
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
	assert.Zero(t, dev.liveBuffers())
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
	assert.Equal(t, []string{src}, dev.sources, "New compiles native/msl's kernels by default")
}
