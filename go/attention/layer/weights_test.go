package layer

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func snapshot(t *testing.T, m *MultiHeadAttention) [][]float64 {
	var out [][]float64
	for _, p := range m.Parameters() {
		out = append(out, attntest.Values(t, p.Value))
	}
	return out
}

// Saving and loading under each scheme, with a prefix, in each stored dtype, gives the
// weights back (exactly in float32, rounded as the dtype rounds otherwise).
func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		naming Naming
		p      Params
	}{
		{NamingTorchMHA, Params{Dim: 12, Heads: 3, Bias: true, Seed: 1}},
		{NamingSeparate, Params{Dim: 16, Heads: 4, KVHeads: 2, Bias: true, Seed: 2}},
		{NamingSeparate, Params{Dim: 16, Heads: 4, KVHeads: 1, Seed: 3}},
	} {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.BFloat16, tensor.Float16, tensor.Float64} {
			t.Run(tc.naming.String()+"/"+dt.String(), func(t *testing.T) {
				src, err := New(tc.p, ref())
				require.NoError(t, err)
				path := filepath.Join(t.TempDir(), "w.safetensors")
				require.NoError(t, src.SaveFile(path, tc.naming, "model.attn.", dt))
				q := tc.p
				q.Seed = 42 // other weights until loaded
				dst, err := New(q, ref())
				require.NoError(t, err)
				require.NotEqual(t, snapshot(t, src), snapshot(t, dst))
				require.NoError(t, dst.LoadFile(path, tc.naming, "model.attn."))
				for i, p := range src.Parameters() {
					r, err := p.Value.Convert(dt)
					require.NoError(t, err)
					assert.Equal(t, attntest.Values(t, r), attntest.Values(t, dst.Parameters()[i].Value), p.Name)
				}
				f, err := safetensors.Open(path)
				require.NoError(t, err)
				defer f.Close()
				n, err := DetectNaming(f, "model.attn.")
				require.NoError(t, err)
				assert.Equal(t, tc.naming, n)
			})
		}
	}
}

// Files that do not fit the layer get typed errors naming the tensor, and the layer keeps
// its weights.
func TestLoadRejects(t *testing.T) {
	mha, err := New(Params{Dim: 8, Heads: 2, Bias: true, Seed: 1}, ref())
	require.NoError(t, err)
	noBias, err := New(Params{Dim: 8, Heads: 2, Seed: 1}, ref())
	require.NoError(t, err)
	gqa, err := New(Params{Dim: 8, Heads: 2, KVHeads: 1, Bias: true, Seed: 1}, ref())
	require.NoError(t, err)
	file := func(m *MultiHeadAttention, n Naming, drop string) *safetensors.File {
		ts, err := m.Tensors(n, "", tensor.Float32)
		require.NoError(t, err)
		var keep []safetensors.Named
		for _, x := range ts {
			if x.Name != drop {
				keep = append(keep, x)
			}
		}
		var buf bytes.Buffer
		require.NoError(t, safetensors.Write(&buf, keep, nil))
		f, err := safetensors.Parse(buf.Bytes())
		require.NoError(t, err)
		return f
	}
	wide, err := New(Params{Dim: 12, Heads: 2, Bias: true}, ref())
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		into   *MultiHeadAttention
		f      *safetensors.File
		naming Naming
		kind   error
		tensor string
	}{
		{"missing out_proj.bias", mha, file(mha, NamingTorchMHA, "out_proj.bias"), NamingTorchMHA, safetensors.ErrMissing, "out_proj.bias"},
		{"missing k_proj.weight", gqa, file(gqa, NamingSeparate, "k_proj.weight"), NamingSeparate, safetensors.ErrMissing, "k_proj.weight"},
		{"wrong shape", mha, file(wide, NamingTorchMHA, ""), NamingTorchMHA, safetensors.ErrShape, "in_proj_weight"},
		{"k_proj of MHA into GQA", gqa, file(mha, NamingSeparate, ""), NamingSeparate, safetensors.ErrShape, "k_proj.weight"},
		{"bias into a layer without", noBias, file(mha, NamingTorchMHA, ""), NamingTorchMHA, safetensors.ErrUnexpected, "in_proj_bias"},
		{"wrong scheme", mha, file(gqa, NamingSeparate, ""), NamingTorchMHA, safetensors.ErrMissing, "in_proj_weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, tc.into)
			err := tc.into.Load(tc.f, tc.naming, "")
			require.ErrorIs(t, err, tc.kind)
			var e *safetensors.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.tensor, e.Tensor)
			assert.Equal(t, before, snapshot(t, tc.into), "the layer is unchanged")
		})
	}
	_, err = gqa.Tensors(NamingTorchMHA, "", tensor.Float32)
	requireArgErr(t, err, "naming")
	requireArgErr(t, gqa.Load(file(gqa, NamingSeparate, ""), NamingTorchMHA, ""), "naming")
	requireArgErr(t, mha.Load(nil, NamingTorchMHA, ""), "f")
	requireArgErr(t, mha.Load(file(mha, NamingTorchMHA, ""), 9, ""), "naming")
	_, err = mha.Tensors(NamingTorchMHA, "", tensor.DType(77))
	requireArgErr(t, err, "dt")
	_, err = DetectNaming(file(mha, NamingTorchMHA, ""), "encoder.")
	assert.ErrorIs(t, err, safetensors.ErrMissing)
	assert.Error(t, mha.LoadFile(filepath.Join(t.TempDir(), "absent.safetensors"), NamingTorchMHA, ""))
}
