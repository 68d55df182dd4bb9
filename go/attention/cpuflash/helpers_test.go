package cpuflash

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// scaledTensor returns x times sigma, rounded to x's dtype (x itself for sigma = 1).
func scaledTensor(t testing.TB, x *tensor.Tensor, sigma float64) *tensor.Tensor {
	t.Helper()
	if sigma == 1 {
		return x
	}
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	for i := range v {
		v[i] *= sigma
	}
	y, err := tensor.FromFloat64s(x.DType(), v, x.Shape()...)
	require.NoError(t, err)
	return y
}

func to64(t testing.TB, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	y, err := x.Convert(tensor.Float64)
	require.NoError(t, err)
	return y
}

// relL2 returns ‖got − want‖ / ‖want‖ over the finite entries of want, and whether every
// non-finite entry of want (−Inf in L) is matched exactly and got has no NaN.
func relL2(got, want []float64) (float64, bool) {
	var num, den float64
	ok := len(got) == len(want)
	for i := range want {
		if math.IsNaN(got[i]) {
			ok = false
			continue
		}
		if math.IsInf(want[i], 0) || math.IsInf(got[i], 0) {
			ok = ok && got[i] == want[i]
			continue
		}
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num), ok
	}
	return math.Sqrt(num / den), ok
}

// relL2Floor is relL2 with the denominator ‖want‖ raised to at least floor.
func relL2Floor(got, want []float64, floor float64) (float64, bool) {
	var num, den float64
	ok := len(got) == len(want)
	for i := range want {
		if math.IsNaN(got[i]) || math.IsInf(got[i], 0) || math.IsInf(want[i], 0) {
			ok = ok && got[i] == want[i]
			continue
		}
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	den = max(math.Sqrt(den), floor)
	if den == 0 {
		return math.Sqrt(num), ok
	}
	return math.Sqrt(num) / den, ok
}

// problem64 returns p with Q, K and V converted to float64 (the same values).
func problem64(t testing.TB, p *spec.Problem) *spec.Problem {
	cp := *p
	cp.Q, cp.K, cp.V = to64(t, p.Q), to64(t, p.K), to64(t, p.V)
	return &cp
}
