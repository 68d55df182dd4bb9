package refcheck

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orchard-ml/orchard/go/tensor"
)

func TestClose(t *testing.T) {
	want := []float64{3, 4} // ‖want‖ = 5
	assert.True(t, Close("O", []float64{3, 4}, want, 0, 0).OK)
	r := Close("O", []float64{3, 4.05}, want, 1e-2, 0) // error 0.05/5 = 1e-2
	assert.True(t, r.OK, r.String())
	assert.InDelta(t, 1e-2, r.Err, 1e-12)
	r = Close("O", []float64{3, 4.1}, want, 1e-2, 0)
	assert.False(t, r.OK)
	assert.Contains(t, r.String(), "FAIL")
	assert.True(t, Close("dQ", []float64{3, 4.1}, want, 1e-2, 0.06).OK, "the absolute allowance")
	assert.False(t, Close("O", []float64{math.NaN(), 4}, want, 1, 0).OK, "NaN never passes")
	assert.False(t, Close("O", []float64{math.Inf(1), 4}, want, 1, 0).OK, "Inf never passes")
	assert.False(t, Close("O", []float64{3}, want, 1, 0).OK, "length")
	assert.False(t, Close("dQ", []float64{1e-9, 0}, []float64{0, 0}, 1e-8, 0).OK, "zero reference: only the allowance counts")
	assert.True(t, Close("dQ", []float64{1e-9, 0}, []float64{0, 0}, 1e-8, 1e-8).OK, "zero reference: only the allowance counts")
}

func TestLogsumexp(t *testing.T) {
	inf := math.Inf(-1)
	assert.True(t, Logsumexp([]float64{1, inf}, []float64{1, inf}, 0).OK)
	assert.False(t, Logsumexp([]float64{1, 2}, []float64{1, inf}, 1).OK, "a row the reference hides")
	assert.False(t, Logsumexp([]float64{1, inf}, []float64{1, 2}, 1).OK, "a row the kernel hides")
	assert.False(t, Logsumexp([]float64{math.NaN(), 2}, []float64{1, 2}, 1).OK)
	assert.False(t, Logsumexp([]float64{1.1, 2}, []float64{1, 2}, 1e-3).OK)
}

func TestToleranceAndAllowanceOrder(t *testing.T) {
	f32, f16, bf16 := ToleranceFor(tensor.Float32), ToleranceFor(tensor.Float16), ToleranceFor(tensor.BFloat16)
	assert.Less(t, f32.Fwd, f16.Fwd)
	assert.Less(t, f16.Fwd, bf16.Fwd)
	assert.Less(t, RoundingAllowance(tensor.Float32, 64), RoundingAllowance(tensor.Float16, 64))
	assert.Less(t, RoundingAllowance(tensor.Float16, 64), RoundingAllowance(tensor.BFloat16, 64))
	assert.Less(t, RoundingAllowance(tensor.Float32, 64), RoundingAllowance(tensor.Float32, 256))
}
