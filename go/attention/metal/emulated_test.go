package metal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

// TestBackwardHeadSplitEmulated runs GQA and MQA forward and backward through the
// executor on the fake device with emulate set, so every dispatch the executor encodes
// runs the real kernel under tools/mslemu: the backward's dK/dV takes the head split
// (per-query-head float32 partials in pooled scratch, then the reduction dispatch, in
// the first command buffer), and dQ, dK, dV match go/fallback (float64, on the same
// values) within tools/msltest's gradient tolerance (refcheck.ToleranceFor), in
// all three dtypes, with dropout, causal masking, softcap, bool masks and lengths drawn
// in turn. Then the same backward under a memory budget that has room for everything
// but the partials takes the serial path (three dispatches, no scratch) with the same
// tolerance.
func TestBackwardHeadSplitEmulated(t *testing.T) {
	if !mslemu.Available() {
		t.Skip("the MSL emulator is unavailable (cgo on Linux with g++ ≥ 12)")
	}
	rng := rand.New(rand.NewPCG(2026, 12))
	shapes := [][3]int{{1, 4, 1}, {2, 4, 2}} // MQA, GQA
	n := 0
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		for _, sh := range shapes {
			n++
			b, h, hkv := sh[0], sh[1], sh[2]
			nq, m, d := 20+rng.IntN(20), 20+rng.IntN(30), 64
			name := fmt.Sprintf("%v B=%d H=%d Hkv=%d N=%d M=%d D=%d", dt, b, h, hkv, nq, m, d)
			p := testProblem(t, dt, b, h, hkv, nq, m, d)
			switch n % 4 {
			case 0:
				p.Dropout = spec.Dropout{P: 0.2, Seed: rng.Uint64(), Offset: rng.Uint64()}
				p.Causal = spec.CausalBottomRight
				name += " dropout causal-br"
			case 1:
				p.Softcap = 20
				p.Causal = spec.CausalTopLeft
				name += " softcap causal-tl"
			case 2:
				keep := make([]bool, b*nq*m)
				for i := range keep {
					keep[i] = rng.IntN(4) != 0
				}
				p.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{b, 1, nq, m}, Keep: keep}
				name += " bool-mask"
			case 3:
				p.SeqLensQ = make([]int, b)
				p.SeqLensK = make([]int, b)
				for i := range p.SeqLensQ {
					p.SeqLensQ[i], p.SeqLensK[i] = 1+rng.IntN(nq), 1+rng.IntN(m)
				}
				name += " lengths"
			}
			t.Run(name, func(t *testing.T) {
				dev := newFakeDevice()
				dev.emulate = true
				e := testExecutor(t, dev)
				ctx := context.Background()
				dO := attntest.Tensor(t, rng, dt, b, h, nq, d)

				pl, err := mslplan.New(mslplan.Request{Problem: p, Family: mslplan.Apple8})
				require.NoError(t, err)
				require.True(t, pl.DKDVHeads, "the problem must take the head split")

				s, err := e.Forward(ctx, p, nil)
				require.NoError(t, err)
				// The reference in float64 on the same values (not rounded to dt).
				p64 := *p
				for _, x := range []**tensor.Tensor{&p64.Q, &p64.K, &p64.V} {
					*x, err = (*x).Convert(tensor.Float64)
					require.NoError(t, err)
				}
				dO64, err := dO.Convert(tensor.Float64)
				require.NoError(t, err)
				ref, err := fallback.Forward(&p64)
				require.NoError(t, err)
				refG, err := fallback.Backward(&p64, ref, dO64)
				require.NoError(t, err)

				runs := len(dev.runs)
				g, err := e.Backward(ctx, p, s, dO, nil)
				require.NoError(t, err)
				require.Len(t, dev.runs, runs+2, "two command buffers")
				first := dev.runs[runs]
				require.Len(t, first, 3, "Delta, dK/dV partials, reduction")
				assert.Equal(t, pl.Reduce.Name, first[2].name)
				part := func(c command, idx int) buffer {
					for _, a := range c.buffers {
						if a.index == idx && a.size > 0 {
							return a.buf
						}
					}
					return nil
				}
				for _, idx := range []int{mslplan.BufDKPart, mslplan.BufDVPart} {
					require.NotNil(t, part(first[1], idx))
					assert.Same(t, part(first[1], idx), part(first[2], idx), "the reduction reads the partials dK/dV wrote")
				}
				tol := refcheck.ToleranceFor(dt).Grad
				for _, x := range []struct {
					what      string
					got, want *tensor.Tensor
				}{{"dQ", g.DQ, refG.DQ}, {"dK", g.DK, refG.DK}, {"dV", g.DV, refG.DV}} {
					err := attntest.RelL2(attntest.Values(t, x.want), attntest.Values(t, x.got))
					assert.LessOrEqual(t, err, tol, "%s: relative L2 %.3g", x.what, err)
					t.Logf("split %s: relative L2 %.3g (tolerance %.0e)", x.what, err, tol)
				}

				// A budget without room for the partials: the serial walk, same results.
				need := pl.DKDVScratchBytes()
				budget := spec.WithMemoryBudget(ctx, backwardBytesWithoutScratch(p)+int64(need)/2)
				runs = len(dev.runs)
				g2, err := e.Backward(budget, p, s, dO, nil)
				require.NoError(t, err)
				require.Len(t, dev.runs[runs], 2, "Delta and dK/dV: no partials, no reduction")
				assert.Nil(t, part(dev.runs[runs][1], mslplan.BufDKPart))
				for _, x := range []struct {
					what      string
					got, want *tensor.Tensor
				}{{"dQ", g2.DQ, refG.DQ}, {"dK", g2.DK, refG.DK}, {"dV", g2.DV, refG.DV}} {
					err := attntest.RelL2(attntest.Values(t, x.want), attntest.Values(t, x.got))
					assert.LessOrEqual(t, err, tol, "serial %s: relative L2 %.3g", x.what, err)
				}
			})
		}
	}
}

// backwardBytesWithoutScratch is what the executor's backward counts against the budget
// for p without the head split's partials, when O and L come from its own forward (bound
// in place, not uploaded): Q, K, V and dO uploaded, the mask and lengths, Delta, dQ, dK
// and dV; plus 1 KiB.
func backwardBytesWithoutScratch(p *spec.Problem) int64 {
	d := p.Dims()
	size := int64(p.Q.DType().Size())
	q := int64(d.B*d.H*d.N*d.D) * size
	k := int64(d.B*d.Hkv*d.M*d.D) * size
	rows := int64(d.B*d.H*d.N) * 4
	return 2*q + 2*k + auxBytes(p) + rows + q + 2*k + 1<<10
}
