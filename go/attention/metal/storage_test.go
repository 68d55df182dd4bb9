package metal

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// place copies x into new storage of the given mode on the executor's device.
func place(t *testing.T, e *Executor, mode metalrt.StorageMode, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	s, err := allocator.NewMetalStrategy(e.Device(), mode)
	require.NoError(t, err)
	y, err := allocator.Place(s, x)
	require.NoError(t, err)
	return y
}

// bindingOf returns the buffer argument at index of the first dispatch of run r.
func bindingOf(t *testing.T, dev *fakeDevice, r, index int) bufferArg {
	t.Helper()
	for _, a := range dev.runs[r][0].buffers {
		if a.index == index {
			return a
		}
	}
	t.Fatalf("run %d binds nothing at %d", r, index)
	return bufferArg{}
}

// The copy counts of one forward call through the engine, per way the inputs arrive:
// only host tensors are copied, by the executor's uploads; tensors in Metal memory of
// the device — shared, private, or a strided view of either — are bound in place; a
// private result costs a staging copy only when the host reads it.
func TestCopyCountTable(t *testing.T) {
	type inputs func(t *testing.T, e *Executor, p *spec.Problem) *spec.Problem
	host := func(t *testing.T, e *Executor, p *spec.Problem) *spec.Problem { return p }
	inMode := func(mode metalrt.StorageMode) inputs {
		return func(t *testing.T, e *Executor, p *spec.Problem) *spec.Problem {
			q := *p
			q.Q, q.K, q.V = place(t, e, mode, p.Q), place(t, e, mode, p.K), place(t, e, mode, p.V)
			return &q
		}
	}
	// K as rows 2..9 of a shared [1, 2, 12, 16] tensor: unit inner stride, bound at its
	// byte offset with its own strides.
	stridedShared := func(t *testing.T, e *Executor, p *spec.Problem) *spec.Problem {
		q := *inMode(metalrt.Shared)(t, e, p)
		big := place(t, e, metalrt.Shared, attntest.Tensor(t, randFor(7), tensor.Float32, 1, 2, 12, 16))
		k, err := big.Slice(2, 2, 10)
		require.NoError(t, err)
		q.K = k
		return &q
	}
	stridedHost := func(t *testing.T, e *Executor, p *spec.Problem) *spec.Problem {
		q := *p
		big := attntest.Tensor(t, randFor(7), tensor.Float32, 1, 2, 12, 16)
		k, err := big.Slice(2, 2, 10)
		require.NoError(t, err)
		q.K = k
		return &q
	}
	qkv := int64(3 * 1 * 2 * 8 * 16 * 4)
	kSpan := int64(((2-1)*12*16 + (8-1)*16 + 16) * 4) // the view's span in its storage
	cases := []struct {
		name      string
		in        inputs
		policy    allocator.Policy
		want      allocator.CopyStats // the engine's counts after the forward call
		readWant  allocator.CopyStats // after the host reads O
		kOffset   int                 // expected binding offset of K
		outputsIn tensor.StorageKind
	}{
		{"host tensors in", host, allocator.Policy{},
			allocator.CopyStats{copyUpload: {Count: 3, Bytes: qkv}}, nil, 0, tensor.Shared},
		{"shared tensors in: zero copies", inMode(metalrt.Shared), allocator.Policy{},
			allocator.CopyStats{}, nil, 0, tensor.Shared},
		{"private tensors in, private out: zero copies until the host reads", inMode(metalrt.Private), allocator.Policy{Outputs: tensor.Private},
			allocator.CopyStats{}, allocator.CopyStats{allocator.CopyStageOut: {Count: 1, Bytes: 2 * 8 * 16 * 4}}, 0, tensor.Private},
		{"strided shared view in: bound at its offset", stridedShared, allocator.Policy{},
			allocator.CopyStats{}, nil, 2 * 16 * 4, tensor.Shared},
		{"strided host view in: its span uploaded", stridedHost, allocator.Policy{},
			allocator.CopyStats{copyUpload: {Count: 3, Bytes: qkv/3*2 + kSpan}}, nil, 0, tensor.Shared},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := newFakeDevice()
			e, err := newExecutor(dev, Params{Source: testSource, Policy: c.policy})
			require.NoError(t, err)
			eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true, Logger: quiet})
			require.NoError(t, err)
			defer eng.Close()
			p := c.in(t, e, testProblem(t, tensor.Float32, 1, 2, 2, 8, 8, 16))
			s, err := eng.Forward(context.Background(), p, nil)
			require.NoError(t, err)
			st := eng.Stats()
			assert.Equal(t, int64(1), st.Calls["metal"])
			got := allocator.CopyStats{}
			for k, v := range st.CopiesByKind {
				if v.Count > 0 {
					got[k] = v
				}
			}
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.kOffset, bindingOf(t, dev, 0, mslplan.BufK).offset)
			assert.Equal(t, c.outputsIn, s.O.Storage().Kind())

			// The host reads O.
			o, copied, err := allocator.HostView(s.O)
			require.NoError(t, err)
			assert.Equal(t, c.outputsIn == tensor.Private, copied)
			allBytes(t, o, mslplan.BufO+1)
			after := eng.Stats().CopiesByKind
			for k, v := range c.readWant {
				assert.Equal(t, v, after[k], k)
			}
			if c.readWant == nil {
				assert.Equal(t, st.Copies, eng.Stats().Copies, "reading a shared result copies nothing")
			}
		})
	}
}

// A user's private tensors go through forward and backward on the (fake) GPU with no
// copy at all: bound at their offsets, results in shared memory the backward binds in
// place too.
func TestPrivateTensorsEndToEnd(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true, Logger: quiet})
	require.NoError(t, err)
	defer eng.Close()
	hp := testProblem(t, tensor.Float32, 1, 2, 1, 16, 8, 16)
	p := &spec.Problem{Q: place(t, e, metalrt.Private, hp.Q), K: place(t, e, metalrt.Private, hp.K), V: place(t, e, metalrt.Private, hp.V)}
	for _, x := range []*tensor.Tensor{p.Q, p.K, p.V} {
		assert.Equal(t, tensor.Private, x.Storage().Kind())
		assert.Nil(t, x.Storage().Bytes())
	}
	s, err := eng.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	assert.Equal(t, hp.Q.Storage().Bytes(), dev.snapshots[0][mslplan.BufQ], "the kernel read the private Q where it lives")
	assert.Same(t, p.Q.Storage().(*allocator.MetalStorage).Buffer(), bindingOf(t, dev, 0, mslplan.BufQ).buf)

	dO := place(t, e, metalrt.Private, attntest.Tensor(t, randFor(8), tensor.Float32, 1, 2, 16, 16))
	g, err := eng.Backward(context.Background(), p, s, dO, nil)
	require.NoError(t, err)
	assert.Same(t, s.O.Storage().(*allocator.MetalStorage).Buffer(), bindingOf(t, dev, 1, mslplan.BufO).buf, "Saved.O bound in place")
	assert.Same(t, dO.Storage().(*allocator.MetalStorage).Buffer(), bindingOf(t, dev, 1, mslplan.BufDO).buf)
	allBytes(t, g.DQ, mslplan.BufDQ+1)
	st := eng.Stats()
	assert.Zero(t, st.Copies, "no copy anywhere: %v", st.CopiesByKind)
	assert.Equal(t, int64(2), st.Calls["metal"])
}

// Managed memory (a discrete GPU): inputs are marked modified over the bound range,
// outputs synchronised for the host at the end of the command buffer.
func TestManagedStorage(t *testing.T) {
	dev := newFakeDevice()
	dev.unified = false
	e := testExecutor(t, dev)
	hp := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	p := &spec.Problem{Q: place(t, e, metalrt.Managed, hp.Q), K: hp.K, V: hp.V}
	q := p.Q.Storage().(*allocator.MetalStorage).Buffer().(*fakeBuffer)
	q.modified = nil
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	assert.Equal(t, [][2]int{{0, hp.Q.Bytes()}}, q.modified, "didModifyRange over the bound range")
	assert.Equal(t, tensor.Managed, s.O.Storage().Kind(), "discrete GPU: outputs in managed memory")
	cmds := dev.runs[0]
	require.Len(t, cmds, 3, "the dispatch, then a synchronization per output")
	assert.Equal(t, cmdSync, cmds[1].kind)
	assert.Equal(t, cmdSync, cmds[2].kind)
	allBytes(t, s.O, mslplan.BufO+1) // the CPU copy is current
}

// Outputs go where the caller says: destinations in a buffer of this device are written
// in place, others get one counted copy.
func TestDestinations(t *testing.T) {
	dev := newFakeDevice()
	e := testExecutor(t, dev)
	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	into := &spec.Saved{
		O: place(t, e, metalrt.Private, attntest.Tensor(t, randFor(1), tensor.Float32, 1, 2, 8, 16)),
		L: attntest.Tensor(t, randFor(2), tensor.Float64, 1, 2, 8), // host, float64: copied
	}
	s, err := e.Forward(context.Background(), p, into)
	require.NoError(t, err)
	assert.Same(t, into.O, s.O)
	assert.Same(t, into.L, s.L)
	assert.Same(t, into.O.Storage().(*allocator.MetalStorage).Buffer(), bindingOf(t, dev, 0, mslplan.BufO).buf, "written in place")
	assert.Equal(t, allocator.Copy{Count: 1, Bytes: 2 * 8 * 4}, e.CopyStats()[copyToDestination])
	l, err := into.L.ToFloat64s()
	require.NoError(t, err)
	want := float64(math.Float32frombits(0x08080808)) // the fake wrote BufL+1 into every byte
	for _, v := range l {
		assert.Equal(t, want, v)
	}
}

// The fault table on Linux: each way the GPU can fail, inside the engine with cpuflash
// next. The engine falls back; the results equal cpuflash's alone, bit for bit; the
// destinations, which the fake GPU half-wrote before failing, hold exactly cpuflash's
// results; the cause is counted; nothing leaks.
func TestFaultTable(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(d *fakeDevice)
		cause  spec.Cause
		sticky bool
	}{
		{"allocation", func(d *fakeDevice) { d.failAllocGE = d.allocs + 1 }, spec.CauseOutOfMemory, false},
		{"queue", func(d *fakeDevice) { d.failQueue = &metalrt.Error{Op: "NewQueue", Kind: metalrt.ErrNoDevice} }, spec.CauseDeviceLost, false},
		{"compile", func(d *fakeDevice) { d.failCompile = &metalrt.Error{Op: "NewLibrary", Kind: metalrt.ErrCompile} }, spec.CauseCompile, false},
		{"pipeline", func(d *fakeDevice) {
			d.failPipeline = map[string]error{"*": &metalrt.Error{Op: "NewPipeline", Kind: metalrt.ErrPipeline}}
		}, spec.CauseCompile, false},
		{"encode", func(d *fakeDevice) { d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrEncode} }, spec.CauseCommandBuffer, false},
		{"command buffer", func(d *fakeDevice) { d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrCommandBuffer} }, spec.CauseCommandBuffer, false},
		{"gpu out of memory", func(d *fakeDevice) { d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrOutOfMemory} }, spec.CauseOutOfMemory, false},
		{"device lost", func(d *fakeDevice) { d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrDeviceLost} }, spec.CauseDeviceLost, true},
		{"timeout", func(d *fakeDevice) { d.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrTimeout} }, spec.CauseCommandBuffer, true},
		{"second command buffer", func(d *fakeDevice) {
			d.failRun, d.failRunAt = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrCommandBuffer}, 3
		}, spec.CauseCommandBuffer, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hp := testProblem(t, tensor.Float32, 1, 2, 1, 16, 12, 16)
			hp.Causal = spec.CausalBottomRight
			dO := attntest.Tensor(t, randFor(11), tensor.Float32, 1, 2, 16, 16)

			// What cpuflash computes alone.
			cpu := cpuflash.New(cpuflash.Params{})
			want, err := cpu.Forward(context.Background(), hp, nil)
			require.NoError(t, err)
			wantG, err := cpu.Backward(context.Background(), hp, want, dO, nil)
			require.NoError(t, err)

			dev := newFakeDevice()
			e, err := newExecutor(dev, Params{Source: testSource})
			require.NoError(t, err)
			eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e, cpuflash.New(cpuflash.Params{})}, Logger: quiet})
			require.NoError(t, err)
			ds, err := allocator.NewMetalStrategy(e.Device(), metalrt.Shared)
			require.NoError(t, err)
			dest := func(like *tensor.Tensor) *tensor.Tensor {
				st, err := ds.AllocMetal(like.Bytes())
				require.NoError(t, err)
				copy(st.Bytes(), bytes.Repeat([]byte{0xff}, like.Bytes())) // NaNs
				x, err := tensor.FromStorage(st, like.DType(), like.Shape(), tensor.ContiguousStrides(like.Shape()), 0)
				require.NoError(t, err)
				return x
			}
			into := &spec.Saved{O: dest(want.O), L: dest(want.L)}
			gInto := &spec.Grads{DQ: dest(hp.Q), DK: dest(hp.K), DV: dest(hp.V)}
			c.setup(dev) // after the destinations: an allocation failure hits the executor

			s, err := eng.Forward(context.Background(), hp, into)
			require.NoError(t, err)
			assert.Same(t, into.O, s.O)
			cpuCalls := int64(2)
			if forwardOnGPU := c.name == "second command buffer"; forwardOnGPU {
				// The forward completed on the GPU: the backward falls back from its saved state.
				allBytes(t, s.O, mslplan.BufO+1)
				wantG, err = cpu.Backward(context.Background(), hp, s, dO, nil)
				require.NoError(t, err)
				cpuCalls = 1
			} else {
				assert.Equal(t, want.O.Storage().Bytes(), s.O.Storage().Bytes(), "O: cpuflash's bits, no fake GPU bytes left")
				assert.Equal(t, want.L.Storage().Bytes(), s.L.Storage().Bytes(), "L")
			}
			g, err := eng.Backward(context.Background(), hp, s, dO, gInto)
			require.NoError(t, err)
			for i, pair := range [][2]*tensor.Tensor{{wantG.DQ, g.DQ}, {wantG.DK, g.DK}, {wantG.DV, g.DV}} {
				assert.Equal(t, pair[0].Storage().Bytes(), pair[1].Storage().Bytes(), "gradient %d", i)
			}
			st := eng.Stats()
			assert.Positive(t, st.Fallbacks["metal: "+string(c.cause)], "%v", st.Fallbacks)
			assert.Equal(t, cpuCalls, st.Calls["cpuflash"])
			if c.sticky {
				runs := len(dev.runs)
				_, err := eng.Forward(context.Background(), hp, nil)
				require.NoError(t, err)
				assert.Len(t, dev.runs, runs, "a lost device is not tried again")
			}
			require.NoError(t, eng.Close())
			assert.Equal(t, 5, dev.liveBuffers(), "only the five destinations remain: %d", dev.liveBuffers())
		})
	}
}

func randFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 17)) }
