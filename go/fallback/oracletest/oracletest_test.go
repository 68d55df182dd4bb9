package oracletest_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback/oracletest"
	"github.com/orchard-ml/orchard/go/tensor"
)

func TestRelL2(t *testing.T) {
	inf := math.Inf(1)
	ninf := math.Inf(-1)
	tests := []struct {
		name      string
		got, want []float64
		expect    float64
	}{
		{"equal", []float64{1, 2, 3}, []float64{1, 2, 3}, 0},
		{"relative", []float64{3, 4.5}, []float64{3, 4}, 0.1},
		{"zero want gives absolute error", []float64{3, 4}, []float64{0, 0}, 5},
		{"matching -Inf are equal", []float64{ninf, 2}, []float64{ninf, 2}, 0},
		{"matching -Inf ignored in the norm", []float64{ninf, 4.4}, []float64{ninf, 4}, 0.1},
		{"-Inf only in got", []float64{ninf, 2}, []float64{1, 2}, inf},
		{"-Inf only in want", []float64{1, 2}, []float64{ninf, 2}, inf},
		{"opposite infinities", []float64{inf}, []float64{ninf}, inf},
		{"NaN in got", []float64{math.NaN()}, []float64{1}, inf},
		{"NaN in want", []float64{1}, []float64{math.NaN()}, inf},
		{"length mismatch", []float64{1}, []float64{1, 2}, inf},
		{"empty", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.expect, oracletest.RelL2(tc.got, tc.want), 1e-15)
		})
	}
}

func TestDataDirExists(t *testing.T) {
	fi, err := os.Stat(oracletest.DataDir())
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
}

func loadAll(t *testing.T) []oracletest.Case {
	t.Helper()
	cases, err := oracletest.Load(oracletest.DataDir())
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), oracletest.MinCases)
	return cases
}

func TestLoadGivesValidatedFloat64Problems(t *testing.T) {
	for _, c := range loadAll(t) {
		t.Run(c.Name, func(t *testing.T) {
			p := c.Problem
			require.NotNil(t, p)
			require.NoError(t, spec.Validate(p))
			assert.Equal(t, c.Dims, p.Dims())
			for _, x := range []*tensor.Tensor{p.Q, p.K, p.V, c.DO} {
				assert.Equal(t, tensor.Float64, x.DType())
			}
			d := c.Dims
			assert.Len(t, c.O, d.B*d.H*d.N*d.D)
			assert.Len(t, c.L, d.B*d.H*d.N)
			assert.Len(t, c.DQ, d.B*d.H*d.N*d.D)
			assert.Len(t, c.DK, d.B*d.Hkv*d.M*d.D)
			assert.Len(t, c.DV, d.B*d.Hkv*d.M*d.D)
			assert.Equal(t, p.Dropout.P > 0, c.Keep != nil, "keep decisions exactly for dropout cases")
			assert.NotEmpty(t, c.About)
		})
	}
}

// The script's visibility rules, counted as rows with no visible key, agree with the
// contract's own KeyRange/Visible/Bias.
func TestMaskedRowsAgreeWithSpecVisibility(t *testing.T) {
	for _, c := range loadAll(t) {
		t.Run(c.Name, func(t *testing.T) {
			p, d := c.Problem, c.Dims
			dead := 0
			for b := 0; b < d.B; b++ {
				for h := 0; h < d.H; h++ {
					for i := 0; i < d.N; i++ {
						any := false
						for j := 0; j < d.M && !any; j++ {
							any = p.Visible(b, h, i, j) && !math.IsInf(p.Bias(b, h, i, j), -1)
						}
						if !any {
							dead++
						}
						isInf := math.IsInf(c.L[(b*d.H+h)*d.N+i], -1)
						assert.Equal(t, !any, isInf, "row b=%d h=%d i=%d", b, h, i)
					}
				}
			}
			assert.Equal(t, c.MaskedRows, dead)
		})
	}
}

// The script's Philox, written independently in numpy, drops the same elements as
// package philox.
func TestKeepMatchesPhilox(t *testing.T) {
	n := 0
	for _, c := range loadAll(t) {
		if c.Keep == nil {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			d := c.Dims
			s := c.Problem.DropoutStream()
			dropped := 0
			for b := 0; b < d.B; b++ {
				for h := 0; h < d.H; h++ {
					for i := 0; i < d.N; i++ {
						row := philox.Row(b, h, i, d.H, d.N)
						for j := 0; j < d.M; j++ {
							want := c.Keep[((b*d.H+h)*d.N+i)*d.M+j]
							require.Equal(t, want, s.Keep(row, j), "element b=%d h=%d i=%d j=%d", b, h, i, j)
							if !want {
								dropped++
							}
						}
					}
				}
			}
			// The drop rate is near p (loose: a few hundred elements).
			rate := float64(dropped) / float64(len(c.Keep))
			assert.InDelta(t, c.Problem.Dropout.P, rate, 0.1)
		})
	}
	assert.GreaterOrEqual(t, n, 4, "dropout cases")
}

func TestProblemAsIsLossless(t *testing.T) {
	cases := loadAll(t)
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
		for _, c := range cases {
			t.Run(dt.String()+"/"+c.Name, func(t *testing.T) {
				p, dO, err := c.ProblemAs(dt)
				require.NoError(t, err)
				require.NoError(t, spec.Validate(p))
				pairs := []struct{ got, want *tensor.Tensor }{
					{p.Q, c.Problem.Q}, {p.K, c.Problem.K}, {p.V, c.Problem.V}, {dO, c.DO},
				}
				for _, pr := range pairs {
					assert.Equal(t, dt, pr.got.DType())
					got, err := pr.got.ToFloat64s()
					require.NoError(t, err)
					want, err := pr.want.ToFloat64s()
					require.NoError(t, err)
					assert.Equal(t, want, got)
				}
				assert.Equal(t, c.Problem.Options.Scale, p.Scale)
				assert.Equal(t, c.Problem.Causal, p.Causal)
				assert.Equal(t, c.Problem.Dropout, p.Dropout)
				assert.Equal(t, c.Problem.Window, p.Window)
				assert.Equal(t, c.Problem.Mask, p.Mask)
				assert.Equal(t, c.Problem.SeqLensQ, p.SeqLensQ)
			})
		}
	}
}

func TestProblemAsCopiesOptions(t *testing.T) {
	var c *oracletest.Case
	cases := loadAll(t)
	for i := range cases {
		x := &cases[i]
		if x.Problem.Mask != nil && x.Problem.Window != nil && x.Problem.SeqLensQ != nil {
			c = x
			break
		}
	}
	require.NotNil(t, c, "a case with mask, window and lengths")
	p, _, err := c.ProblemAs(tensor.Float32)
	require.NoError(t, err)
	require.NotSame(t, c.Problem.Mask, p.Mask)
	require.NotSame(t, c.Problem.Window, p.Window)
	before := c.Problem.SeqLensQ[0]
	p.SeqLensQ[0]++
	p.Window.Left++
	assert.Equal(t, before, c.Problem.SeqLensQ[0])
	assert.NotEqual(t, p.Window.Left, c.Problem.Window.Left)
}

func TestProblemAsWithoutProblem(t *testing.T) {
	var c oracletest.Case
	_, _, err := c.ProblemAs(tensor.Float32)
	assert.Error(t, err)
}

// copyCase copies one case directory into a fresh temporary data directory. It copies
// bytes, not directory entries: under Bazel the data files are symlinks into the source
// tree, which os.CopyFS would copy as symlinks, so the subtests' writes would go through
// them into the committed vectors (or fail in a read-only sandbox).
func copyCase(t *testing.T, name string) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	dir = filepath.Join(root, name)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	src := filepath.Join(oracletest.DataDir(), name)
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name())) // follows a symlink
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.True(t, fi.Mode().IsRegular(), "copy of %s is a regular file", e.Name())
	}
	return root, dir
}

func TestLoadRejectsBrokenData(t *testing.T) {
	const name = "combo_d59_everything" // has a mask, lengths and dropout
	tests := []struct {
		name   string
		breakf func(t *testing.T, dir string)
		errHas string
	}{
		{"truncated array", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "dq.npy")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b[:len(b)-8], 0o644))
		}, "dq.npy"},
		{"missing output", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "dv.npy")))
		}, "dv.npy"},
		{"wrong dtype", func(t *testing.T, dir string) {
			// The mask is float32; put a float64 array in its place.
			b, err := os.ReadFile(filepath.Join(dir, "lse.npy"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "mask.npy"), b, 0o644))
		}, "mask.npy"},
		{"wrong shape", func(t *testing.T, dir string) {
			// q and dk have different shapes in this GQA case.
			b, err := os.ReadFile(filepath.Join(dir, "dk.npy"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "q.npy"), b, 0o644))
		}, "q.npy"},
		{"lengths disagree", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "seqlens_k.npy"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "seqlens_q.npy"), b, 0o644))
		}, "seqlens_q"},
		{"bad json", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "case.json"), []byte("{"), 0o644))
		}, "case.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, dir := copyCase(t, name)
			_, err := oracletest.Load(root)
			require.NoError(t, err, "the untouched copy loads")
			tc.breakf(t, dir)
			_, err = oracletest.Load(root)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errHas)
			assert.Contains(t, err.Error(), name)
		})
	}
}

func TestLoadRejectsEmptyOrMissingDir(t *testing.T) {
	_, err := oracletest.Load(t.TempDir())
	assert.ErrorContains(t, err, "no case directories")
	_, err = oracletest.Load(filepath.Join(t.TempDir(), "absent"))
	assert.Error(t, err)
}
