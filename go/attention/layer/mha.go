package layer

import (
	"context"
	"fmt"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Mask limits the keys each query attends to, on top of Params.Causal.
type Mask struct {
	// KeyPadding is (B, M), row-major: true marks a key that no query attends to — the
	// boolean key_padding_mask of PyTorch's nn.MultiheadAttention. When every row's padded
	// keys sit at its end (and Causal is not bottom-right, whose diagonal would move), the
	// layer passes per-batch key lengths, which fast executors skip block by block;
	// otherwise it passes a boolean mask of shape (B, 1, N, M).
	KeyPadding []bool
}

// Forward is self-attention: y = MHA(x, x). x is (B, T, C) in the layer's dtype; y is a new
// (B, T, C) tensor. x is not modified; keep it unmodified until Backward. Cancelling ctx
// stops the call between its steps (and inside the attention call) with an error wrapping
// ctx.Err().
func (m *MultiHeadAttention) Forward(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, *Saved, error) {
	return m.ForwardMasked(ctx, x, nil, Mask{})
}

// ForwardCross is cross-attention: queries from xq (B, N, C), keys and values from
// xkv (B, M, C); y is (B, N, C). With Causal set, the diagonal is aligned as
// Params.Causal says (bottom-right puts the last query on the last key).
func (m *MultiHeadAttention) ForwardCross(ctx context.Context, xq, xkv *tensor.Tensor) (*tensor.Tensor, *Saved, error) {
	if xkv == nil {
		return nil, nil, argErr("xkv", "must not be nil")
	}
	return m.ForwardMasked(ctx, xq, xkv, Mask{})
}

// ForwardMasked is Forward (xkv nil) or ForwardCross (xkv set) with a key-padding mask. A
// query whose keys are all hidden gets a zero attention output (PyTorch gives NaN there).
func (m *MultiHeadAttention) ForwardMasked(ctx context.Context, xq, xkv *tensor.Tensor, mask Mask) (*tensor.Tensor, *Saved, error) {
	cross := xkv != nil
	qArg := "x"
	if cross {
		qArg = "xq"
	}
	xqc, err := m.checkInput(qArg, xq)
	if err != nil {
		return nil, nil, err
	}
	xkvc := xqc
	if cross {
		if xkvc, err = m.checkInput("xkv", xkv); err != nil {
			return nil, nil, err
		}
		if xkvc.Dim(0) != xqc.Dim(0) {
			return nil, nil, argErr("xkv", "batch %d differs from xq's %d", xkvc.Dim(0), xqc.Dim(0))
		}
	}
	if ctx == nil {
		return nil, nil, argErr("ctx", "must not be nil (use context.Background())")
	}
	opts, err := m.maskOptions(ctx, mask, xqc.Dim(0), xqc.Dim(1), xkvc.Dim(1))
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("layer: forward: %w", err)
	}
	if m.p.DType == tensor.Float64 {
		return forward[float64](ctx, m, xqc, xkvc, cross, opts)
	}
	return forward[float32](ctx, m, xqc, xkvc, cross, opts)
}

// Backward inverts Forward: given dy = ∂loss/∂y (B, T, C) it returns dx (B, T, C) and ADDS
// the parameter gradients into the gradient buffers. Backward consumes s: its working
// buffers go back to the layer for the next Forward, and a second Backward with the same s
// is an error (as PyTorch refuses a second backward through a freed graph). After an error
// s may be used again, and no gradient buffer has changed.
func (m *MultiHeadAttention) Backward(ctx context.Context, s *Saved, dy *tensor.Tensor) (*tensor.Tensor, error) {
	dy, err := m.checkSaved(s, dy, false)
	if err != nil {
		return nil, err
	}
	dx, _, err := m.backward(ctx, s, dy)
	return dx, err
}

// BackwardCross inverts ForwardCross: given dy (B, N, C) it returns dxq (B, N, C) and
// dxkv (B, M, C) and adds the parameter gradients into the gradient buffers; s is consumed
// as in Backward.
func (m *MultiHeadAttention) BackwardCross(ctx context.Context, s *Saved, dy *tensor.Tensor) (dxq, dxkv *tensor.Tensor, err error) {
	if dy, err = m.checkSaved(s, dy, true); err != nil {
		return nil, nil, err
	}
	return m.backward(ctx, s, dy)
}

// Release gives s's working buffers back to the layer without a Backward — after a
// forward whose gradients are not wanted, as in evaluation — so the next Forward reuses
// them instead of allocating. s cannot be used by Backward afterwards; its Problem, Attn and
// A will hold another call's values.
func (m *MultiHeadAttention) Release(s *Saved) error {
	if s == nil {
		return argErr("saved", "must not be nil")
	}
	if s.owner != m {
		return argErr("saved", "was made by another layer's forward")
	}
	if s.done {
		return argErr("saved", "was already released (by Backward or Release)")
	}
	s.done = true
	m.give(s.buf)
	s.buf = nil
	return nil
}

func (m *MultiHeadAttention) backward(ctx context.Context, s *Saved, dy *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	if ctx == nil {
		return nil, nil, argErr("ctx", "must not be nil (use context.Background())")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("layer: backward: %w", err)
	}
	var dxq, dxkv *tensor.Tensor
	var err error
	if m.p.DType == tensor.Float64 {
		dxq, dxkv, err = backward[float64](ctx, m, s, dy)
	} else {
		dxq, dxkv, err = backward[float32](ctx, m, s, dy)
	}
	if err != nil {
		return nil, nil, err
	}
	s.done = true
	m.give(s.buf)
	s.buf = nil
	return dxq, dxkv, nil
}

// maskOptions turns a Mask into attention options for a batch of b rows of n queries and
// mk keys, after validating it.
func (m *MultiHeadAttention) maskOptions(ctx context.Context, mask Mask, b, n, mk int) (spec.Options, error) {
	o := spec.Options{Causal: m.p.Causal}
	kp := mask.KeyPadding
	if kp == nil {
		return o, nil
	}
	if len(kp) != b*mk {
		return o, argErr("mask.KeyPadding", "has %d elements, want B·M = %d·%d = %d", len(kp), b, mk, b*mk)
	}
	lens, trailing := make([]int, b), true
	for bi := range b {
		row := kp[bi*mk : (bi+1)*mk]
		l := 0
		for l < mk && !row[l] {
			l++
		}
		for _, pad := range row[l:] {
			if !pad {
				trailing = false
			}
		}
		lens[bi] = l
	}
	if trailing && m.p.Causal != spec.CausalBottomRight {
		o.SeqLensK = lens
		return o, nil
	}
	need := spec.MulBytes(b, n, mk)
	if err := spec.CheckMemory(ctx, "layer: key-padding mask", need); err != nil {
		return o, err
	}
	keep := make([]bool, b*n*mk) // (B, 1, N, M)
	for bi := range b {
		row := kp[bi*mk : (bi+1)*mk]
		for i := range n {
			dst := keep[(bi*n+i)*mk : (bi*n+i+1)*mk]
			for j, pad := range row {
				dst[j] = !pad
			}
		}
	}
	o.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{b, 1, n, mk}, Keep: keep}
	return o, nil
}

// forward and backward below are mirrored pairs: backward's steps run in reverse order and
// each names the forward step it inverts.

func forward[T num](ctx context.Context, m *MultiHeadAttention, xq, xkv *tensor.Tensor, cross bool, opts spec.Options) (*tensor.Tensor, *Saved, error) {
	B, N, M, C := xq.Dim(0), xq.Dim(1), xkv.Dim(1), m.p.Dim
	H, Hkv, Dh := m.p.Heads, m.p.KVHeads, m.dh
	xqd, xkvd := data[T](xq), data[T](xkv) // (B·N, C), (B·M, C)
	buf, err := m.take(ctx, B, N, M)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.give(buf)
		}
	}()

	// F1. input projections
	q := data[T](buf.q) // (B·N, H·Dh)
	linear(q, xqd, data[T](m.wq.value), data[T](m.bq.value), B*N, C, H*Dh)
	k := data[T](buf.k) // (B·M, Hkv·Dh)
	linear(k, xkvd, data[T](m.wk.value), data[T](m.bk.value), B*M, C, Hkv*Dh)
	v := data[T](buf.v) // (B·M, Hkv·Dh)
	linear(v, xkvd, data[T](m.wv.value), data[T](m.bv.value), B*M, C, Hkv*Dh)

	// F2. split heads: (B, T, heads, Dh) → (B, heads, T, Dh)
	splitHeads(data[T](buf.Q), q, B, N, H, Dh)   // Q (B, H, N, Dh)
	splitHeads(data[T](buf.K), k, B, M, Hkv, Dh) // K (B, Hkv, M, Dh)
	splitHeads(data[T](buf.V), v, B, M, Hkv, Dh) // V (B, Hkv, M, Dh)
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("layer: forward: %w", err)
	}

	// F3. attention: O = softmax(Q·Kᵀ/sqrt(Dh) ∘ mask) ∘ dropout · V, written into the
	// layer's own O (B, H, N, Dh) and L (B, H, N)
	opts = m.dropoutOptions(opts)
	prob := &spec.Problem{Q: buf.Q, K: buf.K, V: buf.V, Options: opts}
	att, err := m.attn.Forward(ctx, prob, &spec.Saved{O: buf.O, L: buf.L})
	if err != nil {
		return nil, nil, fmt.Errorf("layer: attention forward: %w", err)
	}
	if att == nil {
		return nil, nil, fmt.Errorf("layer: attention forward returned no result and no error")
	}
	o, err := result[T]("attention output O", att.O, B, H, N, Dh) // (B, H, N, Dh)
	if err != nil {
		return nil, nil, err
	}

	// F4. merge heads: (B, H, N, Dh) → (B, N, H·Dh)
	a := data[T](buf.A)
	mergeHeads(a, o, B, N, H, Dh)

	// F5. output projection
	y, yd, err := alloc[T](B, N, C) // (B·N, C)
	if err != nil {
		return nil, nil, err
	}
	linear(yd, a, data[T](m.wo.value), data[T](m.bo.value), B*N, H*Dh, C)

	ok = true
	return y, &Saved{XQ: xq, XKV: xkv, Problem: prob, Attn: att, A: buf.A, cross: cross, owner: m, buf: buf}, nil
}

func backward[T num](ctx context.Context, m *MultiHeadAttention, s *Saved, dyt *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	B, N, M, C := s.XQ.Dim(0), s.XQ.Dim(1), s.XKV.Dim(1), m.p.Dim
	H, Hkv, Dh := m.p.Heads, m.p.KVHeads, m.dh
	xqd, xkvd := data[T](s.XQ), data[T](s.XKV) // (B·N, C), (B·M, C)
	a := data[T](s.A)                          // (B·N, H·Dh)
	dy := data[T](dyt)                         // (B·N, C)
	buf := s.buf
	if err := m.growBackward(ctx, buf); err != nil {
		return nil, nil, err
	}
	// The outputs first, so that once a parameter gradient changes nothing can fail.
	dxq, dxqd, err := alloc[T](B, N, C) // (B·N, C)
	if err != nil {
		return nil, nil, err
	}
	dxkv, dxkvd := dxq, dxqd // self-attention: x fed all three projections, so dx sums them
	if s.cross {
		if dxkv, dxkvd, err = alloc[T](B, M, C); err != nil { // (B·M, C)
			return nil, nil, err
		}
	}

	// B5 inverts F5, y = a·Wo + bo:  da = dy·Woᵀ (dWo and dbo below, once nothing can fail)
	da := data[T](buf.q) // (B·N, H·Dh), F1's q buffer, free since F2
	linearInputGrad(da, dy, data[T](m.wo.value), B*N, H*Dh, C, false)

	// B4 inverts F4, a = merge(O):  dO = split(da)
	splitHeads(data[T](buf.dO), da, B, N, H, Dh) // (B, H, N, Dh)
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("layer: backward: %w", err)
	}

	// B3 inverts F3, the attention call, into the layer's dQ (B, H, N, Dh), dK, dV (B, Hkv, M, Dh)
	g, err := m.attn.Backward(ctx, s.Problem, s.Attn, buf.dO, &spec.Grads{DQ: buf.dQ, DK: buf.dK, DV: buf.dV})
	if err != nil {
		return nil, nil, fmt.Errorf("layer: attention backward: %w", err)
	}
	if g == nil {
		return nil, nil, fmt.Errorf("layer: attention backward returned no result and no error")
	}
	dQ, err := result[T]("attention gradient dQ", g.DQ, B, H, N, Dh)
	if err != nil {
		return nil, nil, err
	}
	dK, err := result[T]("attention gradient dK", g.DK, B, Hkv, M, Dh)
	if err != nil {
		return nil, nil, err
	}
	dV, err := result[T]("attention gradient dV", g.DV, B, Hkv, M, Dh)
	if err != nil {
		return nil, nil, err
	}

	// B5, continued:  dWo += aᵀ·dy, dbo += Σ_rows dy
	linearBackward(m.wo, m.bo, a, dy, B*N, H*Dh, C)

	// B2 inverts F2, the head split:  dq = merge(dQ), dk = merge(dK), dv = merge(dV)
	dq := data[T](buf.q) // (B·N, H·Dh); da is dead
	mergeHeads(dq, dQ, B, N, H, Dh)
	dk := data[T](buf.k) // (B·M, Hkv·Dh)
	mergeHeads(dk, dK, B, M, Hkv, Dh)
	dv := data[T](buf.v) // (B·M, Hkv·Dh)
	mergeHeads(dv, dV, B, M, Hkv, Dh)

	// B1 inverts F1, the input projections:
	//   dWq += xqᵀ·dq,  dbq += Σ dq,  dxq  = dq·Wqᵀ
	//   dWk += xkvᵀ·dk, dbk += Σ dk,  dxkv = dk·Wkᵀ + dv·Wvᵀ  (and the same for v)
	linearBackward(m.wq, m.bq, xqd, dq, B*N, C, H*Dh)
	linearBackward(m.wk, m.bk, xkvd, dk, B*M, C, Hkv*Dh)
	linearBackward(m.wv, m.bv, xkvd, dv, B*M, C, Hkv*Dh)
	linearInputGrad(dxqd, dq, data[T](m.wq.value), B*N, C, H*Dh, false)
	linearInputGrad(dxkvd, dk, data[T](m.wk.value), B*M, C, Hkv*Dh, !s.cross)
	linearInputGrad(dxkvd, dv, data[T](m.wv.value), B*M, C, Hkv*Dh, true)
	if !s.cross {
		return dxq, nil, nil
	}
	return dxq, dxkv, nil
}

// linearBackward adds the weight and bias gradients of out = in·W + b:
// dW (fanIn, fanOut) += inᵀ·dout, db (fanOut) += Σ_rows dout.
func linearBackward[T num](w, b weight, in, dout []T, rows, fanIn, fanOut int) {
	linearWeightGrad(data[T](w.grad), in, dout, rows, fanIn, fanOut)
	if b.grad != nil {
		db := data[T](b.grad)
		for r := range rows {
			for j, x := range dout[r*fanOut : (r+1)*fanOut] {
				db[j] += x
			}
		}
	}
}

// checkInput validates an activation input (B, T, C) and returns it contiguous.
func (m *MultiHeadAttention) checkInput(arg string, x *tensor.Tensor) (*tensor.Tensor, error) {
	if x == nil {
		return nil, argErr(arg, "must not be nil")
	}
	if x.Rank() != 3 {
		return nil, argErr(arg, "rank %d (shape %v), want 3: (B, T, C)", x.Rank(), x.Shape())
	}
	if x.Dim(2) != m.p.Dim {
		return nil, argErr(arg, "shape %v has C = %d, the layer's Dim is %d", x.Shape(), x.Dim(2), m.p.Dim)
	}
	if x.Dim(0) == 0 || x.Dim(1) == 0 {
		return nil, argErr(arg, "shape %v is empty; attention needs B, T ≥ 1", x.Shape())
	}
	if x.DType() != m.p.DType {
		return nil, argErr(arg, "dtype %v, the layer computes in %v", x.DType(), m.p.DType)
	}
	if !x.Storage().Kind().HostVisible() {
		return nil, argErr(arg, "is in %v storage; the layer's projections need host-visible memory", x.Storage().Kind())
	}
	c, _, err := x.Contiguous()
	if err != nil {
		return nil, fmt.Errorf("layer: making %s contiguous: %w", arg, err)
	}
	return c, nil
}

// checkSaved validates Backward's inputs and returns dy contiguous.
func (m *MultiHeadAttention) checkSaved(s *Saved, dy *tensor.Tensor, cross bool) (*tensor.Tensor, error) {
	if s == nil {
		return nil, argErr("saved", "must not be nil")
	}
	if s.owner != m {
		return nil, argErr("saved", "was made by another layer's forward")
	}
	if s.done {
		return nil, argErr("saved", "was already used by a Backward or Release, which released its buffers; run Forward again")
	}
	if s.cross != cross {
		if s.cross {
			return nil, argErr("saved", "comes from ForwardCross; use BackwardCross")
		}
		return nil, argErr("saved", "comes from Forward; use Backward")
	}
	if dy == nil {
		return nil, argErr("dy", "must not be nil")
	}
	want := []int{s.XQ.Dim(0), s.XQ.Dim(1), m.p.Dim}
	if !equalShape(dy.Shape(), want) {
		return nil, argErr("dy", "shape %v, want y's shape %v", dy.Shape(), want)
	}
	if dy.DType() != m.p.DType {
		return nil, argErr("dy", "dtype %v, the layer computes in %v", dy.DType(), m.p.DType)
	}
	if !dy.Storage().Kind().HostVisible() {
		return nil, argErr("dy", "is in %v storage; the layer needs host-visible memory", dy.Storage().Kind())
	}
	c, _, err := dy.Contiguous()
	if err != nil {
		return nil, fmt.Errorf("layer: making dy contiguous: %w", err)
	}
	return c, nil
}
