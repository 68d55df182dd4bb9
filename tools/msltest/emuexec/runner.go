package emuexec

import (
	"fmt"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// Runner launches a plan's dispatches on the emulator.
type Runner struct {
	// Options are passed to every launch (thread order, seed, timeout). Constants, when
	// empty, are the dispatch's own (mslplan.Dispatch.Constants), as the Metal executor
	// specialises its pipelines; Generic launches with none instead.
	Options mslemu.Options
	// Generic launches every kernel without function constants: each kernel then takes
	// its defaults, the general code path that handles every option at run time.
	Generic bool
}

// Poison fills an output buffer so that an element a kernel forgets to write reads as NaN
// (0xFFFF… is a NaN in float32, float16 and bfloat16).
func Poison(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

// viewBytes returns a copy of the bytes a binding of tensor t covers: its storage from the
// view's offset on, as Metal binds a buffer with an offset. A copy, so that the caller's
// tensors stay untouched even if a kernel wrongly wrote an input.
func viewBytes(t *tensor.Tensor, b mslplan.Binding) ([]byte, error) {
	all := t.Storage().Bytes()
	if b.Offset < 0 || b.Offset+b.Bytes > len(all) {
		return nil, fmt.Errorf("emuexec: binding %s needs bytes [%d, %d), the storage has %d", b.Name, b.Offset, b.Offset+b.Bytes, len(all))
	}
	return append([]byte(nil), all[b.Offset:b.Offset+b.Bytes]...), nil
}

// Launch binds bufs (by buffer index) to d's bindings and runs d. Every binding the
// problem uses must have a buffer of at least Binding.Bytes; unused ones stay unbound, so
// a kernel that touches them fails.
func (r Runner) Launch(d mslplan.Dispatch, bufs map[int][]byte) error {
	slots := make([]mslemu.Buffer, mslplan.NumBuffers)
	for _, b := range d.Buffers {
		if b.Unused {
			continue
		}
		data, ok := bufs[b.Index]
		if !ok || len(data) < b.Bytes {
			return fmt.Errorf("emuexec: %s: binding %s (%d) has %d bytes, wants %d", d.Name, b.Name, b.Index, len(data), b.Bytes)
		}
		slots[b.Index] = mslemu.Buffer{Data: data}
	}
	o := r.Options
	if len(o.Constants) == 0 && !r.Generic {
		o.Constants = Constants(d.Constants)
	}
	return mslemu.LaunchWith(d.Name, d.Groups, d.Threads, slots, o)
}

// Constants converts a plan's function constants to the emulator's.
func Constants(cs []mslplan.Constant) []mslemu.Constant {
	out := make([]mslemu.Constant, len(cs))
	for i, c := range cs {
		out[i] = mslemu.Constant{Index: c.Index, Value: c.Value}
	}
	return out
}

// Binding returns d's binding at buffer index idx (Index −1 when d has none).
func Binding(d mslplan.Dispatch, idx int) mslplan.Binding {
	for _, b := range d.Buffers {
		if b.Index == idx {
			return b
		}
	}
	return mslplan.Binding{Index: -1}
}

// inputBuffers builds the buffers every tiled kernel reads: Q, K, V, the mask, the
// lengths and Params.
func inputBuffers(pl *mslplan.Plan, p *spec.Problem) (map[int][]byte, error) {
	bufs := map[int][]byte{mslplan.BufParams: pl.Params.Encode()}
	for _, x := range []struct {
		t   *tensor.Tensor
		idx int
	}{{p.Q, mslplan.BufQ}, {p.K, mslplan.BufK}, {p.V, mslplan.BufV}} {
		b, err := viewBytes(x.t, Binding(pl.Forward, x.idx))
		if err != nil {
			return nil, err
		}
		bufs[x.idx] = b
	}
	if p.Mask != nil {
		bufs[mslplan.BufMask] = mslplan.AppendMask(nil, p.Mask)
	}
	if p.SeqLensQ != nil {
		bufs[mslplan.BufLensQ] = mslplan.AppendLens(nil, p.SeqLensQ)
	}
	if p.SeqLensK != nil {
		bufs[mslplan.BufLensK] = mslplan.AppendLens(nil, p.SeqLensK)
	}
	return bufs, nil
}

// tensorFrom wraps bytes as a contiguous host tensor.
func tensorFrom(b []byte, dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := tensor.New(dt, shape...)
	if err != nil {
		return nil, err
	}
	if len(b) != t.Bytes() {
		return nil, fmt.Errorf("emuexec: %d bytes for a %v tensor of shape %v", len(b), dt, shape)
	}
	copy(t.Storage().Bytes(), b)
	return t, nil
}

// Forward runs pl's forward dispatch on p and returns O (p's dtype) and L (float32),
// both contiguous. pl must have been planned for p.
func (r Runner) Forward(pl *mslplan.Plan, p *spec.Problem) (*spec.Saved, error) {
	bufs, err := inputBuffers(pl, p)
	if err != nil {
		return nil, err
	}
	d := p.Dims()
	bufs[mslplan.BufO] = Poison(Binding(pl.Forward, mslplan.BufO).Bytes)
	bufs[mslplan.BufL] = Poison(Binding(pl.Forward, mslplan.BufL).Bytes)
	if err := r.Launch(pl.Forward, bufs); err != nil {
		return nil, err
	}
	o, err := tensorFrom(bufs[mslplan.BufO], pl.DType, d.B, d.H, d.N, d.D) // [B, H, N, D]
	if err != nil {
		return nil, err
	}
	l, err := tensorFrom(bufs[mslplan.BufL], tensor.Float32, d.B, d.H, d.N) // [B, H, N]
	if err != nil {
		return nil, err
	}
	return &spec.Saved{O: o, L: l}, nil
}

// Backward runs pl's Delta, dK/dV (and, with pl.DKDVHeads, the reduction of the per-head
// partials) and dQ dispatches and returns the gradients (in
// pl.GradDType, contiguous) and Delta ([B, H, N] float32, for tests). s.O and dO are read
// through the plan's bindings: when they are views other than contiguous tensors at
// offset 0, pl must have been planned with them (mslplan.Request.O, DO). s.L may be
// float32 or float64, any layout.
func (r Runner) Backward(pl *mslplan.Plan, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, []float32, error) {
	bufs, err := inputBuffers(pl, p)
	if err != nil {
		return nil, nil, err
	}
	d := p.Dims()
	if bufs[mslplan.BufO], err = viewBytes(s.O, Binding(pl.Delta, mslplan.BufO)); err != nil {
		return nil, nil, err
	}
	if bufs[mslplan.BufDO], err = viewBytes(dO, Binding(pl.Delta, mslplan.BufDO)); err != nil {
		return nil, nil, err
	}
	l32 := s.L
	if l32.DType() != tensor.Float32 {
		if l32, err = s.L.Convert(tensor.Float32); err != nil {
			return nil, nil, err
		}
	}
	lc, _, err := l32.Contiguous()
	if err != nil {
		return nil, nil, err
	}
	bufs[mslplan.BufL] = append([]byte(nil), lc.Storage().Bytes()[lc.Offset()*4:][:lc.Bytes()]...)
	bufs[mslplan.BufDelta] = Poison(Binding(pl.Delta, mslplan.BufDelta).Bytes)
	if err := r.Launch(pl.Delta, bufs); err != nil {
		return nil, nil, err
	}
	final := pl.DKDV // the dispatch that writes dK and dV
	if pl.DKDVHeads {
		// dK/dV per query head into float32 partials, then the reduction into dK and dV.
		// Poisoned like the outputs: a partial element the kernel forgets shows as NaN.
		bufs[mslplan.BufDKPart] = Poison(Binding(pl.DKDV, mslplan.BufDKPart).Bytes)
		bufs[mslplan.BufDVPart] = Poison(Binding(pl.DKDV, mslplan.BufDVPart).Bytes)
		if err := r.Launch(pl.DKDV, bufs); err != nil {
			return nil, nil, err
		}
		final = pl.Reduce
	}
	bufs[mslplan.BufDK] = Poison(Binding(final, mslplan.BufDK).Bytes)
	bufs[mslplan.BufDV] = Poison(Binding(final, mslplan.BufDV).Bytes)
	if err := r.Launch(final, bufs); err != nil {
		return nil, nil, err
	}
	bufs[mslplan.BufDQ] = Poison(Binding(pl.DQ, mslplan.BufDQ).Bytes)
	if err := r.Launch(pl.DQ, bufs); err != nil {
		return nil, nil, err
	}
	g := &spec.Grads{}
	if g.DQ, err = tensorFrom(bufs[mslplan.BufDQ], pl.GradDType, d.B, d.H, d.N, d.D); err != nil { // [B, H, N, D]
		return nil, nil, err
	}
	if g.DK, err = tensorFrom(bufs[mslplan.BufDK], pl.GradDType, d.B, d.Hkv, d.M, d.D); err != nil { // [B, Hkv, M, D]
		return nil, nil, err
	}
	if g.DV, err = tensorFrom(bufs[mslplan.BufDV], pl.GradDType, d.B, d.Hkv, d.M, d.D); err != nil { // [B, Hkv, M, D]
		return nil, nil, err
	}
	return g, mslemu.BytesFloat32(bufs[mslplan.BufDelta]), nil
}
