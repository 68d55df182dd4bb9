package cpuflash

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback/badinput"
	"github.com/orchard-ml/orchard/go/tensor"
)

func TestIdentity(t *testing.T) {
	e := New(Params{})
	assert.Equal(t, "cpuflash", e.Name())
	assert.Equal(t, 100, e.Priority())
	assert.Equal(t, 150, New(Params{Priority: 150}).Priority())
	assert.Equal(t, allocator.Needs{Contiguous: true}, e.Needs())
	assert.Contains(t, []string{"avx512", "avx2", "neon", "go"}, e.Kernels())
	assert.Equal(t, "go", New(Params{Portable: true}).Kernels())
	bq, bk := New(Params{BlockQ: 50, BlockK: 1}).Blocks(64)
	assert.Equal(t, [2]int{96, 48}, [2]int{bq, bk}, "overrides round up to multiples of 48")
	var _ spec.Executor = e
	var _ attention.Needer = e
	t.Logf("kernels: %s", e.Kernels())
}

// Every row of the contract's shared bad-input table: a typed error naming the argument,
// from Supports, Forward and Backward alike; no panic, no partial result, inputs unchanged.
func TestBadInputGetsTypedErrors(t *testing.T) {
	valid, err := badinput.Valid()
	require.NoError(t, err)
	e := New(Params{})
	s, err := e.Forward(context.Background(), valid.Problem, nil)
	require.NoError(t, err, "the call every case starts from must run")
	_, err = e.Backward(context.Background(), valid.Problem, s, valid.DO, nil)
	require.NoError(t, err)

	cases, err := badinput.Cases()
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				require.Error(t, err, what)
				assert.ErrorIs(t, err, spec.ErrInvalid, what)
				var ae *spec.ArgError
				require.ErrorAs(t, err, &ae, what)
				assert.Equal(t, c.Arg, ae.Arg, what)
			}
			var ins []*tensor.Tensor
			if c.Problem != nil {
				ins = append(ins, c.Problem.Q, c.Problem.K, c.Problem.V)
			}
			if c.Saved != nil {
				ins = append(ins, c.Saved.O, c.Saved.L)
			}
			ins = append(ins, c.DO)
			before := snapshotNonNil(ins...)
			if !c.Backward {
				var s *spec.Saved
				var err error
				require.NotPanics(t, func() { err = e.Supports(c.Problem) })
				check("Supports", err)
				require.NotPanics(t, func() { s, err = e.Forward(context.Background(), c.Problem, nil) })
				assert.Nil(t, s)
				check("Forward", err)
			}
			var g *spec.Grads
			require.NotPanics(t, func() { g, err = e.Backward(context.Background(), c.Problem, c.Saved, c.DO, nil) })
			assert.Nil(t, g)
			check("Backward", err)
			assert.Equal(t, before, snapshotNonNil(ins...), "inputs unchanged")
		})
	}
}

func snapshotNonNil(ts ...*tensor.Tensor) [][]byte {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		if t != nil && t.Storage().Bytes() != nil {
			out[i] = append([]byte(nil), t.Storage().Bytes()...)
		}
	}
	return out
}

// deviceStorage is memory the CPU cannot read, like a Metal private buffer.
type deviceStorage struct{ n int }

func (s deviceStorage) Kind() tensor.StorageKind { return tensor.Private }
func (s deviceStorage) Len() int                 { return s.n }
func (s deviceStorage) Bytes() []byte            { return nil }

// What the executor declines is an *UnsupportedError naming it and the reason, so the
// engine moves on to the reference.
func TestDeclines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 4))
	e := New(Params{})
	f64 := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float64, 1, 2, 5, 8),
		K: attntest.Tensor(t, rng, tensor.Float64, 1, 2, 6, 8),
		V: attntest.Tensor(t, rng, tensor.Float64, 1, 2, 6, 8),
	}
	priv, err := tensor.FromStorage(deviceStorage{n: 4 * 2 * 5 * 8}, tensor.Float32, []int{1, 2, 5, 8}, tensor.ContiguousStrides([]int{1, 2, 5, 8}), 0)
	require.NoError(t, err)
	onDevice := &spec.Problem{
		Q: priv,
		K: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 6, 8),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, 2, 6, 8),
	}
	for _, c := range []struct {
		name, reason string
		p            *spec.Problem
	}{
		{"float64", "float64", f64},
		{"private storage", "Q is in private storage", onDevice},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := e.Supports(c.p)
			require.ErrorIs(t, err, spec.ErrUnsupported)
			var ue *spec.UnsupportedError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, "cpuflash", ue.Executor)
			assert.Contains(t, ue.Reason, c.reason)
			s, err := e.Forward(context.Background(), c.p, nil)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, spec.ErrUnsupported)
		})
	}
}

// A logsumexp that is NaN or +Inf cannot come from a forward pass: Backward names
// Saved.L, as the reference does.
func TestBackwardRejectsBadLogsumexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 5))
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, 1, 1, 4, 8),
		K: attntest.Tensor(t, rng, tensor.Float32, 1, 1, 4, 8),
		V: attntest.Tensor(t, rng, tensor.Float32, 1, 1, 4, 8),
	}
	e := New(Params{})
	s, err := e.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		l, err := s.L.Clone()
		require.NoError(t, err)
		require.NoError(t, l.Set(bad, 0, 0, 2))
		g, err := e.Backward(context.Background(), p, &spec.Saved{O: s.O, L: l}, attntest.Tensor(t, rng, tensor.Float32, 1, 1, 4, 8), nil)
		assert.Nil(t, g)
		var ae *spec.ArgError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "Saved.L", ae.Arg)
	}
}

// Strided views work when called directly (the executor copies them) and give the same
// bits as their contiguous copies.
func TestNonContiguousInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 6))
	// Q stored as [B, N, H, D] and viewed as [B, H, N, D].
	qBNHD := attntest.Tensor(t, rng, tensor.Float32, 2, 37, 3, 16)
	q, err := qBNHD.Permute(0, 2, 1, 3)
	require.NoError(t, err)
	require.False(t, q.IsContiguous())
	qc, err := q.Clone()
	require.NoError(t, err)
	k := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 41, 16)
	v := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 41, 16)
	dO := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 37, 16)
	e := New(Params{})
	run := func(q *tensor.Tensor) [][]byte {
		p := &spec.Problem{Q: q, K: k, V: v, Options: spec.Options{Causal: spec.CausalBottomRight}}
		s, err := e.Forward(context.Background(), p, nil)
		require.NoError(t, err)
		g, err := e.Backward(context.Background(), p, s, dO, nil)
		require.NoError(t, err)
		return snapshot(s.O, s.L, g.DQ, g.DK, g.DV)
	}
	before := snapshot(qBNHD)
	assert.Equal(t, run(qc), run(q))
	assert.Equal(t, before, snapshot(qBNHD), "the strided input is unchanged")
}

// Through the engine, the executor runs ahead of the reference, and inputs it cannot
// take as they are (a strided view) are prepared with its Needs.
func TestEngineRunsCPUFlash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 7))
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{New(Params{})}, Strict: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"cpuflash", "reference"}, eng.Executors())
	kBMHD := attntest.Tensor(t, rng, tensor.Float16, 1, 20, 2, 8)
	k, err := kBMHD.Permute(0, 2, 1, 3)
	require.NoError(t, err)
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float16, 1, 4, 9, 8),
		K: k,
		V: attntest.Tensor(t, rng, tensor.Float16, 1, 2, 20, 8),
	}
	s, err := eng.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	_, err = eng.Backward(context.Background(), p, s, attntest.Tensor(t, rng, tensor.Float16, 1, 4, 9, 8), nil)
	require.NoError(t, err)
	st := eng.Stats()
	assert.Equal(t, int64(2), st.Calls["cpuflash"])
	assert.Empty(t, st.Fallbacks)
	assert.Equal(t, int64(2), st.Copies, "only the strided K was copied, once per call")
}
