package checkpoint

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func params(t *testing.T, seed uint64, dt tensor.DType, shapes map[string][]int, order ...string) []optim.Param {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var ps []optim.Param
	for _, name := range order {
		sh := shapes[name]
		n := 1
		for _, d := range sh {
			n *= d
		}
		v := make([]float64, n)
		g := make([]float64, n)
		for i := range v {
			v[i], g[i] = r.NormFloat64(), r.NormFloat64()
		}
		val, err := tensor.FromFloat64s(dt, v, sh...)
		require.NoError(t, err)
		grad, err := tensor.FromFloat64s(dt, g, sh...)
		require.NoError(t, err)
		ps = append(ps, optim.Param{Name: name, Value: val, Grad: grad})
	}
	return ps
}

func bits(t *testing.T, ps []optim.Param) [][]float64 {
	var out [][]float64
	for _, p := range ps {
		v, err := p.Value.ToFloat64s()
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

var shapes = map[string][]int{"w": {3, 4}, "b": {4}, "e": {5, 2}}

// Save after two steps, restore into fresh parameters and a fresh optimizer: the third
// step gives the same bits as the run that never stopped, for float32 and float64.
func TestSaveRestoreContinuesBitForBit(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64} {
		a := params(t, 1, dt, shapes, "w", "b", "e")
		opt, err := optim.New(optim.DefaultAdamW(0.01))
		require.NoError(t, err)
		require.NoError(t, opt.Step(a))
		require.NoError(t, opt.Step(a[:2])) // "e" one step behind: per-parameter step counts
		dir := t.TempDir()
		require.NoError(t, Save(dir, a, opt, Meta{Step: 2, Seed: 7, DropoutOffset: 9, Extra: map[string]string{"k": "v"}}))

		b := params(t, 2, dt, shapes, "w", "b", "e") // other values until restored
		for i := range b {
			require.NoError(t, a[i].Grad.CopyInto(b[i].Grad))
		}
		opt2, err := optim.New(optim.DefaultAdamW(0.01))
		require.NoError(t, err)
		meta, err := Restore(dir, b, opt2)
		require.NoError(t, err)
		assert.Equal(t, Meta{Version: FormatVersion, Step: 2, Seed: 7, DropoutOffset: 9, Extra: map[string]string{"k": "v"}}, meta)
		assert.Equal(t, bits(t, a), bits(t, b))
		assert.Equal(t, 1, opt2.Steps(b[2].Value))
		require.NoError(t, opt.Step(a))
		require.NoError(t, opt2.Step(b))
		assert.Equal(t, bits(t, a), bits(t, b))
	}
}

// Checkpoints that do not fit are refused before anything changes.
func TestRestoreRefusesMismatches(t *testing.T) {
	a := params(t, 1, tensor.Float32, shapes, "w", "b", "e")
	opt, err := optim.New(optim.DefaultAdamW(0.01))
	require.NoError(t, err)
	require.NoError(t, opt.Step(a))
	dir := t.TempDir()
	require.NoError(t, Save(dir, a, opt, Meta{Step: 1}))

	for _, tc := range []struct {
		name   string
		ps     []optim.Param
		target error
	}{
		{"missing parameter", params(t, 3, tensor.Float32, shapes, "w", "b"), ErrMismatch},
		{"renamed", params(t, 3, tensor.Float32, map[string][]int{"w": {3, 4}, "b": {4}, "x": {5, 2}}, "w", "b", "x"), safetensors.ErrMissing},
		{"reshaped", params(t, 3, tensor.Float32, map[string][]int{"w": {4, 3}, "b": {4}, "e": {5, 2}}, "w", "b", "e"), safetensors.ErrShape},
		{"float64", params(t, 3, tensor.Float64, shapes, "w", "b", "e"), safetensors.ErrDType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := optim.New(optim.DefaultAdamW(0.01))
			require.NoError(t, err)
			before := bits(t, tc.ps)
			_, err = Restore(dir, tc.ps, o)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.target), "%v", err)
			assert.Equal(t, before, bits(t, tc.ps))
			for _, p := range tc.ps {
				assert.Zero(t, o.Steps(p.Value))
			}
		})
	}
	// A cut optimizer file is a typed error.
	path := filepath.Join(dir, OptimizerFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-3], 0o644))
	_, err = Restore(dir, params(t, 3, tensor.Float32, shapes, "w", "b", "e"), opt)
	assert.ErrorIs(t, err, safetensors.ErrTruncated)

	_, err = Restore(t.TempDir(), a, opt)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Error(t, Save(dir, append(a, a[0]), opt, Meta{}), "duplicate names")
}
