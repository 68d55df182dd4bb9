package cpuflash

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/fallback/oracletest"
	"github.com/orchard-ml/orchard/go/tensor"
)

// TestOracle holds the executor against PyTorch's float64 autograd vectors
// (tools/oracle): every case in float32, float16 and bfloat16, whose inputs the script
// chose to be exact in all three, with the tolerances of the random suites. The small
// blocks make the oracle's lengths span several of them.
func TestOracle(t *testing.T) {
	cases, err := oracletest.Load(oracletest.DataDir())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), oracletest.MinCases, "oracle cases found in %s", oracletest.DataDir())
	e := New(Params{BlockQ: 48, BlockK: 48})
	worst := map[tensor.DType]errs{}
	defer func() {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
			t.Logf("%v: %d cases, worst relative L2: %v", dt, len(cases), worst[dt])
		}
	}()
	for _, c := range cases {
		for _, dc := range []struct {
			dt        tensor.DType
			out, grad float64
		}{{tensor.Float32, tolOut32, tolGrad32}, {tensor.Float16, tolF16, tolF16}, {tensor.BFloat16, tolBF16, tolBF16}} {
			t.Run(fmt.Sprintf("%s/%v", c.Name, dc.dt), func(t *testing.T) {
				p, dO, err := c.ProblemAs(dc.dt)
				require.NoError(t, err)
				s, err := e.Forward(context.Background(), p, nil)
				require.NoError(t, err)
				g, err := e.Backward(context.Background(), p, s, dO, nil)
				require.NoError(t, err)
				l := attntest.Values(t, s.L)
				for i, want := range c.L {
					if math.IsInf(want, -1) || math.IsInf(l[i], -1) {
						require.Equal(t, want, l[i], "L[%d]: −Inf exactly where the oracle has it", i)
					}
				}
				var r errs
				r.O = oracletest.RelL2(attntest.Values(t, s.O), c.O)
				r.L = oracletest.RelL2(l, c.L)
				r.DQ, _ = relL2Floor(attntest.Values(t, g.DQ), c.DQ, 1e-2*gradMagnitude(t, p, dO, p.K))
				r.DK, _ = relL2Floor(attntest.Values(t, g.DK), c.DK, 1e-2*gradMagnitude(t, p, dO, p.Q))
				r.DV = oracletest.RelL2(attntest.Values(t, g.DV), c.DV)
				assertWithin(t, r, dc.out, dc.grad, c.About)
				worst[dc.dt] = worst[dc.dt].max(r)
			})
		}
	}
}
