package cpuflash

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// randTensor returns a tensor of dtype dt with N(0, σ²) values; the values are rounded to
// dt, so converting the tensor to float64 gives exactly what an executor reads.
func randTensor(t testing.TB, rng *rand.Rand, dt tensor.DType, sigma float64, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, s := range shape {
		n *= s
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * sigma
	}
	x, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return x
}

func to64(t testing.TB, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	y, err := x.Convert(tensor.Float64)
	require.NoError(t, err)
	return y
}

// vals returns the elements of x as float64 (row-major).
func vals(t testing.TB, x *tensor.Tensor) []float64 {
	t.Helper()
	if x.IsContiguous() {
		switch x.DType() {
		case tensor.Float32:
			f, err := x.Float32s()
			require.NoError(t, err)
			v := make([]float64, len(f))
			for i, e := range f {
				v[i] = float64(e)
			}
			return v
		case tensor.Float64:
			f, err := x.Float64s()
			require.NoError(t, err)
			return append([]float64(nil), f...)
		}
	}
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
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
