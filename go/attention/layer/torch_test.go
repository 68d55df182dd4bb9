package layer

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// torchCases are the references written by tools/interop/torch_mha_reference.py.
var torchCases = []string{"plain", "causal", "keypad", "keypad_tail", "gqa", "cross"}

func openTorch(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(filepath.Join("testdata", "torch", name+".safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func load(t *testing.T, f *safetensors.File, name string, dt tensor.DType) *tensor.Tensor {
	t.Helper()
	info, ok := f.Info(name)
	require.True(t, ok, name)
	x, err := f.Load(name, dt, info.Shape...)
	require.NoError(t, err)
	return x
}

// The layer, given PyTorch's weights through the loaders, computes PyTorch's output, input
// gradient and every weight gradient for the same upstream gradient: nn.MultiheadAttention
// plain, causal, with key padding (scattered and trailing) and as cross-attention with key
// padding, and GQA with separate projections. PyTorch computed in float64 from float32 weights and inputs. Tolerances:
// the float64 layer on the reference ≤ 1e-10 relative L2 (float64 rounding); the float32
// layer on the CPU flash executor through the Engine ≤ 1e-5 relative L2 (float32 rounding
// over sums of ≤ 32 terms; measured ≤ 5e-7, and ≤ 2e-15 in float64).
func TestMatchesPyTorch(t *testing.T) {
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}, Strict: true})
	require.NoError(t, err)
	defer eng.Close()
	for _, name := range torchCases {
		for _, dt := range []tensor.DType{tensor.Float64, tensor.Float32} {
			t.Run(name+"/"+dt.String(), func(t *testing.T) {
				f := openTorch(t, name)
				md := f.Metadata()
				atoi := func(k string) int {
					v, err := strconv.Atoi(md[k])
					require.NoError(t, err, k)
					return v
				}
				p := Params{Dim: atoi("dim"), Heads: atoi("heads"), KVHeads: atoi("kv_heads"), Bias: md["bias"] == "true", DType: dt, Seed: 99}
				if md["causal"] == "top-left" {
					p.Causal = spec.CausalTopLeft
				}
				var attn Attention = ref()
				tol := 1e-10
				if dt == tensor.Float32 {
					attn, tol = eng, 1e-5
				}
				m, err := New(p, attn)
				require.NoError(t, err)
				naming, err := DetectNaming(f, "")
				require.NoError(t, err)
				assert.Equal(t, md["naming"], naming.String())
				require.NoError(t, m.Load(f, naming, ""))

				x, dy := load(t, f, "x", dt), load(t, f, "dy", dt)
				var mask Mask
				if _, ok := f.Info("key_padding_mask"); ok {
					for _, v := range attntest.Values(t, load(t, f, "key_padding_mask", tensor.Float64)) {
						mask.KeyPadding = append(mask.KeyPadding, v != 0)
					}
				}
				var xkv, dxkv *tensor.Tensor
				if _, ok := f.Info("xkv"); ok {
					xkv = load(t, f, "xkv", dt)
				}
				y, s, err := m.ForwardMasked(bg, x, xkv, mask)
				require.NoError(t, err)
				var dx *tensor.Tensor
				if xkv != nil {
					dx, dxkv, err = m.BackwardCross(bg, s, dy)
				} else {
					dx, err = m.Backward(bg, s, dy)
				}
				require.NoError(t, err)

				var worst float64
				check := func(what string, got *tensor.Tensor, ref string) {
					want := attntest.Values(t, load(t, f, ref, tensor.Float64))
					e := attntest.RelL2(want, attntest.Values(t, got))
					worst = max(worst, e)
					assert.LessOrEqual(t, e, tol, "%s: relative L2 error %.3g", what, e)
				}
				defer func() { t.Logf("largest relative L2 error %.2g", worst) }()
				check("y", y, "y")
				check("dx", dx, "dx")
				if dxkv != nil {
					check("dxkv", dxkv, "dxkv")
				}
				grads, err := m.GradTensors(naming, "", tensor.Float64)
				require.NoError(t, err)
				require.NotEmpty(t, grads)
				for _, g := range grads {
					check("d"+g.Name, g.Tensor, "grad."+g.Name)
				}
				// Saving gives back PyTorch's float32 weights bit for bit.
				saved, err := m.Tensors(naming, "", tensor.Float32)
				require.NoError(t, err)
				for _, w := range saved {
					assert.Equal(t, attntest.Values(t, load(t, f, w.Name, tensor.Float32)), attntest.Values(t, w.Tensor), w.Name)
				}
			})
		}
	}
}

// float16 and bfloat16 weights written by PyTorch load as PyTorch rounded them: equal to
// the float32 weights rounded by package tensor, so both round to nearest even alike.
func TestLoadsHalfPrecisionWeights(t *testing.T) {
	f32 := openTorch(t, "plain")
	for _, tc := range []struct {
		file string
		dt   tensor.DType
	}{{"plain_weights_f16", tensor.Float16}, {"plain_weights_bf16", tensor.BFloat16}} {
		t.Run(tc.file, func(t *testing.T) {
			f := openTorch(t, tc.file)
			m, err := New(Params{Dim: 16, Heads: 4, Bias: true}, ref())
			require.NoError(t, err)
			require.NoError(t, m.Load(f, NamingTorchMHA, ""))
			want, err := New(Params{Dim: 16, Heads: 4, Bias: true}, ref())
			require.NoError(t, err)
			require.NoError(t, want.Load(f32, NamingTorchMHA, ""))
			for i, p := range want.Parameters() {
				r, err := p.Value.Convert(tc.dt)
				require.NoError(t, err)
				assert.Equal(t, attntest.Values(t, r), attntest.Values(t, m.Parameters()[i].Value), p.Name)
				assert.NotEqual(t, attntest.Values(t, p.Value), attntest.Values(t, m.Parameters()[i].Value), "%s: the file's precision shows", p.Name)
			}
		})
	}
}
