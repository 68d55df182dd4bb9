package emuexec_test

import (
	"context"
	"errors"
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
	"github.com/orchard-ml/orchard/tools/msltest/emuexec"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

func values(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

// The executor computes what the reference does, honours destinations, records the
// kernels it launched and refuses cancelled contexts and unsupported problems.
func TestExecutor(t *testing.T) {
	if !mslemu.Available() {
		_, err := emuexec.New(emuexec.Params{})
		assert.ErrorIs(t, err, mslemu.ErrUnavailable)
		t.Skip("the MSL emulator is unavailable")
	}
	ex, err := emuexec.New(emuexec.Params{Family: mslplan.Apple9})
	require.NoError(t, err)
	assert.Equal(t, mslplan.Apple9, ex.Family())
	rng := rand.New(rand.NewPCG(1, 2))
	const b, h, hkv, n, m, d = 1, 2, 1, 21, 37, 61
	p := &spec.Problem{
		Q: attntest.Tensor(t, rng, tensor.Float32, b, h, n, d), K: attntest.Tensor(t, rng, tensor.Float32, b, hkv, m, d),
		V: attntest.Tensor(t, rng, tensor.Float32, b, hkv, m, d), Options: spec.Options{Causal: spec.CausalBottomRight},
	}
	dO := attntest.Tensor(t, rng, tensor.Float32, b, h, n, d)
	require.NoError(t, ex.Supports(p))
	ctx := context.Background()

	l64, err := tensor.New(tensor.Float64, b, h, n)
	require.NoError(t, err)
	into := &spec.Saved{L: l64}
	s, err := ex.Forward(ctx, p, into)
	require.NoError(t, err)
	assert.Same(t, into.L, s.L, "the L destination is used")
	ref, err := fallback.Forward(p)
	require.NoError(t, err)
	tol := refcheck.ToleranceFor(tensor.Float32)
	r := refcheck.Close("O", values(t, s.O), values(t, ref.O), tol.Fwd, 0)
	assert.True(t, r.OK, r.String())
	r = refcheck.Logsumexp(values(t, s.L), values(t, ref.L), tol.Fwd)
	assert.True(t, r.OK, r.String())

	g, err := ex.Backward(ctx, p, s, dO, nil) // float64 L is accepted
	require.NoError(t, err)
	rg, err := fallback.Backward(p, ref, dO)
	require.NoError(t, err)
	for _, c := range []struct {
		what      string
		got, want *tensor.Tensor
	}{{"dQ", g.DQ, rg.DQ}, {"dK", g.DK, rg.DK}, {"dV", g.DV, rg.DV}} {
		r := refcheck.Close(c.what, values(t, c.got), values(t, c.want), tol.Grad, 0)
		assert.True(t, r.OK, r.String())
	}
	pl, err := mslplan.New(mslplan.Request{Problem: p, Family: mslplan.Apple9})
	require.NoError(t, err)
	want := map[string]int{}
	for _, d := range pl.Dispatches() {
		want[d.Name]++
	}
	assert.Equal(t, want, ex.Launched())
	assert.Len(t, ex.LaunchedNames(), len(pl.Dispatches()))
	assert.True(t, pl.DKDVHeads, "GQA with a few key blocks: the head split and its reduction run")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = ex.Forward(cancelled, p, nil)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	_, err = ex.Backward(cancelled, p, s, dO, nil)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)

	p64 := &spec.Problem{Q: attntest.Tensor(t, rng, tensor.Float64, 1, 1, 4, 8), K: attntest.Tensor(t, rng, tensor.Float64, 1, 1, 4, 8),
		V: attntest.Tensor(t, rng, tensor.Float64, 1, 1, 4, 8)}
	assert.ErrorIs(t, ex.Supports(p64), spec.ErrUnsupported)
	_, err = ex.Forward(ctx, p64, nil)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
}
