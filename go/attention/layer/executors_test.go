package layer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The float32 layer gives the same outputs and gradients on the CPU flash executor as on
// the reference, dropout included (both draw the mask from the same Philox stream), for
// self- and cross-attention. Tolerance: the difference is float32 rounding in the
// executors (cpuflash computes in float32, the reference accumulates in float64), on
// unit-scale values; measured ≤ 4e-6, allowed 5e-5 absolute.
func TestCPUFlashMatchesReference(t *testing.T) {
	for i, tc := range []struct {
		cross   bool
		N, M    int
		causal  spec.Causal
		dropout float64
	}{
		{false, 33, 33, spec.CausalTopLeft, 0.2},
		{true, 17, 40, spec.CausalBottomRight, 0.1},
		{true, 40, 17, spec.CausalNone, 0},
	} {
		t.Run(fmt.Sprintf("cross=%v/N%dM%d/%v/dropout=%v", tc.cross, tc.N, tc.M, tc.causal, tc.dropout), func(t *testing.T) {
			p := Params{Dim: 32, Heads: 4, KVHeads: 2, Causal: tc.causal, Dropout: tc.dropout, Bias: true, Seed: int64(i)}
			flash, err := New(p, cpuflash.New(cpuflash.Params{}))
			require.NoError(t, err)
			ref, err := New(p, fallback.NewExecutor())
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(uint64(i), 77))
			xq := attntest.Tensor(t, rng, tensor.Float32, 2, tc.N, 32)
			xkv := attntest.Tensor(t, rng, tensor.Float32, 2, tc.M, 32)
			dy := attntest.Tensor(t, rng, tensor.Float32, 2, tc.N, 32)
			run := func(m *MultiHeadAttention) (y, dxq, dxkv *tensor.Tensor) {
				if tc.cross {
					y, s, err := m.ForwardCross(bg, xq, xkv)
					require.NoError(t, err)
					dxq, dxkv, err = m.BackwardCross(bg, s, dy)
					require.NoError(t, err)
					return y, dxq, dxkv
				}
				y, s, err := m.Forward(bg, xq)
				require.NoError(t, err)
				dxq, err = m.Backward(bg, s, dy)
				require.NoError(t, err)
				return y, dxq, nil
			}
			yf, dqf, dkvf := run(flash)
			yr, dqr, dkvr := run(ref)
			assert.InDeltaSlice(t, attntest.Values(t, yr), attntest.Values(t, yf), 5e-5, "y")
			assert.InDeltaSlice(t, attntest.Values(t, dqr), attntest.Values(t, dqf), 5e-5, "dxq")
			if tc.cross {
				assert.InDeltaSlice(t, attntest.Values(t, dkvr), attntest.Values(t, dkvf), 5e-5, "dxkv")
			}
			pf, pr := flash.Parameters(), ref.Parameters()
			for j := range pf {
				assert.InDeltaSlice(t, attntest.Values(t, pr[j].Grad), attntest.Values(t, pf[j].Grad), 5e-5, pf[j].Name)
			}
		})
	}
}
