//go:build darwin && !ios && cgo

package metal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// These tests run the kernels on the Mac's GPU (the macOS CI workflow) and hold
// them against go/fallback, the exact reference, on random problems. They skip
// when the machine has no Metal device or one older than apple7.

func gpuExecutor(t *testing.T) *Executor {
	t.Helper()
	e, err := New(Params{})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("Metal executor unavailable: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	t.Logf("device %q, family %v", e.DeviceName(), e.Family())
	return e
}

func TestGPUWarmupCompilesEveryKernel(t *testing.T) {
	e := gpuExecutor(t)
	require.NoError(t, e.Warmup())
}

// tolerance is the largest relative L2 error allowed per dtype: [outputs, gradients].
func tolerance(dt tensor.DType) [2]float64 {
	switch dt {
	case tensor.Float32:
		return [2]float64{1e-5, 1e-4}
	case tensor.Float16:
		return [2]float64{3e-3, 3e-3}
	}
	return [2]float64{2e-2, 2e-2} // bfloat16 keeps 8 bits of mantissa
}

// relL2 is ||got − want|| / ||want|| over the elements where want is finite;
// where want is infinite (L of a row with no visible key), got must equal it.
func relL2(t *testing.T, name string, got, want *tensor.Tensor) float64 {
	t.Helper()
	g, err := got.ToFloat64s()
	require.NoError(t, err)
	w, err := want.ToFloat64s()
	require.NoError(t, err)
	require.Len(t, g, len(w), name)
	var num, den float64
	for i := range w {
		if math.IsInf(w[i], 0) {
			assert.Equal(t, w[i], g[i], "%s[%d]", name, i)
			continue
		}
		require.False(t, math.IsNaN(g[i]) || math.IsInf(g[i], 0), "%s[%d] = %v, want %v", name, i, g[i], w[i])
		d := g[i] - w[i]
		num += d * d
		den += w[i] * w[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

type gpuCase struct {
	dt                 tensor.DType
	b, h, hkv, n, m, d int
	causal             spec.Causal
	window             *spec.Window
	mask               spec.MaskKind
	lensQ, lensK       []int
	softcap, dropout   float64
}

func (c gpuCase) String() string {
	return fmt.Sprintf("%v_b%dh%dkv%d_n%dm%dd%d_c%v_w%v_m%d_lq%v_lk%v_cap%g_p%g",
		c.dt, c.b, c.h, c.hkv, c.n, c.m, c.d, c.causal, c.window != nil, c.mask, c.lensQ != nil, c.lensK != nil, c.softcap, c.dropout)
}

func (c gpuCase) problem(t *testing.T, seed uint64) *spec.Problem {
	rng := rand.New(rand.NewPCG(seed, 17))
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, c.dt, c.b, c.h, c.n, c.d),
		K: attntest.Tensor(t, rng, c.dt, c.b, c.hkv, c.m, c.d),
		V: attntest.Tensor(t, rng, c.dt, c.b, c.hkv, c.m, c.d),
	}
	p.Causal, p.Window, p.SeqLensQ, p.SeqLensK, p.Softcap = c.causal, c.window, c.lensQ, c.lensK, c.softcap
	if c.dropout > 0 {
		p.Dropout = spec.Dropout{P: c.dropout, Seed: seed*7919 + 1, Offset: seed}
	}
	switch c.mask {
	case spec.MaskBool:
		keep := make([]bool, c.b*c.n*c.m)
		for i := range keep {
			keep[i] = rng.IntN(4) != 0
		}
		p.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{c.b, 1, c.n, c.m}, Keep: keep}
	case spec.MaskAdditive:
		bias := make([]float32, c.h*c.n*c.m)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
			if rng.IntN(8) == 0 {
				bias[i] = float32(math.Inf(-1))
			}
		}
		p.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, c.h, c.n, c.m}, Bias: bias}
	}
	return p
}

func gpuCases() []gpuCase {
	var cs []gpuCase
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		cs = append(cs,
			gpuCase{dt: dt, b: 1, h: 1, hkv: 1, n: 16, m: 16, d: 64},
			gpuCase{dt: dt, b: 2, h: 4, hkv: 2, n: 37, m: 53, d: 40, causal: spec.CausalTopLeft},
			gpuCase{dt: dt, b: 2, h: 2, hkv: 1, n: 20, m: 70, d: 128, causal: spec.CausalBottomRight, lensQ: []int{20, 7}, lensK: []int{70, 33}},
			gpuCase{dt: dt, b: 1, h: 3, hkv: 3, n: 45, m: 45, d: 32, window: &spec.Window{Left: 5, Right: 2}, mask: spec.MaskBool},
			gpuCase{dt: dt, b: 2, h: 2, hkv: 2, n: 33, m: 31, d: 80, mask: spec.MaskAdditive, softcap: 20},
			gpuCase{dt: dt, b: 1, h: 2, hkv: 1, n: 24, m: 40, d: 96, dropout: 0.2, causal: spec.CausalTopLeft},
			gpuCase{dt: dt, b: 1, h: 1, hkv: 1, n: 9, m: 130, d: 256},
			gpuCase{dt: dt, b: 1, h: 2, hkv: 2, n: 8, m: 8, d: 16, lensQ: []int{5}, lensK: []int{0}}, // no visible keys
		)
	}
	return cs
}

func TestGPUMatchesReference(t *testing.T) {
	e := gpuExecutor(t)
	for i, c := range gpuCases() {
		t.Run(c.String(), func(t *testing.T) {
			p := c.problem(t, uint64(i+1))
			if err := e.Supports(p); err != nil {
				if errors.Is(err, spec.ErrUnsupported) {
					t.Skipf("declined: %v", err)
				}
				require.NoError(t, err)
			}
			tol := tolerance(c.dt)

			want, err := fallback.Forward(p)
			require.NoError(t, err)
			got, err := e.Forward(context.Background(), p, nil)
			require.NoError(t, err)
			assert.LessOrEqual(t, relL2(t, "O", got.O, want.O), tol[0], "O")
			assert.LessOrEqual(t, relL2(t, "L", got.L, want.L), tol[0], "L")

			dO := attntest.Tensor(t, rand.New(rand.NewPCG(uint64(i)+100, 3)), c.dt, c.b, c.h, c.n, c.d)
			// Backward from the reference's saved state, so that only the backward
			// kernels are measured.
			wg, err := fallback.Backward(p, want, dO)
			require.NoError(t, err)
			gg, err := e.Backward(context.Background(), p, want, dO, nil)
			require.NoError(t, err)
			assert.LessOrEqual(t, relL2(t, "dQ", gg.DQ, wg.DQ), tol[1], "dQ")
			assert.LessOrEqual(t, relL2(t, "dK", gg.DK, wg.DK), tol[1], "dK")
			assert.LessOrEqual(t, relL2(t, "dV", gg.DV, wg.DV), tol[1], "dV")

			// The same bits run after run: no atomics anywhere.
			again, err := e.Backward(context.Background(), p, want, dO, nil)
			require.NoError(t, err)
			for _, pair := range [][2]*tensor.Tensor{{gg.DQ, again.DQ}, {gg.DK, again.DK}, {gg.DV, again.DV}} {
				assert.Equal(t, pair[0].Storage().Bytes(), pair[1].Storage().Bytes(), "bitwise reproducible")
			}
		})
	}
}

// A user's private tensors go through forward and backward on the GPU, bound where
// they live, with no copy anywhere, and match the reference; reading a private result
// costs one counted staging copy.
func TestGPUPrivateTensorsEndToEnd(t *testing.T) {
	e := gpuExecutor(t)
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true})
	require.NoError(t, err)
	defer eng.Close()
	c := gpuCase{dt: tensor.Float32, b: 1, h: 2, hkv: 1, n: 20, m: 24, d: 64, causal: spec.CausalBottomRight}
	hp := c.problem(t, 5)
	want, err := fallback.Forward(hp)
	require.NoError(t, err)
	dO := attntest.Tensor(t, rand.New(rand.NewPCG(6, 3)), c.dt, c.b, c.h, c.n, c.d)
	wantG, err := fallback.Backward(hp, want, dO)
	require.NoError(t, err)

	priv, err := allocator.NewMetalStrategy(e.Device(), metalrt.Private)
	require.NoError(t, err)
	place := func(x *tensor.Tensor) *tensor.Tensor {
		y, err := allocator.Place(priv, x)
		require.NoError(t, err)
		return y
	}
	p := *hp
	p.Q, p.K, p.V = place(hp.Q), place(hp.K), place(hp.V)
	s, err := eng.Forward(context.Background(), &p, nil)
	require.NoError(t, err)
	assert.LessOrEqual(t, relL2(t, "O", s.O, want.O), 1e-5)
	g, err := eng.Backward(context.Background(), &p, s, place(dO), nil)
	require.NoError(t, err)
	assert.LessOrEqual(t, relL2(t, "dQ", g.DQ, wantG.DQ), 1e-4)
	assert.LessOrEqual(t, relL2(t, "dK", g.DK, wantG.DK), 1e-4)
	assert.LessOrEqual(t, relL2(t, "dV", g.DV, wantG.DV), 1e-4)
	assert.Zero(t, eng.Stats().Copies, "bound in place: %v", eng.Stats().CopiesByKind)

	// Private results: the host reads them through one staging copy each.
	pe, err := New(Params{Policy: allocator.Policy{Outputs: tensor.Private}})
	require.NoError(t, err)
	defer pe.Close()
	ps, err := allocator.NewMetalStrategy(pe.Device(), metalrt.Private)
	require.NoError(t, err)
	q := *hp
	for _, x := range []**tensor.Tensor{&q.Q, &q.K, &q.V} {
		*x, err = allocator.Place(ps, *x)
		require.NoError(t, err)
	}
	s2, err := pe.Forward(context.Background(), &q, nil)
	require.NoError(t, err)
	assert.Equal(t, tensor.Private, s2.O.Storage().Kind())
	host, copied, err := allocator.HostView(s2.O)
	require.NoError(t, err)
	assert.True(t, copied)
	assert.LessOrEqual(t, relL2(t, "O", host, want.O), 1e-5)
	assert.Equal(t, int64(1), pe.CopyStats()[allocator.CopyStageOut].Count)
}

// Every error class from the real shim (the fault hook at the Go→C boundary), through
// the real engine: the engine falls back to cpuflash, the results equal cpuflash's alone
// bit for bit, the destinations hold exactly them, and nothing leaks into the pool.
func TestGPUFaultsThroughTheShim(t *testing.T) {
	cases := []struct {
		op    string
		fault metalrt.Fault
		cause spec.Cause
	}{
		{metalrt.OpNewBuffer, metalrt.FaultNil, spec.CauseOutOfMemory},
		{metalrt.OpNewQueue, metalrt.FaultNil, spec.CauseDeviceLost},
		{metalrt.OpNewLibrary, metalrt.FaultNil, spec.CauseCompile},
		{metalrt.OpFunction, metalrt.FaultNil, spec.CauseCompile},
		{metalrt.OpNewPipeline, metalrt.FaultNil, spec.CauseCompile},
		{metalrt.OpRun, metalrt.FaultNil, spec.CauseCommandBuffer},
		{metalrt.OpRun, metalrt.FaultPageFault, spec.CauseCommandBuffer},
		{metalrt.OpRun, metalrt.FaultOutOfMemory, spec.CauseOutOfMemory},
		{metalrt.OpRun, metalrt.FaultDeviceRemoved, spec.CauseDeviceLost},
		{metalrt.OpRun, metalrt.FaultTimeout, spec.CauseCommandBuffer},
	}
	hp := gpuCase{dt: tensor.Float32, b: 1, h: 2, hkv: 1, n: 20, m: 24, d: 64}.problem(t, 9)
	dO := attntest.Tensor(t, rand.New(rand.NewPCG(9, 3)), tensor.Float32, 1, 2, 20, 64)
	cpu := cpuflash.New(cpuflash.Params{})
	want, err := cpu.Forward(context.Background(), hp, nil)
	require.NoError(t, err)
	wantG, err := cpu.Backward(context.Background(), hp, want, dO, nil)
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.op+"/"+c.fault.String(), func(t *testing.T) {
			e := gpuExecutor(t)
			rt := e.dev.(*rtDevice).d
			rt.SetFaultHook(func(op string) metalrt.Fault {
				if op == c.op {
					return c.fault
				}
				return metalrt.NoFault
			})
			eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e, cpuflash.New(cpuflash.Params{})}})
			require.NoError(t, err)
			s, err := eng.Forward(context.Background(), hp, nil)
			require.NoError(t, err)
			g, err := eng.Backward(context.Background(), hp, s, dO, nil)
			require.NoError(t, err)
			assert.Equal(t, want.O.Storage().Bytes(), s.O.Storage().Bytes(), "O")
			for i, pair := range [][2]*tensor.Tensor{{wantG.DQ, g.DQ}, {wantG.DK, g.DK}, {wantG.DV, g.DV}} {
				assert.Equal(t, pair[0].Storage().Bytes(), pair[1].Storage().Bytes(), "gradient %d", i)
			}
			assert.Positive(t, eng.Stats().Fallbacks["metal: "+string(c.cause)], "%v", eng.Stats().Fallbacks)
			rt.SetFaultHook(nil)
			require.NoError(t, eng.Close())
		})
	}
}
