package spec_test

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback/badinput"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Every bad-input row of the contract (the table lives in package badinput, which the
// executors' tests share) gets an *ArgError that wraps ErrInvalid and names the argument,
// forward and backward alike; rules about Saved and dO only backward.
func TestValidateRejectsBadInput(t *testing.T) {
	valid, err := badinput.Valid()
	require.NoError(t, err)
	require.NoError(t, spec.Validate(valid.Problem), "the call every case starts from must be valid")
	require.NoError(t, spec.ValidateBackward(valid.Problem, valid.Saved, valid.DO))

	cases, err := badinput.Cases()
	require.NoError(t, err)
	check := func(t *testing.T, err error, arg string) {
		t.Helper()
		require.Error(t, err)
		assert.ErrorIs(t, err, spec.ErrInvalid)
		assert.NotErrorIs(t, err, spec.ErrUnsupported)
		var ae *spec.ArgError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, arg, ae.Arg)
		assert.NotEmpty(t, ae.Rule)
		assert.Contains(t, err.Error(), arg)
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			covered[c.Arg] = true
			if c.Backward {
				require.NoError(t, spec.Validate(c.Problem), "a backward-only case must be a valid problem")
			} else {
				check(t, spec.Validate(c.Problem), c.Arg)
			}
			check(t, spec.ValidateBackward(c.Problem, c.Saved, c.DO), c.Arg)
		})
	}

	// The table reaches every argument the validation can name.
	all := []string{
		"Problem", "Q", "K", "V",
		"Options.Scale", "Options.Causal", "Options.Softcap", "Options.Dropout.P", "Options.Dropout",
		"Options.Window.Left", "Options.Window.Right",
		"Options.Mask.Shape", "Options.Mask.Keep", "Options.Mask.Bias", "Options.Mask.Kind",
		"Options.SeqLensQ", "Options.SeqLensK",
		"Saved", "Saved.O", "Saved.L", "dO",
	}
	var missing []string
	for _, a := range all {
		if !covered[a] {
			missing = append(missing, a)
		}
	}
	slices.Sort(missing)
	assert.Empty(t, missing, "arguments without a bad-input row")
}

// bcast returns a float32 tensor of the given shape over one stored element (every stride
// 0): any size in 4 bytes.
func bcast(t *testing.T, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromStorage(tensor.NewHostStorage(4), tensor.Float32, shape, make([]int, len(shape)), 0)
	require.NoError(t, err)
	return x
}

// D1: window bounds saturate. A bound of at least N + M hides nothing a window can hide,
// so any larger bound, up to MaxInt, must give the key ranges of that bound; no
// arithmetic wraps.
func TestWindowBoundsSaturate(t *testing.T) {
	huge := []int{math.MaxInt, math.MaxInt - 1, math.MaxInt / 2, 1 << 40}
	for _, sz := range [][2]int{{4, 4}, {3, 7}, {7, 3}, {1, 1}} {
		n, m := sz[0], sz[1]
		for _, causal := range []spec.Causal{spec.CausalNone, spec.CausalTopLeft, spec.CausalBottomRight} {
			for _, left := range append([]int{spec.WindowUnbounded, 0, 2}, huge...) {
				for _, right := range append([]int{spec.WindowUnbounded, 0, 1}, huge...) {
					clamp := func(w int) int {
						if w > n+m {
							return n + m
						}
						return w
					}
					p := &spec.Problem{Q: bcast(t, 1, 1, n, 2), K: bcast(t, 1, 1, m, 2), V: bcast(t, 1, 1, m, 2)}
					p.Causal, p.Window = causal, &spec.Window{Left: left, Right: right}
					require.NoError(t, spec.Validate(p))
					want := *p
					want.Window = &spec.Window{Left: clamp(left), Right: clamp(right)}
					for i := 0; i < n; i++ {
						lo, hi := p.KeyRange(0, i)
						wlo, whi := want.KeyRange(0, i)
						if hi <= lo && whi <= wlo {
							continue // both empty
						}
						assert.Equal(t, [2]int{wlo, whi}, [2]int{lo, hi}, "N %d M %d %v window %+v row %d", n, m, causal, *p.Window, i)
					}
				}
			}
		}
	}
}

// D4: a mask whose element count overflows an int is refused, not wrapped to a small
// count that a short slice then matches.
func TestMaskElementCountOverflow(t *testing.T) {
	const n = 1 << 32
	for _, m := range []*spec.Mask{
		{Kind: spec.MaskBool, Shape: [4]int{1, 1, n, n}, Keep: []bool{}},
		{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, n, n}, Bias: []float32{}},
	} {
		p := &spec.Problem{Q: bcast(t, 1, 1, n, 1), K: bcast(t, 1, 1, n, 1), V: bcast(t, 1, 1, n, 1)}
		p.Mask = m
		err := spec.Validate(p)
		var ae *spec.ArgError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, "Options.Mask.Shape", ae.Arg)
	}
}

// D7: Scale and Softcap are 0 (default / off) or in [MinScale, MaxScale]: values that do
// not survive the float32 conversion every fast executor makes are refused.
func TestScaleAndSoftcapRange(t *testing.T) {
	q := bcast(t, 1, 1, 2, 2)
	for _, c := range []struct {
		v  float64
		ok bool
	}{
		{0, true}, {spec.MinScale, true}, {spec.MaxScale, true}, {1e-30, true}, {100, true},
		{math.Nextafter(spec.MaxScale, math.Inf(1)), false}, {1e39, false}, {math.MaxFloat64, false},
		{math.Nextafter(spec.MinScale, 0), false}, {1e-320, false}, {math.SmallestNonzeroFloat64, false},
	} {
		for _, arg := range []string{"Options.Scale", "Options.Softcap"} {
			p := &spec.Problem{Q: q, K: q, V: q}
			if arg == "Options.Scale" {
				p.Scale = c.v
			} else {
				p.Softcap = c.v
			}
			err := spec.Validate(p)
			if c.ok {
				assert.NoError(t, err, "%s = %v", arg, c.v)
				continue
			}
			var ae *spec.ArgError
			if assert.ErrorAs(t, err, &ae, "%s = %v", arg, c.v) {
				assert.Equal(t, arg, ae.Arg)
			}
		}
	}
}

// N5: the dropout counter indexes columns in 32 bits of groups of four, so dropout over
// more than 2^34 keys is refused (the masks would repeat); without dropout such M is
// fine.
func TestDropoutCounterLimits(t *testing.T) {
	p := &spec.Problem{Q: bcast(t, 1, 1, 2, 1), K: bcast(t, 1, 1, 1<<34+1, 1), V: bcast(t, 1, 1, 1<<34+1, 1)}
	require.NoError(t, spec.Validate(p))
	p.Dropout.P = 0.1
	var ae *spec.ArgError
	require.ErrorAs(t, spec.Validate(p), &ae)
	assert.Equal(t, "Options.Dropout", ae.Arg)
	p.K, p.V = bcast(t, 1, 1, 1<<34, 1), bcast(t, 1, 1, 1<<34, 1)
	assert.NoError(t, spec.Validate(p), "2^34 keys are the most the counter indexes")
}
