package layer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Attention computes attention forward and backward. *attention.Engine implements it, and
// so does every spec.Executor (the reference, for instance).
type Attention interface {
	Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error)
	Backward(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, into *spec.Grads) (*spec.Grads, error)
}

// Params configure a MultiHeadAttention.
type Params struct {
	Dim     int         // model width C, a multiple of Heads
	Heads   int         // query heads H; the head size is Dh = C / H
	KVHeads int         // key/value heads Hkv, dividing H (GQA); 0 means H
	Causal  spec.Causal // causal masking and its alignment
	Dropout float64     // attention-probability dropout in training, in [0, 1)
	Bias    bool        // biases on the four projections
	Seed    int64       // seeds the weight initialisation and the dropout stream
	// DType of parameters, inputs and outputs: tensor.Float32 (0 means Float32) or
	// tensor.Float64 (exact gradient checks against the reference).
	DType tensor.DType
}

// weight is one parameter and its gradient buffer, same shape and dtype.
type weight struct {
	name        string
	value, grad *tensor.Tensor
	noDecay     bool
}

// MultiHeadAttention is multi-head (or grouped-query) attention with trainable
// projections:
//
//	q = xq·Wq + bq    (B, N, H·Dh)    k = xkv·Wk + bk, v = xkv·Wv + bv    (B, M, Hkv·Dh)
//	a = attention(q, k, v) with heads split    (B, N, H·Dh)
//	y = a·Wo + bo     (B, N, C)
//
// where xkv = xq for self-attention.
type MultiHeadAttention struct {
	p    Params
	dh   int // head size C / H
	attn Attention

	wq, wk, wv, wo weight // (C, H·Dh), (C, Hkv·Dh), (C, Hkv·Dh), (H·Dh, C)
	bq, bk, bv, bo weight // (H·Dh), (Hkv·Dh), (Hkv·Dh), (C); nil tensors without Bias

	training   bool
	dropSeed   uint64
	dropOffset uint64

	free []*buffers // working buffers released by Backward, for the next Forward
}

// maxFree bounds the buffer sets a layer keeps between calls: one per shape in flight is
// what a training loop needs (a last, shorter batch is a second shape).
const maxFree = 2

// buffers are one forward/backward pair's working tensors for one shape (B, N, M), kept by
// the layer between steps so that a training step allocates no attention inputs, outputs
// or gradients: Forward takes a set (or allocates one), Saved holds it, Backward gives it
// back.
type buffers struct {
	b, n, m int
	q, k, v *tensor.Tensor // (B·N, H·Dh), (B·M, Hkv·Dh) ×2: F1's projections; B5's da, B2's dq, dk, dv
	Q, K, V *tensor.Tensor // (B, H, N, Dh), (B, Hkv, M, Dh) ×2: the attention's inputs
	O, L    *tensor.Tensor // (B, H, N, Dh), (B, H, N): the attention's outputs
	A       *tensor.Tensor // (B, N, H·Dh): heads merged
	// allocated by the first Backward
	dO, dQ, dK, dV *tensor.Tensor // (B, H, N, Dh) ×2, (B, Hkv, M, Dh) ×2
}

// take returns a free buffer set for (b, n, mk), or a new one after checking its size
// against ctx's memory budget.
func (m *MultiHeadAttention) take(ctx context.Context, b, n, mk int) (*buffers, error) {
	for i, s := range m.free {
		if s.b == b && s.n == n && s.m == mk {
			m.free = append(m.free[:i], m.free[i+1:]...)
			return s, nil
		}
	}
	hd, kvd, dt := m.p.Heads*m.dh, m.p.KVHeads*m.dh, m.p.DType
	size := dt.Size()
	need := spec.AddBytes(
		spec.MulBytes(3, b, n, hd, size),   // q, Q, O (A below)
		spec.MulBytes(4, b, mk, kvd, size), // k, v, K, V
		spec.MulBytes(b, n, hd, size),      // A
		spec.MulBytes(b, m.p.Heads, n, size),
	)
	if err := spec.CheckMemory(ctx, "layer: forward buffers", need); err != nil {
		return nil, err
	}
	s := &buffers{b: b, n: n, m: mk}
	var err error
	mk1 := func(dst **tensor.Tensor, shape ...int) {
		if err == nil {
			*dst, err = tensor.New(dt, shape...)
		}
	}
	mk1(&s.q, b*n, hd)
	mk1(&s.k, b*mk, kvd)
	mk1(&s.v, b*mk, kvd)
	mk1(&s.Q, b, m.p.Heads, n, m.dh)
	mk1(&s.K, b, m.p.KVHeads, mk, m.dh)
	mk1(&s.V, b, m.p.KVHeads, mk, m.dh)
	mk1(&s.O, b, m.p.Heads, n, m.dh)
	mk1(&s.L, b, m.p.Heads, n)
	mk1(&s.A, b, n, hd)
	if err != nil {
		return nil, fmt.Errorf("layer: allocating forward buffers: %w", err)
	}
	return s, nil
}

// growBackward gives s its backward buffers if it has none yet.
func (m *MultiHeadAttention) growBackward(ctx context.Context, s *buffers) error {
	if s.dO != nil {
		return nil
	}
	hd, kvd, size := m.p.Heads*m.dh, m.p.KVHeads*m.dh, m.p.DType.Size()
	need := spec.AddBytes(spec.MulBytes(2, s.b, s.n, hd, size), spec.MulBytes(2, s.b, s.m, kvd, size))
	if err := spec.CheckMemory(ctx, "layer: backward buffers", need); err != nil {
		return err
	}
	var t [4]*tensor.Tensor
	var err error
	for i, shape := range [][]int{{s.b, m.p.Heads, s.n, m.dh}, {s.b, m.p.Heads, s.n, m.dh}, {s.b, m.p.KVHeads, s.m, m.dh}, {s.b, m.p.KVHeads, s.m, m.dh}} {
		if t[i], err = tensor.New(m.p.DType, shape...); err != nil {
			return fmt.Errorf("layer: allocating backward buffers: %w", err)
		}
	}
	s.dO, s.dQ, s.dK, s.dV = t[0], t[1], t[2], t[3]
	return nil
}

// give returns a buffer set to the layer, dropping the oldest when maxFree are kept.
func (m *MultiHeadAttention) give(s *buffers) {
	if s == nil {
		return
	}
	if len(m.free) == maxFree {
		m.free = append(m.free[:0], m.free[1:]...)
	}
	m.free = append(m.free, s)
}

// New builds a MultiHeadAttention that computes attention with attn. Weights are drawn
// uniformly from ±1/sqrt(fan_in) (PyTorch's nn.Linear), biases start at zero. Bad
// parameters give an *spec.ArgError naming the field. The layer starts in training mode.
func New(p Params, attn Attention) (*MultiHeadAttention, error) {
	if attn == nil {
		return nil, argErr("attn", "must not be nil")
	}
	if p.KVHeads == 0 {
		p.KVHeads = p.Heads
	}
	if p.DType == 0 {
		p.DType = tensor.Float32
	}
	switch {
	case p.Dim <= 0:
		return nil, argErr("Params.Dim", "is %d; must be > 0", p.Dim)
	case p.Heads <= 0:
		return nil, argErr("Params.Heads", "is %d; must be > 0", p.Heads)
	case p.Dim%p.Heads != 0:
		return nil, argErr("Params.Dim", "%d is not a multiple of Heads = %d (head size is Dim / Heads)", p.Dim, p.Heads)
	case p.KVHeads < 0:
		return nil, argErr("Params.KVHeads", "is %d; must be ≥ 0 (0 means Heads)", p.KVHeads)
	case p.Heads%p.KVHeads != 0:
		return nil, argErr("Params.KVHeads", "%d does not divide Heads = %d", p.KVHeads, p.Heads)
	case p.Causal > spec.CausalBottomRight:
		return nil, argErr("Params.Causal", "unknown mode %d", p.Causal)
	case math.IsNaN(p.Dropout) || p.Dropout < 0 || p.Dropout >= 1:
		return nil, argErr("Params.Dropout", "is %v; must be in [0, 1)", p.Dropout)
	case p.DType != tensor.Float32 && p.DType != tensor.Float64:
		return nil, argErr("Params.DType", "is %v; the layer computes in float32 or float64", p.DType)
	}
	m := &MultiHeadAttention{p: p, dh: p.Dim / p.Heads, attn: attn, training: true, dropSeed: uint64(p.Seed)}
	c, hd, kvd := p.Dim, p.Heads*m.dh, p.KVHeads*m.dh
	// Values and gradients of the four weight matrices (biases are smaller than one of them).
	need := spec.MulBytes(2*p.DType.Size(), c, 2*hd+2*kvd+4)
	if budget := spec.DefaultMemoryBudget(); need > budget {
		return nil, argErr("Params.Dim", "%d (with Heads %d, KVHeads %d) needs %d bytes of parameters and gradients, over the memory budget of %d bytes",
			p.Dim, p.Heads, p.KVHeads, need, budget)
	}
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x6d6861696e6974)) // "mhainit"
	var err error
	mk := func(w *weight, name string, noDecay, random bool, shape ...int) {
		if err != nil {
			return
		}
		w.name, w.noDecay = name, noDecay
		if w.value, err = tensor.New(p.DType, shape...); err != nil {
			return
		}
		if w.grad, err = tensor.New(p.DType, shape...); err != nil {
			return
		}
		if random {
			bound := 1 / math.Sqrt(float64(shape[0]))
			fill(w.value, func() float64 { return (2*rng.Float64() - 1) * bound })
		}
	}
	mk(&m.wq, "Wq", false, true, c, hd)
	mk(&m.wk, "Wk", false, true, c, kvd)
	mk(&m.wv, "Wv", false, true, c, kvd)
	mk(&m.wo, "Wo", false, true, hd, c)
	if p.Bias {
		mk(&m.bq, "bq", true, false, hd)
		mk(&m.bk, "bk", true, false, kvd)
		mk(&m.bv, "bv", true, false, kvd)
		mk(&m.bo, "bo", true, false, c)
	}
	if err != nil {
		return nil, fmt.Errorf("layer: allocating parameters: %w", err)
	}
	return m, nil
}

func fill(t *tensor.Tensor, f func() float64) {
	switch t.DType() {
	case tensor.Float32:
		s, _ := t.Float32s()
		for i := range s {
			s[i] = float32(f())
		}
	case tensor.Float64:
		s, _ := t.Float64s()
		for i := range s {
			s[i] = f()
		}
	}
}

// Params returns the layer's parameters as resolved by New (KVHeads and DType filled in).
func (m *MultiHeadAttention) Params() Params { return m.p }

// HeadDim returns the head size Dh = Dim / Heads.
func (m *MultiHeadAttention) HeadDim() int { return m.dh }

func (m *MultiHeadAttention) weights() []*weight {
	ws := []*weight{&m.wq, &m.bq, &m.wk, &m.bk, &m.wv, &m.bv, &m.wo, &m.bo}
	out := ws[:0]
	for _, w := range ws {
		if w.value != nil {
			out = append(out, w)
		}
	}
	return out
}

// Parameters lists the trainable tensors with their gradient buffers, in the order Wq,
// bq, Wk, bk, Wv, bv, Wo, bo (biases only with Params.Bias; they are marked NoDecay). The
// tensors are the layer's own: the optimizer updates them in place.
func (m *MultiHeadAttention) Parameters() []optim.Param {
	var ps []optim.Param
	for _, w := range m.weights() {
		ps = append(ps, optim.Param{Name: w.name, Value: w.value, Grad: w.grad, NoDecay: w.noDecay})
	}
	return ps
}

// ZeroGrad clears every gradient buffer.
func (m *MultiHeadAttention) ZeroGrad() {
	for _, w := range m.weights() {
		fill(w.grad, func() float64 { return 0 })
	}
}

// Train switches between training (dropout on, the offset advances) and evaluation.
func (m *MultiHeadAttention) Train(on bool) { m.training = on }

// Training reports whether the layer is in training mode.
func (m *MultiHeadAttention) Training() bool { return m.training }

// DropoutOffset returns the Philox offset the next training forward will use.
func (m *MultiHeadAttention) DropoutOffset() uint64 { return m.dropOffset }

// SetDropoutOffset sets the Philox offset of the next training forward (to resume a run,
// or to repeat a forward with the same mask).
func (m *MultiHeadAttention) SetDropoutOffset(off uint64) { m.dropOffset = off }

// dropoutOptions adds the dropout of the next forward to o and advances the offset.
func (m *MultiHeadAttention) dropoutOptions(o spec.Options) spec.Options {
	if !m.training {
		return o
	}
	if m.p.Dropout > 0 {
		o.Dropout = spec.Dropout{P: m.p.Dropout, Seed: m.dropSeed, Offset: m.dropOffset}
	}
	m.dropOffset++
	return o
}

// Saved is what Forward keeps for Backward, by name. A Saved belongs to the layer that
// made it; it stays valid while the inputs it references are not modified (parameters
// may change: backward uses the weights as they are when it runs, which is what a
// training step wants — step the optimizer after backward). Problem, Attn and A live in
// the layer's working buffers: Backward releases them for the next Forward, after which
// they hold another step's values.
type Saved struct {
	XQ  *tensor.Tensor // (B, N, C) the query input, contiguous (the caller's tensor when it already was)
	XKV *tensor.Tensor // (B, M, C) the key/value input; the same tensor as XQ for self-attention
	// Problem is the attention call: Q (B, H, N, Dh), K and V (B, Hkv, M, Dh) — the
	// projections with heads split — and the options, with the dropout stream used.
	Problem *spec.Problem
	Attn    *spec.Saved    // O (B, H, N, Dh) and L (B, H, N)
	A       *tensor.Tensor // (B, N, H·Dh) the heads merged: input of the output projection

	cross bool
	done  bool // Backward has run and released buf
	owner *MultiHeadAttention
	buf   *buffers
}

func argErr(arg, format string, args ...any) error {
	return &spec.ArgError{Arg: arg, Rule: fmt.Sprintf(format, args...)}
}
