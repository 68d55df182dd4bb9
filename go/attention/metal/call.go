package metal

import (
	"errors"
	"fmt"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// A call is the GPU side of one Forward or Backward: the buffers it allocated,
// keyed by the plan's binding names, and the commands that fill and run them.
// Every buffer it allocates is released by release, whatever happened.
type call struct {
	dev      device
	buffers  map[string]buffer // by binding name: "Q", "O", "Delta", …
	owned    []buffer          // everything to release
	copies   []command         // blits from private inputs, run first
	dispatch []command
	dummy    buffer // bound where a plan says Unused
}

func newCall(dev device) *call {
	return &call{dev: dev, buffers: map[string]buffer{}}
}

// release closes every buffer the call allocated, and reports the first
// failure (none is expected: closing only drops references).
func (c *call) release() error {
	var errs []error
	for _, b := range c.owned {
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.owned = nil
	return errors.Join(errs...)
}

// alloc allocates n bytes (at least 16, rounded up to 16 so that blit sizes stay
// multiples of 4) and takes ownership.
func (c *call) alloc(what string, n int, mode metalrt.StorageMode) (buffer, error) {
	n = max(16, (n+15)/16*16)
	b, err := c.dev.NewBuffer(n, mode)
	if err != nil {
		return nil, fmt.Errorf("allocating %d bytes for %s: %w", n, what, err)
	}
	c.owned = append(c.owned, b)
	return b, nil
}

// upload puts data in a new shared buffer.
func (c *call) upload(what string, data []byte) (buffer, error) {
	b, err := c.alloc(what, len(data), metalrt.Shared)
	if err != nil {
		return nil, err
	}
	copy(b.Bytes(), data)
	return b, nil
}

// tensorInput makes a buffer holding the view t as the plan binds it: the bytes
// from the view's first element to its last, at offset 0 of the buffer. A
// host-visible tensor is copied by the CPU now; a private one (a Metal buffer,
// see BufferStorage) by a blit at the start of the command buffer. Inputs are
// only ever read.
func (c *call) tensorInput(name string, t *tensor.Tensor, bytes int) (buffer, error) {
	off := t.Offset() * t.DType().Size()
	st := t.Storage()
	if host := st.Bytes(); host != nil {
		if off < 0 || off+bytes > len(host) {
			return nil, fmt.Errorf("%s: view bytes [%d, %d) outside its storage of %d bytes", name, off, off+bytes, len(host))
		}
		return c.upload(name, host[off:off+bytes])
	}
	bs, ok := st.(BufferStorage)
	if !ok {
		return nil, fmt.Errorf("%s: %v storage %T is not a Metal buffer", name, st.Kind(), st)
	}
	src, err := c.dev.External(bs.MetalBuffer())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	size := (bytes + 3) / 4 * 4
	if off%4 != 0 || off+size > src.Len() {
		return nil, fmt.Errorf("%s: private view bytes [%d, %d) cannot be blitted from a %d-byte buffer (offsets and sizes must be multiples of 4)", name, off, off+size, src.Len())
	}
	dst, err := c.alloc(name, size, metalrt.Private)
	if err != nil {
		return nil, err
	}
	c.copies = append(c.copies, command{kind: cmdCopy, src: src, srcOffset: off, dst: dst, size: size})
	return dst, nil
}

// binder supplies the buffer for one binding name the first time a dispatch
// asks for it.
type binder func(b mslplan.Binding) (buffer, error)

// addDispatch appends d, binding each of its buffers: Params by setBytes,
// Unused ones to a dummy buffer, the rest from the call's buffers or, the first
// time a name appears, from bind.
func (c *call) addDispatch(d mslplan.Dispatch, p pipeline, params []byte, bind binder) error {
	cmd := command{kind: cmdDispatch, pipeline: p, groups: d.Groups, threads: d.Threads}
	for _, b := range d.Buffers {
		switch {
		case b.Index == mslplan.BufParams:
			cmd.bytes = append(cmd.bytes, bytesArg{index: b.Index, data: params})
			continue
		case b.Unused:
			if c.dummy == nil {
				dummy, err := c.alloc("an unused binding", 16, metalrt.Private)
				if err != nil {
					return err
				}
				c.dummy = dummy
			}
			cmd.buffers = append(cmd.buffers, bufferArg{index: b.Index, buf: c.dummy})
			continue
		}
		buf, ok := c.buffers[b.Name]
		if !ok {
			var err error
			if buf, err = bind(b); err != nil {
				return err
			}
			c.buffers[b.Name] = buf
		}
		if need := b.Bytes; need > buf.Len() {
			return fmt.Errorf("kernel %s binds %s with %d bytes; the buffer has %d", d.Name, b.Name, need, buf.Len())
		}
		cmd.buffers = append(cmd.buffers, bufferArg{index: b.Index, buf: buf})
	}
	c.dispatch = append(c.dispatch, cmd)
	return nil
}

// commands returns the whole command buffer: input blits, then dispatches.
func (c *call) commands() []command {
	return append(append([]command(nil), c.copies...), c.dispatch...)
}

// download copies n bytes of an output buffer into a new host tensor.
func download(b buffer, dt tensor.DType, shape ...int) (*tensor.Tensor, error) {
	t, err := tensor.New(dt, shape...)
	if err != nil {
		return nil, err
	}
	dst := t.Storage().Bytes()
	src := b.Bytes()
	if len(src) < len(dst) {
		return nil, fmt.Errorf("output buffer has %d bytes, want %d", len(src), len(dst))
	}
	copy(dst, src)
	return t, nil
}
