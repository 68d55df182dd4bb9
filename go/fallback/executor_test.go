package fallback_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

func TestExecutorIdentity(t *testing.T) {
	var ex spec.Executor = fallback.NewExecutor()
	assert.Equal(t, "reference", ex.Name())
	assert.Equal(t, 0, ex.Priority())
}

// Supports accepts every valid problem in every dtype (float64 included), whatever its
// options, when the CPU can read the tensors.
func TestExecutorSupportsEveryValidProblem(t *testing.T) {
	ex := fallback.NewExecutor()
	for k, pc := range optionCases() {
		for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32, tensor.Float16, tensor.BFloat16} {
			p, _ := buildProblem(t, pc, dt, uint64(k))
			assert.NoError(t, ex.Supports(p), "%s %v", pc.Name, dt)
		}
	}
}

// Shared (unified, host-visible) device memory is read in place.
func TestExecutorReadsSharedStorage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	host := randTensor(t, r, tensor.Float32, 1, 2, 3, 4)
	st := sharedStorage{bytes.Clone(host.Storage().Bytes())}
	q, err := tensor.FromStorage(st, tensor.Float32, host.Shape(), host.Strides(), 0)
	require.NoError(t, err)
	k, v := randTensor(t, r, tensor.Float32, 1, 1, 5, 4), randTensor(t, r, tensor.Float32, 1, 1, 5, 4)
	ex := fallback.NewExecutor()
	shared := &spec.Problem{Q: q, K: k, V: v}
	require.NoError(t, ex.Supports(shared))
	s1, err := ex.Forward(context.Background(), shared, nil)
	require.NoError(t, err)
	s2, err := ex.Forward(context.Background(), &spec.Problem{Q: host, K: k, V: v}, nil)
	require.NoError(t, err)
	assert.Equal(t, s2.O.Storage().Bytes(), s1.O.Storage().Bytes())
}

// The executor's methods are the package functions: same bits.
func TestExecutorMatchesFunctions(t *testing.T) {
	pc := optionCases()[len(optionCases())-1]
	p, dO := buildProblem(t, pc, tensor.Float32, 12)
	ex := fallback.NewExecutor()
	s1, err := ex.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	g1, err := ex.Backward(context.Background(), p, s1, dO, nil)
	require.NoError(t, err)
	s2, g2 := runBoth(t, p, dO)
	for i, pair := range [][2]*tensor.Tensor{{s1.O, s2.O}, {s1.L, s2.L}, {g1.DQ, g2.DQ}, {g1.DK, g2.DK}, {g1.DV, g2.DV}} {
		assert.Equal(t, pair[1].Storage().Bytes(), pair[0].Storage().Bytes(), "output %d", i)
	}
}

// sharedStorage stands for Metal shared memory: device memory the CPU reads directly.
type sharedStorage struct{ b []byte }

func (sharedStorage) Kind() tensor.StorageKind { return tensor.Shared }
func (s sharedStorage) Len() int               { return len(s.b) }
func (s sharedStorage) Bytes() []byte          { return s.b }
