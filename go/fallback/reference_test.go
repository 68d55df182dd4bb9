package fallback_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Both formulations accumulate in float64 in different orders; on inputs of unit scale
// they agree to a few ulps. 1e-12 relative (1e-12 absolute below 1) leaves a margin of
// about 1000 ulps and still catches any real difference in the math.
const naiveTol = 1e-12

// runBoth runs Forward then Backward, failing the test on an error.
func runBoth(t *testing.T, p *spec.Problem, dO *tensor.Tensor) (*spec.Saved, *spec.Grads) {
	t.Helper()
	s, err := fallback.Forward(p)
	require.NoError(t, err)
	g, err := fallback.Backward(p, s, dO)
	require.NoError(t, err)
	return s, g
}

// checkAgainstNaive compares the reference with the naive formulation on p.
func checkAgainstNaive(t *testing.T, p *spec.Problem, dO *tensor.Tensor) {
	t.Helper()
	s, g := runBoth(t, p, dO)
	want := naiveAttention(p, dO)
	assertClose(t, want.O, f64s(t, s.O), naiveTol, "O")
	assertClose(t, want.L, f64s(t, s.L), naiveTol, "L")
	assertClose(t, want.DQ, f64s(t, g.DQ), naiveTol, "dQ")
	assertClose(t, want.DK, f64s(t, g.DK), naiveTol, "dK")
	assertClose(t, want.DV, f64s(t, g.DV), naiveTol, "dV")
}

func TestMatchesNaiveOnEveryOption(t *testing.T) {
	for k, pc := range optionCases() {
		t.Run(pc.Name, func(t *testing.T) {
			p, dO := buildProblem(t, pc, tensor.Float64, uint64(100+k))
			checkAgainstNaive(t, p, dO)
		})
	}
}

func TestMatchesNaiveOnRandomProblems(t *testing.T) {
	r := rand.New(rand.NewPCG(2024, 1))
	for k := range 60 {
		pc := randomCase(r)
		p, dO := buildProblem(t, pc, tensor.Float64, uint64(k))
		if !t.Run("", func(t *testing.T) { checkAgainstNaive(t, p, dO) }) {
			t.Logf("case %d: sizes %+v options %+v", k, pc.Sizes, p.Options)
		}
	}
}

// Rows with no visible key, for each way a row can lose every key, come out as O = 0,
// L = −Inf and zero dQ; keys nobody sees get zero dK, dV; nothing is NaN.
func TestFullyMaskedRows(t *testing.T) {
	sq := sizes{B: 2, H: 2, Hkv: 1, N: 5, M: 4, D: 3}
	cases := []struct {
		name   string
		opts   func(r *rand.Rand, sz sizes) spec.Options
		hidden func(b, h, i int) bool // rows that must come out masked
	}{
		{"bool mask rows 1 and 3", func(r *rand.Rand, sz sizes) spec.Options {
			return spec.Options{Mask: boolMask(r, sz, 1, 1, 1, 1, 3)}
		}, func(b, h, i int) bool { return i == 1 || i == 3 }},
		{"additive −Inf row 0", func(r *rand.Rand, sz sizes) spec.Options {
			return spec.Options{Mask: biasMask(r, sz, sz.B, sz.H, 0, 0)}
		}, func(b, h, i int) bool { return i == 0 }},
		{"bottom-right N > M", fixedOpts(spec.Options{Causal: spec.CausalBottomRight}),
			func(b, h, i int) bool { return i < 1 }}, // d(i) = i − 1
		{"SeqLensQ", fixedOpts(spec.Options{SeqLensQ: []int{2, 0}}),
			func(b, h, i int) bool { return b == 1 || i >= 2 }},
		{"SeqLensK zero", fixedOpts(spec.Options{SeqLensK: []int{4, 0}}),
			func(b, h, i int) bool { return b == 1 }},
		{"window past the keys", fixedOpts(spec.Options{Window: &spec.Window{Left: 0, Right: 0}}),
			func(b, h, i int) bool { return i == 4 }}, // d(4) = 4 ≥ M
		{"everything, with dropout and softcap", func(r *rand.Rand, sz sizes) spec.Options {
			return spec.Options{Softcap: 1, Dropout: spec.Dropout{P: 0.4, Seed: 1}, Mask: boolMask(r, sz, 1, 1, 0)}
		}, func(b, h, i int) bool { return true }},
	}
	for k, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, dO := buildProblem(t, problemCase{Name: c.name, Sizes: sq, Opts: c.opts}, tensor.Float64, uint64(k))
			s, g := runBoth(t, p, dO)
			o, l, dq := f64s(t, s.O), f64s(t, s.L), f64s(t, g.DQ)
			masked := 0
			for b := 0; b < sq.B; b++ {
				for h := 0; h < sq.H; h++ {
					for i := 0; i < sq.N; i++ {
						r := (b*sq.H+h)*sq.N + i
						if !c.hidden(b, h, i) {
							assert.False(t, math.IsInf(l[r], 0), "row %d should see a key", r)
							continue
						}
						masked++
						assert.True(t, math.IsInf(l[r], -1), "L of masked row %d is %v", r, l[r])
						assert.Equal(t, make([]float64, sq.D), o[r*sq.D:][:sq.D], "O of masked row %d", r)
						assert.Equal(t, make([]float64, sq.D), dq[r*sq.D:][:sq.D], "dQ of masked row %d", r)
					}
				}
			}
			require.Positive(t, masked)
			for _, x := range [][]float64{o, dq, f64s(t, g.DK), f64s(t, g.DV)} {
				for _, v := range x {
					require.False(t, math.IsNaN(v) || math.IsInf(v, 0))
				}
			}
			checkAgainstNaive(t, p, dO)
		})
	}
}

// Keys past SeqLensK, rows past SeqLensQ: zero gradients, exactly.
func TestVarlenPaddingGetsZeroGradients(t *testing.T) {
	sz := sizes{B: 2, H: 2, Hkv: 2, N: 6, M: 5, D: 4}
	p, dO := buildProblem(t, problemCase{Name: "varlen", Sizes: sz, Opts: fixedOpts(spec.Options{SeqLensQ: []int{4, 6}, SeqLensK: []int{5, 2}})}, tensor.Float64, 3)
	s, g := runBoth(t, p, dO)
	o, dq, dk, dv := f64s(t, s.O), f64s(t, g.DQ), f64s(t, g.DK), f64s(t, g.DV)
	for b := range sz.B {
		for h := range sz.H {
			for i := p.SeqLensQ[b]; i < sz.N; i++ {
				r := ((b*sz.H+h)*sz.N + i) * sz.D
				assert.Equal(t, make([]float64, sz.D), o[r:r+sz.D])
				assert.Equal(t, make([]float64, sz.D), dq[r:r+sz.D])
			}
		}
		for h := range sz.Hkv {
			for j := range sz.M {
				r := ((b*sz.Hkv+h)*sz.M + j) * sz.D
				if j >= p.SeqLensK[b] {
					assert.Equal(t, make([]float64, sz.D), dk[r:r+sz.D], "dK b=%d h=%d j=%d", b, h, j)
					assert.Equal(t, make([]float64, sz.D), dv[r:r+sz.D], "dV b=%d h=%d j=%d", b, h, j)
				} else {
					assert.NotEqual(t, make([]float64, sz.D), dv[r:r+sz.D], "dV of a visible key")
				}
			}
		}
	}
}

// GQA: dK and dV of a key/value head are the sums over the query heads of its group. The
// same problem with K and V repeated per query head (plain MHA) gives the per-head
// gradients, which must add up to the GQA ones.
func TestGQAGradientsSumOverGroup(t *testing.T) {
	sz := sizes{B: 1, H: 6, Hkv: 2, N: 4, M: 5, D: 3}
	p, dO := buildProblem(t, problemCase{Name: "gqa", Sizes: sz, Opts: fixedOpts(spec.Options{Causal: spec.CausalTopLeft})}, tensor.Float64, 9)
	_, g := runBoth(t, p, dO)

	k, v := f64s(t, p.K), f64s(t, p.V)
	group := sz.H / sz.Hkv
	rep := func(x []float64) *tensor.Tensor {
		out := make([]float64, 0, sz.H*sz.M*sz.D)
		for h := range sz.H {
			kv := h / group
			out = append(out, x[kv*sz.M*sz.D:(kv+1)*sz.M*sz.D]...)
		}
		r, err := tensor.FromFloat64s(tensor.Float64, out, 1, sz.H, sz.M, sz.D)
		require.NoError(t, err)
		return r
	}
	mha := *p
	mha.K, mha.V = rep(k), rep(v)
	sm, gm := runBoth(t, &mha, dO)
	s, err := fallback.Forward(p)
	require.NoError(t, err)
	assert.Equal(t, f64s(t, s.O), f64s(t, sm.O), "repeating K and V per head must not change O")

	dkm, dvm := f64s(t, gm.DK), f64s(t, gm.DV)
	sum := func(x []float64) []float64 {
		out := make([]float64, sz.Hkv*sz.M*sz.D)
		for h := range sz.H {
			kv := h / group
			for e := range sz.M * sz.D {
				out[kv*sz.M*sz.D+e] += x[h*sz.M*sz.D+e]
			}
		}
		return out
	}
	assertClose(t, sum(dkm), f64s(t, g.DK), naiveTol, "dK")
	assertClose(t, sum(dvm), f64s(t, g.DV), naiveTol, "dV")
	assertClose(t, f64s(t, gm.DQ), f64s(t, g.DQ), naiveTol, "dQ")
}

// Half- and single-precision inputs are accepted; the outputs are the float64 result on
// the same (rounded) input values, rounded once to Q's dtype. L is float64 (D6), so the
// gradients too are the float64 result rounded once: within an ulp of the dtype (the naive
// formulation sums in another order, which can move a value across a rounding boundary).
func TestLowPrecisionInputs(t *testing.T) {
	pc := optionCases()[len(optionCases())-1] // everything together
	for _, c := range []struct {
		dt  tensor.DType
		tol float64 // for gradients: one ulp of the dtype (relative)
	}{
		{tensor.Float32, 0x1p-23},
		{tensor.Float16, 1e-3},
		{tensor.BFloat16, 8e-3},
	} {
		t.Run(c.dt.String(), func(t *testing.T) {
			p, dO := buildProblem(t, pc, c.dt, 77)
			s, g := runBoth(t, p, dO)
			assert.Equal(t, c.dt, s.O.DType())
			assert.Equal(t, tensor.Float64, s.L.DType())
			for _, x := range []*tensor.Tensor{g.DQ, g.DK, g.DV} {
				assert.Equal(t, c.dt, x.DType())
				assert.True(t, x.IsContiguous())
			}
			want := naiveAttention(p, dO)
			rounded := func(v []float64, dt tensor.DType, shape ...int) []float64 {
				x, err := tensor.FromFloat64s(dt, v, shape...)
				require.NoError(t, err)
				return f64s(t, x)
			}
			// O and L are rounded once from float64: equal to the naive result rounded.
			assert.Equal(t, rounded(want.O, c.dt, s.O.Shape()...), f64s(t, s.O))
			assertClose(t, want.L, f64s(t, s.L), naiveTol, "L")
			assertClose(t, want.DQ, f64s(t, g.DQ), c.tol, "dQ")
			assertClose(t, want.DK, f64s(t, g.DK), c.tol, "dK")
			assertClose(t, want.DV, f64s(t, g.DV), c.tol, "dV")
		})
	}
}

// Strided views (transposed, sliced with an offset) give the same bits as contiguous
// copies of the same values.
func TestStridedInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const B, H, Hkv, N, M, D = 2, 4, 2, 5, 6, 3
	qt := randTensor(t, r, tensor.Float32, B, N, H, D) // stored [B, N, H, D]
	q, err := qt.Transpose(1, 2)
	require.NoError(t, err)
	kbig := randTensor(t, r, tensor.Float32, B, Hkv, M+3, D)
	k, err := kbig.Slice(2, 2, 2+M) // offset view
	require.NoError(t, err)
	vt := randTensor(t, r, tensor.Float32, D, B, Hkv, M) // stored [D, B, Hkv, M]
	v, err := vt.Permute(1, 2, 3, 0)
	require.NoError(t, err)
	dot := randTensor(t, r, tensor.Float32, N, B, H, D)
	dO, err := dot.Permute(1, 2, 0, 3)
	require.NoError(t, err)
	for _, x := range []*tensor.Tensor{q, k, v, dO} {
		require.False(t, x.IsContiguous() && x.Offset() == 0, "the test needs views")
	}

	opts := spec.Options{Causal: spec.CausalTopLeft, Softcap: 2, Dropout: spec.Dropout{P: 0.25, Seed: 3}}
	strided := &spec.Problem{Q: q, K: k, V: v, Options: opts}
	clone := func(x *tensor.Tensor) *tensor.Tensor {
		c, err := x.Clone()
		require.NoError(t, err)
		return c
	}
	dense := &spec.Problem{Q: clone(q), K: clone(k), V: clone(v), Options: opts}
	s1, g1 := runBoth(t, strided, dO)
	s2, g2 := runBoth(t, dense, clone(dO))
	for i, pair := range [][2]*tensor.Tensor{{s1.O, s2.O}, {s1.L, s2.L}, {g1.DQ, g2.DQ}, {g1.DK, g2.DK}, {g1.DV, g2.DV}} {
		assert.True(t, bytes.Equal(pair[0].Storage().Bytes(), pair[1].Storage().Bytes()), "output %d differs", i)
	}
}

// Same inputs, same bits; and no input (tensor, mask, lengths, saved state) changes.
func TestDeterministicAndInputsUntouched(t *testing.T) {
	for k, pc := range optionCases() {
		t.Run(pc.Name, func(t *testing.T) {
			p, dO := buildProblem(t, pc, tensor.Float32, uint64(k))
			before := takeInputState(p, dO)
			s1, g1 := runBoth(t, p, dO)
			savedBefore := takeInputState(p, dO, s1.O, s1.L)
			s2, err := fallback.Forward(p)
			require.NoError(t, err)
			g2, err := fallback.Backward(p, s1, dO)
			require.NoError(t, err)
			assert.Equal(t, before, takeInputState(p, dO), "inputs changed")
			assert.Equal(t, savedBefore, takeInputState(p, dO, s1.O, s1.L), "saved state changed")
			for i, pair := range [][2]*tensor.Tensor{{s1.O, s2.O}, {s1.L, s2.L}, {g1.DQ, g2.DQ}, {g1.DK, g2.DK}, {g1.DV, g2.DV}} {
				assert.True(t, bytes.Equal(pair[0].Storage().Bytes(), pair[1].Storage().Bytes()), "output %d differs between runs", i)
			}
		})
	}
}

// Backward reads the saved L. A row whose L is −Inf gets zero gradients even if its keys
// are visible (robustness for a caller's saved state), and non-finite values that are
// not a logsumexp are rejected with a typed error.
func TestBackwardUsesSavedL(t *testing.T) {
	pc := problemCase{Name: "plain", Sizes: sizes{B: 1, H: 2, Hkv: 1, N: 4, M: 5, D: 3}, Opts: noOptions}
	p, dO := buildProblem(t, pc, tensor.Float64, 8)
	s, g := runBoth(t, p, dO)
	l := f64s(t, s.L)

	t.Run("−Inf row", func(t *testing.T) {
		l2 := append([]float64(nil), l...)
		l2[2] = math.Inf(-1)
		lt, err := tensor.FromFloat64s(tensor.Float64, l2, 1, 2, 4)
		require.NoError(t, err)
		g2, err := fallback.Backward(p, &spec.Saved{O: s.O, L: lt}, dO)
		require.NoError(t, err)
		dq, dq2 := f64s(t, g.DQ), f64s(t, g2.DQ)
		assert.Equal(t, []float64{0, 0, 0}, dq2[6:9], "row 2 has no gradient")
		assert.NotEqual(t, dq[6:9], dq2[6:9])
		assert.Equal(t, dq[:6], dq2[:6], "other rows are unchanged")
		for _, v := range f64s(t, g2.DK) {
			assert.False(t, math.IsNaN(v))
		}
	})
	t.Run("shifted L scales P", func(t *testing.T) {
		// P = exp(s − L): adding log 2 to every L halves every P, hence dV.
		l2 := append([]float64(nil), l...)
		for i := range l2 {
			l2[i] += math.Ln2
		}
		lt, err := tensor.FromFloat64s(tensor.Float64, l2, 1, 2, 4)
		require.NoError(t, err)
		g2, err := fallback.Backward(p, &spec.Saved{O: s.O, L: lt}, dO)
		require.NoError(t, err)
		dv, dv2 := f64s(t, g.DV), f64s(t, g2.DV)
		for i := range dv {
			assert.InDelta(t, dv[i]/2, dv2[i], 1e-14)
		}
	})
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		t.Run(fmt.Sprint("L holds ", bad), func(t *testing.T) {
			l2 := append([]float64(nil), l...)
			l2[5] = bad
			lt, err := tensor.FromFloat64s(tensor.Float64, l2, 1, 2, 4)
			require.NoError(t, err)
			g2, err := fallback.Backward(p, &spec.Saved{O: s.O, L: lt}, dO)
			assert.Nil(t, g2)
			require.ErrorIs(t, err, spec.ErrInvalid)
			var ae *spec.ArgError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, "Saved.L", ae.Arg)
		})
	}
}

// A few exact values worked by hand.
func TestHandWorkedValues(t *testing.T) {
	// One head, D = 1, two keys with equal logits: P = (1/2, 1/2), O = mean of V,
	// L = s + log 2.
	mk := func(v []float64, shape ...int) *tensor.Tensor {
		x, err := tensor.FromFloat64s(tensor.Float64, v, shape...)
		require.NoError(t, err)
		return x
	}
	p := &spec.Problem{Q: mk([]float64{2}, 1, 1, 1, 1), K: mk([]float64{3, 3}, 1, 1, 2, 1), V: mk([]float64{1, 5}, 1, 1, 2, 1)}
	s, err := fallback.Forward(p)
	require.NoError(t, err)
	assert.Equal(t, []float64{3}, f64s(t, s.O))
	assert.InDelta(t, 6+math.Ln2, f64s(t, s.L)[0], 1e-15) // scale 1/sqrt(1) = 1, s = 2·3

	// dO = 1: dV = P = (1/2, 1/2); dP_j = v_j, D = O = 3, dS = P(v − 3) = (−1, 1);
	// dQ = Σ dS_j k_j = 0 (equal keys); dK_j = dS_j q = (−2, 2).
	g, err := fallback.Backward(p, s, mk([]float64{1}, 1, 1, 1, 1))
	require.NoError(t, err)
	// (P is recomputed as exp(s − L) from a rounded L: exact to an ulp or two.)
	assert.InDeltaSlice(t, []float64{0.5, 0.5}, f64s(t, g.DV), 1e-15)
	assert.InDeltaSlice(t, []float64{0}, f64s(t, g.DQ), 1e-14)
	assert.InDeltaSlice(t, []float64{-2, 2}, f64s(t, g.DK), 1e-14)

	// Softcap 1 on a logit of 6: s = tanh(6); with one key P = 1 and L = tanh(6).
	p1 := &spec.Problem{Q: mk([]float64{2}, 1, 1, 1, 1), K: mk([]float64{3}, 1, 1, 1, 1), V: mk([]float64{7}, 1, 1, 1, 1), Options: spec.Options{Softcap: 1}}
	s1, err := fallback.Forward(p1)
	require.NoError(t, err)
	assert.Equal(t, []float64{7}, f64s(t, s1.O))
	assert.InDelta(t, math.Tanh(6), f64s(t, s1.L)[0], 1e-15)
}

// Storage the CPU cannot read is declined with ErrUnsupported, not ErrInvalid.
func TestDeviceStorageIsUnsupported(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	k := randTensor(t, r, tensor.Float32, 1, 1, 3, 2)
	v := randTensor(t, r, tensor.Float32, 1, 1, 3, 2)
	q, err := tensor.FromStorage(privateStorage{n: 16}, tensor.Float32, []int{1, 1, 2, 2}, []int{4, 4, 2, 1}, 0)
	require.NoError(t, err)
	p := &spec.Problem{Q: q, K: k, V: v}
	require.NoError(t, spec.Validate(p))

	s, err := fallback.Forward(p)
	assert.Nil(t, s)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.NotErrorIs(t, err, spec.ErrInvalid)
	assert.Contains(t, err.Error(), "Q")

	ex := fallback.NewExecutor()
	assert.ErrorIs(t, ex.Supports(p), spec.ErrUnsupported)

	// Backward with a dO the CPU cannot read.
	hp := &spec.Problem{Q: randTensor(t, r, tensor.Float32, 1, 1, 2, 2), K: k, V: v}
	hs, err := fallback.Forward(hp)
	require.NoError(t, err)
	dO, err := tensor.FromStorage(privateStorage{n: 16}, tensor.Float32, []int{1, 1, 2, 2}, []int{4, 4, 2, 1}, 0)
	require.NoError(t, err)
	g, err := fallback.Backward(hp, hs, dO)
	assert.Nil(t, g)
	assert.ErrorIs(t, err, spec.ErrUnsupported)
	assert.Contains(t, err.Error(), "dO")
}

// privateStorage stands for GPU-only memory: it has a size and no host bytes.
type privateStorage struct{ n int }

func (privateStorage) Kind() tensor.StorageKind { return tensor.Private }
func (s privateStorage) Len() int               { return s.n }
func (privateStorage) Bytes() []byte            { return nil }
