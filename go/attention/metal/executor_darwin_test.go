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
		Q: randTensor(t, rng, c.dt, c.b, c.h, c.n, c.d),
		K: randTensor(t, rng, c.dt, c.b, c.hkv, c.m, c.d),
		V: randTensor(t, rng, c.dt, c.b, c.hkv, c.m, c.d),
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

			dO := randTensor(t, rand.New(rand.NewPCG(uint64(i)+100, 3)), c.dt, c.b, c.h, c.n, c.d)
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

// privateStorage is a tensor in a private Metal buffer, filled through a shared
// one by a blit.
type privateStorage struct {
	b *metalrt.Buffer
}

func (s *privateStorage) Kind() tensor.StorageKind     { return tensor.Private }
func (s *privateStorage) Len() int                     { return s.b.Len() }
func (s *privateStorage) Bytes() []byte                { return nil }
func (s *privateStorage) MetalBuffer() *metalrt.Buffer { return s.b }

func TestGPUPrivateInputs(t *testing.T) {
	e := gpuExecutor(t)
	p := gpuCase{dt: tensor.Float32, b: 1, h: 2, hkv: 1, n: 20, m: 24, d: 64}.problem(t, 5)
	want, err := fallback.Forward(p)
	require.NoError(t, err)

	dev, err := metalrt.Open(e.DeviceName())
	require.NoError(t, err)
	defer dev.Close()
	q, err := dev.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	toPrivate := func(x *tensor.Tensor) *tensor.Tensor {
		host := x.Storage().Bytes()
		src, err := dev.NewBuffer(len(host), metalrt.Shared)
		require.NoError(t, err)
		defer src.Close()
		copy(src.Bytes(), host)
		dst, err := dev.NewBuffer(len(host), metalrt.Private)
		require.NoError(t, err)
		t.Cleanup(func() { dst.Close() })
		require.NoError(t, q.Run(metalrt.Copy{Src: src, Dst: dst, Size: len(host)}))
		out, err := tensor.FromStorage(&privateStorage{dst}, x.DType(), x.Shape(), x.Strides(), 0)
		require.NoError(t, err)
		return out
	}
	p.K, p.V = toPrivate(p.K), toPrivate(p.V)
	require.NoError(t, e.Supports(p))
	got, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	assert.LessOrEqual(t, relL2(t, "O", got.O, want.O), 1e-5)
}
