package fallback_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/fallback/badinput"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Every row of the contract's bad-input table (the one spec's validation test runs) goes
// through Forward, Backward and the Executor methods: the same typed error naming the
// same argument, no panic, no partial result, no input changed.
func TestBadInputGetsTypedErrors(t *testing.T) {
	valid, err := badinput.Valid()
	require.NoError(t, err)
	s, err := fallback.Forward(valid.Problem)
	require.NoError(t, err, "the call every case starts from must run")
	_, err = fallback.Backward(valid.Problem, s, valid.DO)
	require.NoError(t, err)

	cases, err := badinput.Cases()
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	ex := fallback.NewExecutor()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				require.Error(t, err, what)
				assert.ErrorIs(t, err, spec.ErrInvalid, what)
				var ae *spec.ArgError
				require.ErrorAs(t, err, &ae, what)
				assert.Equal(t, c.Arg, ae.Arg, what)
			}
			var saved []*tensor.Tensor
			if c.Saved != nil {
				saved = []*tensor.Tensor{c.Saved.O, c.Saved.L}
			}
			before := takeInputState(c.Problem, append(saved, c.DO)...)

			if !c.Backward {
				var s *spec.Saved
				var err error
				require.NotPanics(t, func() { s, err = fallback.Forward(c.Problem) })
				assert.Nil(t, s)
				check("Forward", err)
				require.NotPanics(t, func() { err = ex.Supports(c.Problem) })
				check("Supports", err)
				require.NotPanics(t, func() { s, err = ex.Forward(context.Background(), c.Problem, nil) })
				assert.Nil(t, s)
				check("Executor.Forward", err)
			}
			var g *spec.Grads
			var err error
			require.NotPanics(t, func() { g, err = fallback.Backward(c.Problem, c.Saved, c.DO) })
			assert.Nil(t, g)
			check("Backward", err)
			require.NotPanics(t, func() { g, err = ex.Backward(context.Background(), c.Problem, c.Saved, c.DO, nil) })
			assert.Nil(t, g)
			check("Executor.Backward", err)

			assert.Equal(t, before, takeInputState(c.Problem, append(saved, c.DO)...), "inputs changed")
		})
	}
}
