package fallback_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/fallback/oracletest"
	"github.com/orchard-ml/orchard/go/tensor"
)

// oracleTol is the relative L2 error allowed between the reference and PyTorch float64
// autograd. Both accumulate in float64; the observed errors are around 1e-16.
const oracleTol = 1e-10

// TestOracle holds the reference against the external oracle (tools/oracle): every case,
// forward (O, L) and backward (dQ, dK, dV), in float64.
func TestOracle(t *testing.T) {
	cases, err := oracletest.Load(oracletest.DataDir())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), oracletest.MinCases, "oracle cases found in %s", oracletest.DataDir())

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p := c.Problem
			before := snapshot(t, p.Q, p.K, p.V, c.DO)

			s, err := fallback.Forward(p)
			require.NoError(t, err)
			require.NotNil(t, s)
			assert.Equal(t, tensor.Float64, s.O.DType())
			assert.Equal(t, tensor.Float64, s.L.DType())
			o := values(t, s.O)
			l := values(t, s.L)
			errO, errL := oracletest.RelL2(o, c.O), oracletest.RelL2(l, c.L)
			assert.LessOrEqual(t, errO, oracleTol, "O")
			assert.LessOrEqual(t, errL, oracleTol, "L")
			for i, want := range c.L {
				if math.IsInf(want, -1) || math.IsInf(l[i], -1) {
					assert.Equal(t, want, l[i], "L[%d]: −Inf exactly where the oracle has it", i)
				}
			}

			g, err := fallback.Backward(p, s, c.DO)
			require.NoError(t, err)
			require.NotNil(t, g)
			errDQ := oracletest.RelL2(values(t, g.DQ), c.DQ)
			errDK := oracletest.RelL2(values(t, g.DK), c.DK)
			errDV := oracletest.RelL2(values(t, g.DV), c.DV)
			assert.LessOrEqual(t, errDQ, oracleTol, "dQ")
			assert.LessOrEqual(t, errDK, oracleTol, "dK")
			assert.LessOrEqual(t, errDV, oracleTol, "dV")
			t.Logf("relative L2 error: O %.1e  L %.1e  dQ %.1e  dK %.1e  dV %.1e", errO, errL, errDQ, errDK, errDV)

			assert.Equal(t, before, snapshot(t, p.Q, p.K, p.V, c.DO), "inputs unchanged")
		})
	}
}

// TestOracleMaskedRowsAreExactZeros checks the contract for rows with no visible key
// beyond the L2 measure: O and dQ are exactly zero there, not merely small.
func TestOracleMaskedRowsAreExactZeros(t *testing.T) {
	cases, err := oracletest.Load(oracletest.DataDir())
	require.NoError(t, err)
	withMasked := 0
	for _, c := range cases {
		if c.MaskedRows == 0 {
			continue
		}
		withMasked++
		t.Run(c.Name, func(t *testing.T) {
			s, err := fallback.Forward(c.Problem)
			require.NoError(t, err)
			g, err := fallback.Backward(c.Problem, s, c.DO)
			require.NoError(t, err)
			o, dq := values(t, s.O), values(t, g.DQ)
			D := c.Dims.D
			for r, want := range c.L {
				if !math.IsInf(want, -1) {
					continue
				}
				for x := r * D; x < (r+1)*D; x++ {
					require.Zero(t, o[x], "O row %d", r)
					require.Zero(t, dq[x], "dQ row %d", r)
				}
			}
		})
	}
	assert.GreaterOrEqual(t, withMasked, 8, "cases with fully masked rows")
}

func values(t *testing.T, x *tensor.Tensor) []float64 {
	t.Helper()
	require.NotNil(t, x)
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}

func snapshot(t *testing.T, xs ...*tensor.Tensor) [][]float64 {
	t.Helper()
	out := make([][]float64, len(xs))
	for i, x := range xs {
		out[i] = values(t, x)
	}
	return out
}
