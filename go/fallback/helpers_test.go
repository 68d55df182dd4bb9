package fallback_test

import (
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// The suite's problems, tensors and comparisons come from the shared package attntest;
// these short names keep the tests readable.
type (
	sizes       = attntest.Sizes
	problemCase = attntest.Case
	inputState  = attntest.InputState
)

func noOptions(r *rand.Rand, sz sizes) spec.Options { return attntest.NoOptions(r, sz) }

func fixedOpts(o spec.Options) func(*rand.Rand, sizes) spec.Options { return attntest.Fixed(o) }

func boolMask(r *rand.Rand, sz sizes, bm, hm int, keep float64, hide ...int) *spec.Mask {
	return attntest.BoolMask(r, sz, bm, hm, keep, hide...)
}

func biasMask(r *rand.Rand, sz sizes, bm, hm int, ninf float64, hide ...int) *spec.Mask {
	return attntest.BiasMask(r, sz, bm, hm, ninf, hide...)
}

func optionCases() []problemCase          { return attntest.OptionCases() }
func randomCase(r *rand.Rand) problemCase { return attntest.RandomCase(r) }

func randTensor(t testing.TB, r *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	return attntest.Tensor(t, r, dt, shape...)
}

func buildProblem(t testing.TB, pc problemCase, dt tensor.DType, seed uint64) (*spec.Problem, *tensor.Tensor) {
	t.Helper()
	return attntest.Build(t, pc, dt, seed)
}

func takeInputState(p *spec.Problem, more ...*tensor.Tensor) inputState {
	return attntest.TakeInputState(p, more...)
}

func assertClose(t *testing.T, want, got []float64, tol float64, what string) {
	t.Helper()
	attntest.AssertClose(t, want, got, tol, what)
}

func f64s(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	return attntest.Values(t, x)
}
