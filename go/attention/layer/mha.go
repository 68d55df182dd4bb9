package layer

import (
	"context"
	"fmt"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Forward is self-attention: y = MHA(x, x). x is (B, T, C) in the layer's dtype; y is a new
// (B, T, C) tensor. x is not modified; keep it unmodified until Backward.
func (m *MultiHeadAttention) Forward(x *tensor.Tensor) (*tensor.Tensor, *Saved, error) {
	xc, err := m.checkInput("x", x)
	if err != nil {
		return nil, nil, err
	}
	return m.forward(xc, xc, false)
}

// ForwardCross is cross-attention: queries from xq (B, N, C), keys and values from
// xkv (B, M, C); y is (B, N, C). With Causal set, the diagonal is aligned as
// Params.Causal says (bottom-right puts the last query on the last key).
func (m *MultiHeadAttention) ForwardCross(xq, xkv *tensor.Tensor) (*tensor.Tensor, *Saved, error) {
	xqc, err := m.checkInput("xq", xq)
	if err != nil {
		return nil, nil, err
	}
	xkvc, err := m.checkInput("xkv", xkv)
	if err != nil {
		return nil, nil, err
	}
	if xkvc.Dim(0) != xqc.Dim(0) {
		return nil, nil, argErr("xkv", "batch %d differs from xq's %d", xkvc.Dim(0), xqc.Dim(0))
	}
	return m.forward(xqc, xkvc, true)
}

// Backward inverts Forward: given dy = ∂loss/∂y (B, T, C) it returns dx (B, T, C) and ADDS
// the parameter gradients into the gradient buffers.
func (m *MultiHeadAttention) Backward(s *Saved, dy *tensor.Tensor) (*tensor.Tensor, error) {
	dy, err := m.checkSaved(s, dy, false)
	if err != nil {
		return nil, err
	}
	dx, _, err := m.backward(s, dy)
	return dx, err
}

// BackwardCross inverts ForwardCross: given dy (B, N, C) it returns dxq (B, N, C) and
// dxkv (B, M, C) and adds the parameter gradients into the gradient buffers.
func (m *MultiHeadAttention) BackwardCross(s *Saved, dy *tensor.Tensor) (dxq, dxkv *tensor.Tensor, err error) {
	if dy, err = m.checkSaved(s, dy, true); err != nil {
		return nil, nil, err
	}
	return m.backward(s, dy)
}

func (m *MultiHeadAttention) forward(xq, xkv *tensor.Tensor, cross bool) (*tensor.Tensor, *Saved, error) {
	if m.p.DType == tensor.Float64 {
		return forward[float64](m, xq, xkv, cross)
	}
	return forward[float32](m, xq, xkv, cross)
}

func (m *MultiHeadAttention) backward(s *Saved, dy *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	if m.p.DType == tensor.Float64 {
		return backward[float64](m, s, dy)
	}
	return backward[float32](m, s, dy)
}

// forward and backward below are mirrored pairs: backward's steps run in reverse order and
// each names the forward step it inverts.

func forward[T num](m *MultiHeadAttention, xq, xkv *tensor.Tensor, cross bool) (*tensor.Tensor, *Saved, error) {
	B, N, M, C := xq.Dim(0), xq.Dim(1), xkv.Dim(1), m.p.Dim
	H, Hkv, Dh := m.p.Heads, m.p.KVHeads, m.dh
	xqd, xkvd := data[T](xq), data[T](xkv) // (B·N, C), (B·M, C)

	// F1. input projections
	q := make([]T, B*N*H*Dh) // (B·N, H·Dh)
	linear(q, xqd, data[T](m.wq.value), data[T](m.bq.value), B*N, C, H*Dh)
	k := make([]T, B*M*Hkv*Dh) // (B·M, Hkv·Dh)
	linear(k, xkvd, data[T](m.wk.value), data[T](m.bk.value), B*M, C, Hkv*Dh)
	v := make([]T, B*M*Hkv*Dh) // (B·M, Hkv·Dh)
	linear(v, xkvd, data[T](m.wv.value), data[T](m.bv.value), B*M, C, Hkv*Dh)

	// F2. split heads: (B, T, heads, Dh) → (B, heads, T, Dh)
	Q, qd, err := alloc[T](B, H, N, Dh)
	if err != nil {
		return nil, nil, err
	}
	K, kd, err := alloc[T](B, Hkv, M, Dh)
	if err != nil {
		return nil, nil, err
	}
	V, vd, err := alloc[T](B, Hkv, M, Dh)
	if err != nil {
		return nil, nil, err
	}
	splitHeads(qd, q, B, N, H, Dh)
	splitHeads(kd, k, B, M, Hkv, Dh)
	splitHeads(vd, v, B, M, Hkv, Dh)

	// F3. attention: O = softmax(Q·Kᵀ/sqrt(Dh) ∘ mask) ∘ dropout · V
	prob := &spec.Problem{Q: Q, K: K, V: V, Options: m.options()}
	att, err := m.attn.Forward(context.TODO(), prob, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("layer: attention forward: %w", err)
	}
	o, err := result[T]("attention output O", att.O, B, H, N, Dh) // (B, H, N, Dh)
	if err != nil {
		return nil, nil, err
	}

	// F4. merge heads: (B, H, N, Dh) → (B, N, H·Dh)
	A, a, err := alloc[T](B, N, H*Dh)
	if err != nil {
		return nil, nil, err
	}
	mergeHeads(a, o, B, N, H, Dh)

	// F5. output projection
	y, yd, err := alloc[T](B, N, C) // (B·N, C)
	if err != nil {
		return nil, nil, err
	}
	linear(yd, a, data[T](m.wo.value), data[T](m.bo.value), B*N, H*Dh, C)

	return y, &Saved{XQ: xq, XKV: xkv, Problem: prob, Attn: att, A: A, cross: cross, owner: m}, nil
}

func backward[T num](m *MultiHeadAttention, s *Saved, dyt *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	B, N, M, C := s.XQ.Dim(0), s.XQ.Dim(1), s.XKV.Dim(1), m.p.Dim
	H, Hkv, Dh := m.p.Heads, m.p.KVHeads, m.dh
	xqd, xkvd := data[T](s.XQ), data[T](s.XKV) // (B·N, C), (B·M, C)
	a := data[T](s.A)                          // (B·N, H·Dh)
	dy := data[T](dyt)                         // (B·N, C)

	// B5 inverts F5, y = a·Wo + bo:  dWo += aᵀ·dy, dbo += Σ_rows dy, da = dy·Woᵀ
	linearBackward(m.wo, m.bo, a, dy, B*N, H*Dh, C)
	da := make([]T, B*N*H*Dh) // (B·N, H·Dh)
	linearInputGrad(da, dy, data[T](m.wo.value), B*N, H*Dh, C, false)

	// B4 inverts F4, a = merge(O):  dO = split(da)
	dO, dod, err := alloc[T](B, H, N, Dh)
	if err != nil {
		return nil, nil, err
	}
	splitHeads(dod, da, B, N, H, Dh)

	// B3 inverts F3, the attention call
	g, err := m.attn.Backward(context.TODO(), s.Problem, s.Attn, dO, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("layer: attention backward: %w", err)
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

	// B2 inverts F2, the head split:  dq = merge(dQ), dk = merge(dK), dv = merge(dV)
	dq := make([]T, B*N*H*Dh) // (B·N, H·Dh)
	mergeHeads(dq, dQ, B, N, H, Dh)
	dk := make([]T, B*M*Hkv*Dh) // (B·M, Hkv·Dh)
	mergeHeads(dk, dK, B, M, Hkv, Dh)
	dv := make([]T, B*M*Hkv*Dh) // (B·M, Hkv·Dh)
	mergeHeads(dv, dV, B, M, Hkv, Dh)

	// B1 inverts F1, the input projections:
	//   dWq += xqᵀ·dq,  dbq += Σ dq,  dxq  = dq·Wqᵀ
	//   dWk += xkvᵀ·dk, dbk += Σ dk,  dxkv = dk·Wkᵀ + dv·Wvᵀ  (and the same for v)
	linearBackward(m.wq, m.bq, xqd, dq, B*N, C, H*Dh)
	linearBackward(m.wk, m.bk, xkvd, dk, B*M, C, Hkv*Dh)
	linearBackward(m.wv, m.bv, xkvd, dv, B*M, C, Hkv*Dh)
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
