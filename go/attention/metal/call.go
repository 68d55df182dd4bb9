package metal

import (
	"errors"
	"fmt"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// Copy kinds the executor counts (fixed strings, so CopyStats stays bounded). Tensors
// already in a buffer of this device are bound where they are and counted nowhere.
const (
	copyUpload        = "metal: upload host→shared"            // a host input copied into a pooled shared buffer
	copyUploadAux     = "metal: upload mask and lengths"       // the mask and per-batch lengths, as the kernels read them
	copyConvertL      = "metal: Saved.L to contiguous float32" // a float64 or strided L made readable
	copyToDestination = "metal: copy to destination"           // a result copied into a caller's tensor that could not be bound
	copyManagedModify = "metal: didModifyRange (managed input)"
	copyManagedSync   = "metal: synchronizeResource (managed output)"
)

// A call is the GPU side of one Forward or Backward: the buffers it binds, keyed by the
// plan's binding names, and the commands that run them. Pooled buffers go back to the
// pool when the call ends (or are closed when the GPU may still use them); output
// storage it allocated is closed if the call fails.
type call struct {
	e        *Executor
	bound    map[string]binding
	pooled   []pooledBuffer
	outputs  []*allocator.MetalStorage // allocated here; closed on failure
	dispatch []command
	post     []command // synchronizations of managed outputs, after the dispatches
	dummy    buffer
}

type binding struct {
	buf    buffer
	offset int
}

type pooledBuffer struct {
	buf  buffer
	mode metalrt.StorageMode
}

func newCall(e *Executor) *call { return &call{e: e, bound: map[string]binding{}} }

// finish ends the call. ok: the command buffer completed; pooled buffers go back to the
// pool. Otherwise output storage allocated for the call is closed, and pooled buffers
// go back too, unless gpuMayRun (a timeout or a lost device: the GPU may still be using
// them), in which case they are closed — Metal keeps them alive until it is done.
func (c *call) finish(ok, gpuMayRun bool) {
	for _, p := range c.pooled {
		if gpuMayRun {
			p.buf.Close()
		} else {
			c.e.pool.put(p.buf, p.mode)
		}
	}
	c.pooled = nil
	if !ok {
		for _, o := range c.outputs {
			o.Close()
		}
	}
	c.outputs = nil
}

// get takes a buffer of at least n bytes in mode from the pool.
func (c *call) get(what string, n int, mode metalrt.StorageMode) (buffer, error) {
	b, err := c.e.pool.get(max(n, 16), mode)
	if err != nil {
		return nil, fmt.Errorf("allocating %d bytes of %v memory for %s: %w", n, mode, what, err)
	}
	c.pooled = append(c.pooled, pooledBuffer{b, mode})
	return b, nil
}

// upload copies data into a pooled shared buffer, counted under kind.
func (c *call) upload(what, kind string, data []byte) (binding, error) {
	b, err := c.get(what, len(data), metalrt.Shared)
	if err != nil {
		return binding{}, err
	}
	copy(b.Bytes(), data)
	c.e.counts.Add(kind, int64(len(data)))
	return binding{buf: b}, nil
}

// metalStorage returns t's storage when it is a Metal buffer of this executor's device.
func (c *call) metalStorage(t *tensor.Tensor) (*allocator.MetalStorage, bool) {
	ms, ok := t.Storage().(*allocator.MetalStorage)
	if !ok || ms.Device().ID() != c.e.dev.ID() {
		return nil, false
	}
	return ms, true
}

// input binds the view t as the plan binds it (b.Offset bytes into its storage, b.Bytes
// long). A tensor already in a buffer of this device is bound where it is, at its byte
// offset, with no copy; for managed memory the bound range is first marked modified
// (didModifyRange), since the host may have written it. Any other host-visible tensor is
// uploaded into a pooled shared buffer (the view's span, at offset 0). Inputs are only
// read.
func (c *call) input(name string, t *tensor.Tensor, b mslplan.Binding) (binding, error) {
	if ms, ok := c.metalStorage(t); ok {
		if b.Offset < 0 || b.Offset+b.Bytes > ms.Buffer().Len() {
			return binding{}, fmt.Errorf("%s: view bytes [%d, %d) outside its %d-byte buffer", name, b.Offset, b.Offset+b.Bytes, ms.Buffer().Len())
		}
		if ms.Kind() == tensor.Managed {
			if err := ms.Buffer().DidModify(b.Offset, b.Bytes); err != nil {
				return binding{}, fmt.Errorf("%s: %w", name, err)
			}
			c.e.counts.Add(copyManagedModify, int64(b.Bytes))
		}
		return binding{buf: ms.Buffer(), offset: b.Offset}, nil
	}
	host := t.Storage().Bytes()
	if host == nil {
		return binding{}, fmt.Errorf("%s: %v storage %T is neither host visible nor a buffer of %s", name, t.Storage().Kind(), t.Storage(), c.e.dev.Name())
	}
	if b.Offset < 0 || b.Offset+b.Bytes > len(host) {
		return binding{}, fmt.Errorf("%s: view bytes [%d, %d) outside its storage of %d bytes", name, b.Offset, b.Offset+b.Bytes, len(host))
	}
	return c.upload(name, copyUpload, host[b.Offset:b.Offset+b.Bytes])
}

// output is where a kernel writes one result.
type output struct {
	t     *tensor.Tensor // the result: dst itself, or new storage
	dst   *tensor.Tensor // the caller's destination, when it could not be bound
	bound binding
}

// output prepares the result of a binding: a caller's destination in a buffer of this
// device, contiguous and of the kernel's dtype, is bound in place; otherwise new storage
// in the policy's mode is allocated (shared when it must then be copied into a
// destination the host reads). Managed results are synchronised for the host at the end
// of the command buffer.
func (c *call) output(name string, dst *tensor.Tensor, dt tensor.DType, shape []int, b mslplan.Binding) (*output, error) {
	if dst != nil && dst.DType() == dt && dst.IsContiguous() {
		if ms, ok := c.metalStorage(dst); ok {
			off := dst.Offset() * dt.Size()
			if off%4 == 0 && off+b.Bytes <= ms.Buffer().Len() {
				c.syncIfManaged(ms)
				return &output{t: dst, bound: binding{buf: ms.Buffer(), offset: off}}, nil
			}
		}
	}
	strat := c.e.outputs
	if dst != nil {
		strat = c.e.shared // copied into dst by the CPU afterwards
	}
	st, err := strat.AllocMetal(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.outputs = append(c.outputs, st)
	t, err := tensor.FromStorage(st, dt, shape, tensor.ContiguousStrides(shape), 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.syncIfManaged(st)
	return &output{t: t, dst: dst, bound: binding{buf: st.Buffer()}}, nil
}

func (c *call) syncIfManaged(ms *allocator.MetalStorage) {
	if ms.Kind() == tensor.Managed {
		c.post = append(c.post, command{kind: cmdSync, src: ms.Buffer()})
		c.e.counts.Add(copyManagedSync, int64(ms.Len()))
	}
}

// deliver returns the result: the output tensor, or, for a destination that could not
// be bound, the destination after a copy (counted).
func (c *call) deliver(o *output) (*tensor.Tensor, error) {
	if o.dst == nil {
		return o.t, nil
	}
	if err := o.t.CopyInto(o.dst); err != nil {
		return nil, err
	}
	c.e.counts.Add(copyToDestination, int64(o.t.Bytes()))
	// The staging result is the call's own: release it now rather than at collection.
	if ms, ok := o.t.Storage().(*allocator.MetalStorage); ok {
		ms.Close()
	}
	return o.dst, nil
}

// binder supplies the binding for one name the first time a dispatch asks for it.
type binder func(b mslplan.Binding) (binding, error)

// addDispatch appends d with pipeline p, binding each of its buffers: Params by
// setBytes, Unused ones to a pooled dummy buffer, the rest from the call's bindings or,
// the first time a name appears, from bind.
func (c *call) addDispatch(d mslplan.Dispatch, p pipeline, params []byte, bind binder) error {
	cmd := command{kind: cmdDispatch, pipeline: p, name: d.Name, groups: d.Groups, threads: d.Threads}
	for _, b := range d.Buffers {
		switch {
		case b.Index == mslplan.BufParams:
			cmd.bytes = append(cmd.bytes, bytesArg{index: b.Index, data: params})
			continue
		case b.Unused:
			if c.dummy == nil {
				dummy, err := c.get("an unused binding", 16, c.e.policy.Mode(allocator.RoleIntermediate, c.e.dev.HasUnifiedMemory()))
				if err != nil {
					return err
				}
				c.dummy = dummy
			}
			cmd.buffers = append(cmd.buffers, bufferArg{index: b.Index, buf: c.dummy})
			continue
		}
		bd, ok := c.bound[b.Name]
		if !ok {
			var err error
			if bd, err = bind(b); err != nil {
				return err
			}
			c.bound[b.Name] = bd
		}
		if need := bd.offset + b.Bytes; need > bd.buf.Len() {
			return fmt.Errorf("kernel %s binds %s with %d bytes from offset %d; the buffer has %d", d.Name, b.Name, b.Bytes, bd.offset, bd.buf.Len())
		}
		cmd.buffers = append(cmd.buffers, bufferArg{index: b.Index, buf: bd.buf, offset: bd.offset, size: b.Bytes, written: b.Written})
	}
	c.dispatch = append(c.dispatch, cmd)
	return nil
}

// commands returns the whole command buffer: the dispatches, then synchronizations.
func (c *call) commands() []command {
	return append(append([]command(nil), c.dispatch...), c.post...)
}

// gpuMayStillRun reports whether err leaves the GPU possibly still using the call's
// buffers (the wait limit passed, or the device was lost mid-call).
func gpuMayStillRun(err error) bool {
	return errors.Is(err, metalrt.ErrTimeout) || errors.Is(err, metalrt.ErrDeviceLost)
}
