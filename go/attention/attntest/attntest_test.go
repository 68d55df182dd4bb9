package attntest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/require"
)

// The engine and cpuflash start worker goroutines; none may outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// engine returns an engine over cpuflash and the reference, closed when the test ends.
func engine(t testing.TB, strict bool) *attention.Engine {
	t.Helper()
	e, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}, Strict: strict, Logger: quiet()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// The reference keeps the numeric guarantees in every dtype (it computes in float64: only
// the rounding of the outputs to the dtype is left).
func TestNumericsReference(t *testing.T) {
	for _, c := range []struct {
		dt  tensor.DType
		tol float64
	}{{tensor.Float64, 1e-12}, {tensor.Float32, 1e-6}, {tensor.Float16, 1e-3}, {tensor.BFloat16, 8e-3}} {
		t.Run(c.dt.String(), attntest.Numerics{Executor: fallback.NewExecutor(), DType: c.dt, Tol: c.tol}.Run)
	}
}

// The engine, strict so that cpuflash (not the reference behind it) answers, keeps them in
// float32.
func TestNumericsEngine(t *testing.T) {
	attntest.Numerics{Executor: engine(t, true), DType: tensor.Float32, Tol: 2e-4}.Run(t)
}

// D10 follows from D2: a layer whose weights would need 2^64 bytes is refused when it is
// built, instead of wrapping to 0-byte storage that the optimizer then overruns.
func TestHugeLayerRefused(t *testing.T) {
	m, err := layer.New(layer.Params{Dim: 1 << 31, Heads: 1 << 31}, engine(t, false))
	require.Error(t, err)
	require.Nil(t, m)
}
