package layer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/orchard-ml/orchard/go/attention/safetensors"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Naming is a scheme of tensor names (and layouts) for a MultiHeadAttention's weights in
// a file. Both store each projection as PyTorch's nn.Linear does, weight (out, in) with
// y = x·weightᵀ + bias, so the layer's W (in, out) is the transpose of the file's weight.
// Heads are contiguous blocks of Dh features, in both PyTorch and Orchard.
type Naming uint8

// Naming schemes.
const (
	// NamingTorchMHA is torch.nn.MultiheadAttention's state_dict: in_proj_weight (3C, C),
	// the rows of q, k and v stacked; in_proj_bias (3C); out_proj.weight (C, C);
	// out_proj.bias (C). It needs KVHeads == Heads (PyTorch's module has no GQA) and
	// covers the module with kdim = vdim = embed_dim and without add_bias_kv.
	NamingTorchMHA Naming = iota + 1
	// NamingSeparate is the separate projections of Hugging Face attention modules:
	// q_proj.weight (H·Dh, C), k_proj.weight and v_proj.weight (Hkv·Dh, C) — narrower
	// with GQA — o_proj.weight (C, H·Dh), and a .bias for each with Params.Bias.
	NamingSeparate
)

func (n Naming) String() string {
	switch n {
	case NamingTorchMHA:
		return "torch-mha"
	case NamingSeparate:
		return "separate"
	}
	return fmt.Sprintf("Naming(%d)", uint8(n))
}

// slot is one tensor of a naming scheme: its name, the layer parameter and, for the
// stacked in_proj tensors, which rows of the file tensor hold it.
type slot struct {
	name   string
	w      *weight
	weight bool // a weight matrix (transposed between file and layer); else a bias
	rows   int  // first row in the stacked file tensor
	stack  int  // rows of the whole file tensor; 0 when not stacked
}

func (m *MultiHeadAttention) slots(naming Naming, prefix string) ([]slot, error) {
	c := m.p.Dim
	var s []slot
	switch naming {
	case NamingTorchMHA:
		if m.p.KVHeads != m.p.Heads {
			return nil, argErr("naming", "torch-mha (nn.MultiheadAttention) has no GQA; this layer has KVHeads %d < Heads %d: use NamingSeparate", m.p.KVHeads, m.p.Heads)
		}
		s = []slot{
			{prefix + "in_proj_weight", &m.wq, true, 0, 3 * c},
			{prefix + "in_proj_weight", &m.wk, true, c, 3 * c},
			{prefix + "in_proj_weight", &m.wv, true, 2 * c, 3 * c},
			{prefix + "out_proj.weight", &m.wo, true, 0, 0},
		}
		if m.p.Bias {
			s = append(s,
				slot{prefix + "in_proj_bias", &m.bq, false, 0, 3 * c},
				slot{prefix + "in_proj_bias", &m.bk, false, c, 3 * c},
				slot{prefix + "in_proj_bias", &m.bv, false, 2 * c, 3 * c},
				slot{prefix + "out_proj.bias", &m.bo, false, 0, 0})
		}
	case NamingSeparate:
		s = []slot{
			{prefix + "q_proj.weight", &m.wq, true, 0, 0},
			{prefix + "k_proj.weight", &m.wk, true, 0, 0},
			{prefix + "v_proj.weight", &m.wv, true, 0, 0},
			{prefix + "o_proj.weight", &m.wo, true, 0, 0},
		}
		if m.p.Bias {
			s = append(s,
				slot{prefix + "q_proj.bias", &m.bq, false, 0, 0},
				slot{prefix + "k_proj.bias", &m.bk, false, 0, 0},
				slot{prefix + "v_proj.bias", &m.bv, false, 0, 0},
				slot{prefix + "o_proj.bias", &m.bo, false, 0, 0})
		}
	default:
		return nil, argErr("naming", "unknown scheme %v", naming)
	}
	return s, nil
}

// fileShape is the shape slot s has in a file.
func (s slot) fileShape() []int {
	sh := s.w.value.Shape()
	if s.weight {
		sh[0], sh[1] = sh[1], sh[0]
	}
	if s.stack > 0 {
		sh[0] = s.stack
	}
	return sh
}

// Tensors returns the layer's weights under naming, with prefix before each name (e.g.
// "model.layers.0.self_attn."), in PyTorch's layout and converted to dtype dt (float32,
// float16, bfloat16 or float64), ready for safetensors.Write.
func (m *MultiHeadAttention) Tensors(naming Naming, prefix string, dt tensor.DType) ([]safetensors.Named, error) {
	return m.tensors(naming, prefix, dt, false)
}

// GradTensors is Tensors for the gradient buffers: each weight's gradient under the
// weight's name and in its layout, as PyTorch's param.grad would be, to compare a step
// with PyTorch's autograd.
func (m *MultiHeadAttention) GradTensors(naming Naming, prefix string, dt tensor.DType) ([]safetensors.Named, error) {
	return m.tensors(naming, prefix, dt, true)
}

func (m *MultiHeadAttention) tensors(naming Naming, prefix string, dt tensor.DType, grads bool) ([]safetensors.Named, error) {
	if _, ok := safetensors.DTypeName(dt); !ok {
		return nil, argErr("dt", "%v cannot be stored; use float32, float16, bfloat16 or float64", dt)
	}
	slots, err := m.slots(naming, prefix)
	if err != nil {
		return nil, err
	}
	var out []safetensors.Named
	files := map[string]*tensor.Tensor{}
	for _, s := range slots {
		dst, ok := files[s.name]
		if !ok {
			if dst, err = tensor.New(dt, s.fileShape()...); err != nil {
				return nil, fmt.Errorf("layer: %s: %w", s.name, err)
			}
			files[s.name] = dst
			out = append(out, safetensors.Named{Name: s.name, Tensor: dst})
		}
		src := s.w.value
		if grads {
			src = s.w.grad
		}
		if s.weight {
			if src, err = src.Transpose(0, 1); err != nil {
				return nil, err
			}
		}
		if s.stack > 0 {
			if dst, err = dst.Slice(0, s.rows, s.rows+src.Dim(0)); err != nil {
				return nil, err
			}
		}
		if err := src.CopyInto(dst); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", s.name, err)
		}
	}
	return out, nil
}

// SaveFile writes the layer's weights to a safetensors file at path (atomically: a
// reader never sees half a file), as Tensors names and converts them.
func (m *MultiHeadAttention) SaveFile(path string, naming Naming, prefix string, dt tensor.DType) error {
	ts, err := m.Tensors(naming, prefix, dt)
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, ts, map[string]string{"format": "pt"})
}

// Load sets the layer's weights from f under naming and prefix, converting each tensor
// from its dtype in the file (float32, float16, bfloat16 or float64) to the layer's.
// Every tensor is read and checked before any weight changes: on error the layer is as
// it was. A missing tensor, a wrong shape, or a bias tensor for a layer without biases
// (a hint of the wrong Params.Bias) is a *safetensors.Error naming the tensor. Tensors
// under prefix that belong to neither scheme are ignored, so a file may hold a whole model.
func (m *MultiHeadAttention) Load(f *safetensors.File, naming Naming, prefix string) error {
	if f == nil {
		return argErr("f", "must not be nil")
	}
	slots, err := m.slots(naming, prefix)
	if err != nil {
		return err
	}
	if !m.p.Bias {
		for _, name := range []string{"in_proj_bias", "out_proj.bias", "q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"} {
			if _, ok := f.Info(prefix + name); ok && belongs(naming, name) {
				return &safetensors.Error{Tensor: prefix + name, Kind: safetensors.ErrUnexpected,
					Detail: "the file has a bias but the layer was built without biases (Params.Bias false)"}
			}
		}
	}
	files := map[string]*tensor.Tensor{}
	vals := make([]*tensor.Tensor, len(slots))
	for i, s := range slots {
		ft, ok := files[s.name]
		if !ok {
			if ft, err = f.Load(s.name, m.p.DType, s.fileShape()...); err != nil {
				return err
			}
			files[s.name] = ft
		}
		v := ft
		if s.stack > 0 {
			n := s.w.value.Dim(0)
			if s.weight {
				n = s.w.value.Dim(1)
			}
			if v, err = v.Slice(0, s.rows, s.rows+n); err != nil {
				return err
			}
		}
		if s.weight {
			if v, err = v.Transpose(0, 1); err != nil {
				return err
			}
		}
		vals[i] = v
	}
	for i, s := range slots {
		if err := vals[i].CopyInto(s.w.value); err != nil {
			return fmt.Errorf("layer: setting %s from %s: %w", s.w.name, s.name, err)
		}
	}
	return nil
}

func belongs(n Naming, name string) bool {
	torch := strings.HasPrefix(name, "in_proj") || strings.HasPrefix(name, "out_proj")
	return (n == NamingTorchMHA) == torch
}

// LoadFile opens the safetensors file at path and Loads it.
func (m *MultiHeadAttention) LoadFile(path string, naming Naming, prefix string) error {
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return m.Load(f, naming, prefix)
}

// DetectNaming returns the scheme whose weight names f holds under prefix.
func DetectNaming(f *safetensors.File, prefix string) (Naming, error) {
	if f == nil {
		return 0, argErr("f", "must not be nil")
	}
	if _, ok := f.Info(prefix + "in_proj_weight"); ok {
		return NamingTorchMHA, nil
	}
	if _, ok := f.Info(prefix + "q_proj.weight"); ok {
		return NamingSeparate, nil
	}
	names := slices.DeleteFunc(f.Names(), func(n string) bool { return !strings.HasPrefix(n, prefix) })
	return 0, &safetensors.Error{Tensor: prefix + "in_proj_weight", Kind: safetensors.ErrMissing,
		Detail: fmt.Sprintf("neither %sin_proj_weight (nn.MultiheadAttention) nor %sq_proj.weight (separate projections) is in the file; it has %d tensors under the prefix", prefix, prefix, len(names))}
}
