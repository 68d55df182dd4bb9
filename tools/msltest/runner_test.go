package msltest

import (
	"fmt"
	"testing"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
)

// requireEmulator skips the test when the emulator cannot run (no cgo, so no C++
// compiler through it).
func requireEmulator(t *testing.T) {
	t.Helper()
	if !mslemu.Available() {
		t.Skip("the MSL emulator is unavailable (it runs on Linux through cgo with a C++17 compiler, g++ ≥ 12): skipping the kernel tests")
	}
}

// runner launches a plan's dispatches on the emulator, the way the Metal executor
// launches them on a GPU: one byte buffer per binding, Params at BufParams.
type runner struct {
	opts mslemu.Options
}

// poison fills an output buffer so that an element the kernel forgets to write reads
// as NaN (0xFFFF… is a NaN in float32, float16 and bfloat16).
func poison(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xFF
	}
	return b
}

// viewBytes returns the bytes a binding of tensor t covers: its storage from the view's
// offset on, as Metal binds a buffer with an offset.
func viewBytes(t *tensor.Tensor, b mslplan.Binding) ([]byte, error) {
	all := t.Storage().Bytes()
	if b.Offset+b.Bytes > len(all) {
		return nil, fmt.Errorf("binding %s needs bytes [%d, %d), the storage has %d", b.Name, b.Offset, b.Offset+b.Bytes, len(all))
	}
	// A copy: the emulator copies in anyway, and the caller's tensors stay untouched
	// even if a kernel wrongly wrote an input.
	return append([]byte(nil), all[b.Offset:b.Offset+b.Bytes]...), nil
}

// launch binds bufs (by buffer index) to d's bindings and runs it. Every binding the
// problem uses must have a buffer of at least Binding.Bytes.
func (r runner) launch(d mslplan.Dispatch, bufs map[int][]byte) error {
	slots := make([]mslemu.Buffer, mslplan.NumBuffers)
	for _, b := range d.Buffers {
		data, ok := bufs[b.Index]
		if b.Unused {
			continue // leave the slot unbound: the kernel must not touch it
		}
		if !ok || len(data) < b.Bytes {
			return fmt.Errorf("%s: binding %s (%d) has %d bytes, wants %d", d.Name, b.Name, b.Index, len(data), b.Bytes)
		}
		slots[b.Index] = mslemu.Buffer{Data: data}
	}
	return mslemu.LaunchWith(d.Name, d.Groups, d.Threads, slots, r.opts)
}

// inputBuffers builds the buffers every tiled kernel reads: Q, K, V, the mask, the
// lengths and Params.
func inputBuffers(pl *mslplan.Plan, p *spec.Problem) (map[int][]byte, error) {
	bufs := map[int][]byte{mslplan.BufParams: pl.Params.Encode()}
	for _, x := range []struct {
		t   *tensor.Tensor
		idx int
	}{{p.Q, mslplan.BufQ}, {p.K, mslplan.BufK}, {p.V, mslplan.BufV}} {
		b, err := viewBytes(x.t, binding(pl.Forward, x.idx))
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

func binding(d mslplan.Dispatch, idx int) mslplan.Binding {
	for _, b := range d.Buffers {
		if b.Index == idx {
			return b
		}
	}
	return mslplan.Binding{Index: -1}
}

// tensorFrom wraps bytes as a contiguous host tensor.
func tensorFrom(b []byte, dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := tensor.New(dt, shape...)
	if err != nil {
		return nil, err
	}
	if len(b) != t.Bytes() {
		return nil, fmt.Errorf("%d bytes for a %v tensor of shape %v", len(b), dt, shape)
	}
	copy(t.Storage().Bytes(), b)
	return t, nil
}

// forward runs the forward dispatch and returns O and L.
func (r runner) forward(pl *mslplan.Plan, p *spec.Problem) (*spec.Saved, error) {
	bufs, err := inputBuffers(pl, p)
	if err != nil {
		return nil, err
	}
	d := p.Dims()
	bufs[mslplan.BufO] = poison(binding(pl.Forward, mslplan.BufO).Bytes)
	bufs[mslplan.BufL] = poison(binding(pl.Forward, mslplan.BufL).Bytes)
	if err := r.launch(pl.Forward, bufs); err != nil {
		return nil, err
	}
	o, err := tensorFrom(bufs[mslplan.BufO], pl.DType, d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, err
	}
	l, err := tensorFrom(bufs[mslplan.BufL], tensor.Float32, d.B, d.H, d.N)
	if err != nil {
		return nil, err
	}
	return &spec.Saved{O: o, L: l}, nil
}

// backward runs Delta, dK/dV and dQ and returns the gradients (and Delta, for tests).
// s.L must be the contiguous float32 L of a forward of p; s.O and dO are read through
// the plan's bindings (the plan must have been made with them when they are views).
func (r runner) backward(pl *mslplan.Plan, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, []float32, error) {
	bufs, err := inputBuffers(pl, p)
	if err != nil {
		return nil, nil, err
	}
	d := p.Dims()
	if bufs[mslplan.BufO], err = viewBytes(s.O, binding(pl.Delta, mslplan.BufO)); err != nil {
		return nil, nil, err
	}
	if bufs[mslplan.BufDO], err = viewBytes(dO, binding(pl.Delta, mslplan.BufDO)); err != nil {
		return nil, nil, err
	}
	lc, _, err := s.L.Contiguous()
	if err != nil {
		return nil, nil, err
	}
	bufs[mslplan.BufL] = append([]byte(nil), lc.Storage().Bytes()[lc.Offset()*4:][:lc.Bytes()]...)
	bufs[mslplan.BufDelta] = poison(binding(pl.Delta, mslplan.BufDelta).Bytes)
	if err := r.launch(pl.Delta, bufs); err != nil {
		return nil, nil, err
	}
	bufs[mslplan.BufDK] = poison(binding(pl.DKDV, mslplan.BufDK).Bytes)
	bufs[mslplan.BufDV] = poison(binding(pl.DKDV, mslplan.BufDV).Bytes)
	if err := r.launch(pl.DKDV, bufs); err != nil {
		return nil, nil, err
	}
	bufs[mslplan.BufDQ] = poison(binding(pl.DQ, mslplan.BufDQ).Bytes)
	if err := r.launch(pl.DQ, bufs); err != nil {
		return nil, nil, err
	}
	g := &spec.Grads{}
	if g.DQ, err = tensorFrom(bufs[mslplan.BufDQ], pl.GradDType, d.B, d.H, d.N, d.D); err != nil {
		return nil, nil, err
	}
	if g.DK, err = tensorFrom(bufs[mslplan.BufDK], pl.GradDType, d.B, d.Hkv, d.M, d.D); err != nil {
		return nil, nil, err
	}
	if g.DV, err = tensorFrom(bufs[mslplan.BufDV], pl.GradDType, d.B, d.Hkv, d.M, d.D); err != nil {
		return nil, nil, err
	}
	return g, mslemu.BytesFloat32(bufs[mslplan.BufDelta]), nil
}
