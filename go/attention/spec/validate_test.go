package spec_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback/badinput"
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
