package msltest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// TestFullyMaskedRows: rows with no visible key — past a batch's length, hidden by the
// bool mask, by an all −Inf additive row, or above the bottom-right diagonal when
// N > M — get O = 0, L = −Inf and zero gradients exactly, never NaN; keys nobody sees
// get dK = dV = 0 exactly.
func TestFullyMaskedRows(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(5, 5))
	const b, h, n, m, d = 2, 2, 21, 13, 32
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			q, q64, err := randTensor(rng, dt, [4]int{b, h, n, d}, false)
			require.NoError(t, err)
			k, k64, err := randTensor(rng, dt, [4]int{b, 1, m, d}, false)
			require.NoError(t, err)
			v, v64, err := randTensor(rng, dt, [4]int{b, 1, m, d}, false)
			require.NoError(t, err)
			dO, dO64, err := randTensor(rng, dt, [4]int{b, h, n, d}, false)
			require.NoError(t, err)
			bias := make([]float32, b*n*m)
			for i := range bias {
				bias[i] = float32(rng.NormFloat64())
			}
			for j := 0; j < m; j++ {
				bias[(0*n+3)*m+j] = float32(math.Inf(-1)) // batch 0, row 3: every key −Inf
			}
			o := spec.Options{
				Causal:   spec.CausalBottomRight, // with n = 21 > m = 13, rows 0..7 see nothing
				Mask:     &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{b, 1, n, m}, Bias: bias},
				SeqLensQ: []int{n, 15},    // batch 1: rows 15.. are padding
				SeqLensK: []int{m - 2, m}, // batch 0: the last two keys are padding
			}
			tiles := testTiles(32)
			c := &testCase{
				name: "masked rows " + dt.String(), cfg: emuConfig{dt, 0, 32}, tiles: tiles,
				p:   &spec.Problem{Q: q, K: k, V: v, Options: o},
				p64: &spec.Problem{Q: q64, K: k64, V: v64, Options: o},
				dO:  dO, dO64: dO64,
			}
			checkCase(t, c)

			pl := planFor(t, c)
			saved, err := runner{}.forward(pl, c.p)
			require.NoError(t, err)
			g, _, err := runner{}.backward(pl, c.p, saved, dO)
			require.NoError(t, err)
			ov, lv, dq := float64s(t, saved.O), float64s(t, saved.L), float64s(t, g.DQ)
			empty := 0
			for bb := 0; bb < b; bb++ {
				for hh := 0; hh < h; hh++ {
					for i := 0; i < n; i++ {
						visible := false
						for j := 0; j < m; j++ {
							visible = visible || (c.p.Visible(bb, hh, i, j) && !math.IsInf(c.p.Bias(bb, hh, i, j), -1))
						}
						if visible {
							continue
						}
						empty++
						r := (bb*h+hh)*n + i
						assert.True(t, math.IsInf(lv[r], -1), "L[%d] = %v", r, lv[r])
						for e := 0; e < d; e++ {
							assert.Zero(t, ov[r*d+e], "O row %d", r)
							assert.Zero(t, dq[r*d+e], "dQ row %d", r)
						}
					}
				}
			}
			assert.GreaterOrEqual(t, empty, 2*8+2*6+2, "the problem must have rows with no visible key")
			dk, dv := float64s(t, g.DK), float64s(t, g.DV)
			for j := m - 2; j < m; j++ { // batch 0's padding keys
				for e := 0; e < d; e++ {
					assert.Zero(t, dk[j*d+e])
					assert.Zero(t, dv[j*d+e])
				}
			}
		})
	}
}

// TestBackwardReadsStridedOAndDO: the backward reads O and dO through their own strides
// and offsets when the plan is made with them.
func TestBackwardReadsStridedOAndDO(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(8, 8))
	var c *testCase
	for c == nil || c.p.Dims().H < 2 || c.p.Dims().N < 2 { // so the views are not contiguous
		var err error
		c, err = randCase(rng, 0, emuConfig{tensor.Float32, 0, 64})
		require.NoError(t, err)
	}
	c.p.Options, c.p64.Options = spec.Options{Causal: spec.CausalTopLeft}, spec.Options{Causal: spec.CausalTopLeft}
	d := c.p.Dims()
	pl := planFor(t, c)
	saved, err := runner{}.forward(pl, c.p)
	require.NoError(t, err)
	contiguous, _, err := runner{}.backward(pl, c.p, saved, c.dO)
	require.NoError(t, err)

	// The same O and dO as permuted views of [B, N, H, D] parents.
	view := func(x *tensor.Tensor) *tensor.Tensor {
		perm, err := x.Permute(0, 2, 1, 3)
		require.NoError(t, err)
		parent, err := perm.Clone() // [B, N, H, D], contiguous
		require.NoError(t, err)
		back, err := parent.Permute(0, 2, 1, 3)
		require.NoError(t, err)
		return back
	}
	o, dO := view(saved.O), view(c.dO)
	require.False(t, o.IsContiguous())
	r := mslplan.Request{Problem: c.p, O: o, DO: dO, Family: mslplan.Apple7, Tiles: &c.tiles}
	pl2, err := mslplan.New(r)
	require.NoError(t, err)
	assert.Equal(t, [3]uint32{uint32(d.N * d.H * d.D), uint32(d.D), uint32(d.H * d.D)}, pl2.Params.OStride)
	strided, _, err := runner{}.backward(pl2, c.p, &spec.Saved{O: o, L: saved.L}, dO)
	require.NoError(t, err)
	assert.Equal(t, raw(contiguous.DQ), raw(strided.DQ))
	assert.Equal(t, raw(contiguous.DK), raw(strided.DK))
	assert.Equal(t, raw(contiguous.DV), raw(strided.DV))
}

// TestDeltaKernel holds the Delta kernel alone against rowsum(dO ∘ O) in float64.
func TestDeltaKernel(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(2, 3))
	for _, cfg := range []emuConfig{{tensor.Float32, 0, 256}, {tensor.Float16, 0, 80}, {tensor.BFloat16, 0, 32}} {
		c, err := randCase(rng, 0, cfg)
		require.NoError(t, err)
		pl := planFor(t, c)
		saved, err := runner{}.forward(pl, c.p)
		require.NoError(t, err)
		_, delta, err := runner{}.backward(pl, c.p, saved, c.dO)
		require.NoError(t, err)
		ov, gv := float64s(t, saved.O), float64s(t, c.dO)
		d := c.p.Dims()
		want := make([]float64, d.B*d.H*d.N)
		got := make([]float64, len(want))
		for r := range want {
			for e := 0; e < d.D; e++ {
				want[r] += ov[r*d.D+e] * gv[r*d.D+e]
			}
			got[r] = float64(delta[r])
		}
		assertClose(t, c.name, "Delta", got, want, 1e-5)
	}
}

// TestProductionTilesSeveralBlocks runs the production tiles of both tables on problems
// long enough to span several key and query blocks (the random problems, ≤ 40 rows,
// mostly fit in one production block).
func TestProductionTilesSeveralBlocks(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(4, 4))
	for _, cfg := range emulated {
		if cfg.family == 0 {
			continue
		}
		c, err := randCase(rng, 0, cfg)
		require.NoError(t, err)
		// Regrow the problem to N = 70, M = 150 with causal bottom-right masking and a
		// window, keeping the drawn head dim and heads.
		d := c.p.Dims()
		q, q64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.H, 70, d.D}, false)
		require.NoError(t, err)
		k, k64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, 150, d.D}, true)
		require.NoError(t, err)
		v, v64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, 150, d.D}, false)
		require.NoError(t, err)
		c.dO, c.dO64, err = randTensor(rng, cfg.dt, [4]int{d.B, d.H, 70, d.D}, false)
		require.NoError(t, err)
		o := spec.Options{Causal: spec.CausalBottomRight, Window: &spec.Window{Left: 100, Right: spec.WindowUnbounded},
			Dropout: spec.Dropout{P: 0.1, Seed: 3, Offset: 9}}
		c.p = &spec.Problem{Q: q, K: k, V: v, Options: o}
		c.p64 = &spec.Problem{Q: q64, K: k64, V: v64, Options: o}
		c.name = "long " + cfg.String()
		t.Run(c.name, func(t *testing.T) { checkCase(t, c) })
	}
}

// TestTinyProblems: one row, one key, head dim 1.
func TestTinyProblems(t *testing.T) {
	requireEmulator(t)
	rng := rand.New(rand.NewPCG(6, 6))
	for _, dims := range [][3]int{{1, 1, 1}, {1, 7, 1}, {9, 1, 3}, {2, 2, 1}} {
		n, m, dh := dims[0], dims[1], dims[2]
		q, q64, err := randTensor(rng, tensor.Float32, [4]int{1, 2, n, dh}, false)
		require.NoError(t, err)
		k, k64, err := randTensor(rng, tensor.Float32, [4]int{1, 1, m, dh}, false)
		require.NoError(t, err)
		v, v64, err := randTensor(rng, tensor.Float32, [4]int{1, 1, m, dh}, false)
		require.NoError(t, err)
		dO, dO64, err := randTensor(rng, tensor.Float32, [4]int{1, 2, n, dh}, false)
		require.NoError(t, err)
		c := &testCase{name: "tiny", cfg: emulated[0], tiles: emulated[0].tiles(),
			p: &spec.Problem{Q: q, K: k, V: v}, p64: &spec.Problem{Q: q64, K: k64, V: v64}, dO: dO, dO64: dO64}
		checkCase(t, c)
	}
}
