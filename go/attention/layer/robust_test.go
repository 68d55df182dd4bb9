package layer

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nilAttention returns neither a result nor an error: a broken Attention.
type nilAttention struct{}

func (nilAttention) Forward(context.Context, *spec.Problem, *spec.Saved) (*spec.Saved, error) {
	return nil, nil
}

func (nilAttention) Backward(context.Context, *spec.Problem, *spec.Saved, *tensor.Tensor, *spec.Grads) (*spec.Grads, error) {
	return nil, nil
}

// nilBackward runs the reference forward and returns nothing from backward.
type nilBackward struct{ Attention }

func (nilBackward) Backward(context.Context, *spec.Problem, *spec.Saved, *tensor.Tensor, *spec.Grads) (*spec.Grads, error) {
	return nil, nil
}

// Review D11: an Attention that returns (nil, nil) gives an error, not a panic; a failed
// backward leaves the gradients untouched and the Saved usable.
func TestNilAttentionResultsAreErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	x := attntest.Tensor(t, rng, tensor.Float32, 1, 5, 16)
	m, err := New(Params{Dim: 16, Heads: 4}, nilAttention{})
	require.NoError(t, err)
	y, s, err := m.Forward(bg, x)
	assert.ErrorContains(t, err, "returned no result")
	assert.Nil(t, y)
	assert.Nil(t, s)

	m, err = New(Params{Dim: 16, Heads: 4, Bias: true}, nilBackward{ref()})
	require.NoError(t, err)
	_, s, err = m.Forward(bg, x)
	require.NoError(t, err)
	dx, err := m.Backward(bg, s, x)
	assert.ErrorContains(t, err, "returned no result")
	assert.Nil(t, dx)
	for _, p := range m.Parameters() {
		assert.Equal(t, make([]float64, p.Grad.Len()), attntest.Values(t, p.Grad), "%s: a failed backward adds nothing", p.Name)
	}
	m.attn = ref() // the same Saved works once the attention does
	_, err = m.Backward(bg, s, x)
	assert.NoError(t, err)
}

// Review D10: a layer whose parameters cannot fit is refused by New, with the field named.
func TestNewRefusesAbsurdSizes(t *testing.T) {
	for _, p := range []Params{
		{Dim: 1 << 31, Heads: 1 << 31},
		{Dim: 1 << 40, Heads: 1},
		{Dim: 1 << 62, Heads: 1 << 61},
	} {
		m, err := New(p, ref())
		assert.Nil(t, m)
		requireArgErr(t, err, "Params.Dim")
	}
}

// A cancelled context stops Forward and Backward with an error wrapping context.Canceled;
// the dropout offset does not advance and no gradient changes.
func TestCancellation(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	x := attntest.Tensor(t, rng, tensor.Float32, 2, 6, 16)
	m, err := New(Params{Dim: 16, Heads: 4, Dropout: 0.1, Bias: true}, cpuflash.New(cpuflash.Params{}))
	require.NoError(t, err)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = m.Forward(done, x)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, m.DropoutOffset())

	_, s, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, err = m.Backward(done, s, x)
	assert.ErrorIs(t, err, context.Canceled)
	for _, p := range m.Parameters() {
		assert.Equal(t, make([]float64, p.Grad.Len()), attntest.Values(t, p.Grad), p.Name)
	}
	_, err = m.Backward(bg, s, x) // not consumed by the cancelled call
	assert.NoError(t, err)

	var nilCtx context.Context
	_, _, err = m.Forward(nilCtx, x)
	requireArgErr(t, err, "ctx")
}

// Through the engine, a training loop allocates no attention inputs, outputs or gradients
// after its first step: the layer passes its own buffers as destinations, the executor
// writes them, and Backward hands them to the next Forward.
func TestStepsReuseAttentionBuffers(t *testing.T) {
	e, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}})
	require.NoError(t, err)
	defer func() { assert.NoError(t, e.Close()) }()
	m, err := New(Params{Dim: 32, Heads: 4, KVHeads: 2, Bias: true}, e)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(13, 13))
	x := attntest.Tensor(t, rng, tensor.Float32, 2, 9, 32)
	var first *buffers
	for step := range 3 {
		y, s, err := m.Forward(bg, x)
		require.NoError(t, err)
		if step == 0 {
			first = s.buf
		}
		assert.Same(t, first, s.buf, "step %d reuses step 0's buffers", step)
		assert.Same(t, first.O, s.Attn.O, "the engine wrote O into the layer's buffer")
		assert.Same(t, first.L, s.Attn.L)
		assert.Same(t, first.Q, s.Problem.Q)
		_, err = m.Backward(bg, s, y)
		require.NoError(t, err)
		require.NotNil(t, first.dQ)
	}
	assert.Equal(t, int64(6), e.Stats().Calls["cpuflash"])
	assert.Zero(t, e.Stats().Copies)

	// Two forwards in flight hold two sets; a shape change takes its own set.
	_, s1, err := m.Forward(bg, x)
	require.NoError(t, err)
	_, s2, err := m.Forward(bg, x)
	require.NoError(t, err)
	assert.NotSame(t, s1.buf, s2.buf)
	short := attntest.Tensor(t, rng, tensor.Float32, 1, 4, 32)
	_, s3, err := m.Forward(bg, short)
	require.NoError(t, err)
	assert.Equal(t, [3]int{1, 4, 4}, [3]int{s3.buf.b, s3.buf.n, s3.buf.m})
	for _, s := range []*Saved{s1, s2, s3} {
		_, err = m.Backward(bg, s, s.XQ)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, len(m.free), maxFree)

	// Evaluation: Release hands the buffers back without a Backward.
	m.Train(false)
	_, se, err := m.Forward(bg, x)
	require.NoError(t, err)
	held := se.buf
	require.NoError(t, m.Release(se))
	_, se2, err := m.Forward(bg, x)
	require.NoError(t, err)
	assert.Same(t, held, se2.buf, "the released set is reused")
	requireArgErr(t, m.Release(se), "saved")
	_, err = m.Backward(bg, se, x)
	requireArgErr(t, err, "saved")
	requireArgErr(t, m.Release(nil), "saved")
}

// A key-padding mask hides keys: the output equals cross-attention over the keys left
// (the layer has no positions, so dropping rows is the same as hiding them), and hidden
// keys get zero gradients. Padding at the end travels as key lengths, elsewhere as a
// boolean mask; both paths are checked.
func TestKeyPadding(t *testing.T) {
	const B, N, M, C = 1, 5, 7, 16
	for _, tc := range []struct {
		name string
		pad  []bool
	}{
		{"trailing", []bool{false, false, false, false, true, true, true}},
		{"scattered", []bool{true, false, true, false, false, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(14, 14))
			m, err := New(Params{Dim: C, Heads: 4, KVHeads: 2, Bias: true, DType: tensor.Float64}, ref())
			require.NoError(t, err)
			xq := attntest.Tensor(t, rng, tensor.Float64, B, N, C)
			xkv := attntest.Tensor(t, rng, tensor.Float64, B, M, C)
			dy := attntest.Tensor(t, rng, tensor.Float64, B, N, C)
			y, s, err := m.ForwardMasked(bg, xq, xkv, Mask{KeyPadding: tc.pad})
			require.NoError(t, err)
			if tc.name == "trailing" {
				assert.Equal(t, []int{4}, s.Problem.SeqLensK)
				assert.Nil(t, s.Problem.Mask)
			} else {
				require.NotNil(t, s.Problem.Mask)
				assert.Nil(t, s.Problem.SeqLensK)
			}
			dxq, dxkv, err := m.BackwardCross(bg, s, dy)
			require.NoError(t, err)

			var kept []float64
			kv := attntest.Values(t, xkv)
			for j, p := range tc.pad {
				if !p {
					kept = append(kept, kv[j*C:(j+1)*C]...)
				}
			}
			xk, err := tensor.FromFloat64s(tensor.Float64, kept, B, len(kept)/C, C)
			require.NoError(t, err)
			want, s2, err := m.ForwardCross(bg, xq, xk)
			require.NoError(t, err)
			wdxq, wdxk, err := m.BackwardCross(bg, s2, dy)
			require.NoError(t, err)
			assert.InDeltaSlice(t, attntest.Values(t, want), attntest.Values(t, y), 1e-12)
			assert.InDeltaSlice(t, attntest.Values(t, wdxq), attntest.Values(t, dxq), 1e-12)
			got, wk, r := attntest.Values(t, dxkv), attntest.Values(t, wdxk), 0
			for j, p := range tc.pad {
				if p {
					assert.Equal(t, make([]float64, C), got[j*C:(j+1)*C], "padded key %d", j)
					continue
				}
				assert.InDeltaSlice(t, wk[r*C:(r+1)*C], got[j*C:(j+1)*C], 1e-12, "key %d", j)
				r++
			}
		})
	}
	m, err := New(Params{Dim: C, Heads: 4}, ref())
	require.NoError(t, err)
	x := attntest.Tensor(t, rand.New(rand.NewPCG(1, 1)), tensor.Float32, 2, 3, C)
	_, _, err = m.ForwardMasked(bg, x, nil, Mask{KeyPadding: make([]bool, 5)})
	requireArgErr(t, err, "mask.KeyPadding")
}
