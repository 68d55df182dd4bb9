package metalrt

import "fmt"

// Metal does not check most of its limits at run time: a threadgroup larger
// than a pipeline allows, an argument index past the table, a blit past a
// buffer's end is undefined behaviour (or an abort under the validation layer).
// So Queue.Run checks every command here, in Go, and encodes nothing unless all
// pass. The checks compile and are tested on every system.

// encoded is a validated command list flattened the way the shim reads it: each
// command refers to runs of the argument slices, and all setBytes payloads are
// packed into one arena.
type encoded struct {
	cmds    []encodedCmd
	buffers []encodedBuffer
	bytes   []encodedBytes
	arena   []byte
	tgs     []encodedTG
}

type cmdKind int

const (
	kindDispatch cmdKind = iota
	kindCopy
	kindSync
)

type encodedCmd struct {
	kind     cmdKind
	pipeline *Pipeline
	grid     Size
	group    Size
	// Runs of buffers, bytes and tgs: [first, first+n).
	firstBuffer, nBuffers int
	firstBytes, nBytes    int
	firstTG, nTG          int
	src, dst              *Buffer
	srcOffset, dstOffset  int
	size                  int
}

type encodedBuffer struct {
	index  int
	buffer *Buffer
	offset int
}

type encodedBytes struct {
	index          int
	offset, length int // into arena
}

type encodedTG struct {
	index, length int
}

// encode validates cmds against the pipelines' and the device's limits and
// flattens them. maxThreadgroupMemory is the device's limit in bytes.
func encode(op string, cmds []Command, maxThreadgroupMemory int) (*encoded, error) {
	e := &encoded{}
	for i, c := range cmds {
		var err error
		switch c := c.(type) {
		case Dispatch:
			err = e.dispatch(c, maxThreadgroupMemory)
		case *Dispatch:
			if c == nil {
				err = fmt.Errorf("is a nil *Dispatch")
				break
			}
			err = e.dispatch(*c, maxThreadgroupMemory)
		case Copy:
			err = e.copy(c)
		case *Copy:
			if c == nil {
				err = fmt.Errorf("is a nil *Copy")
				break
			}
			err = e.copy(*c)
		case Synchronize:
			err = e.sync(c)
		case *Synchronize:
			if c == nil {
				err = fmt.Errorf("is a nil *Synchronize")
				break
			}
			err = e.sync(*c)
		case nil:
			err = fmt.Errorf("is nil")
		default:
			err = fmt.Errorf("has unknown type %T", c)
		}
		if err != nil {
			if me, ok := err.(*Error); ok {
				me.Op = op
				me.Detail = fmt.Sprintf("command %d: %s", i, me.Detail)
				return nil, me
			}
			return nil, newError(op, ErrInvalid, "command %d %v", i, err)
		}
	}
	return e, nil
}

func invalid(format string, args ...any) error {
	return newError("", ErrInvalid, format, args...)
}

func checkBuffer(what string, b *Buffer) error {
	if b == nil {
		return invalid("%s is nil", what)
	}
	if b.closed() {
		return newError("", ErrClosed, "%s is closed", what)
	}
	return nil
}

func checkIndex(what string, index int, seen map[int]string) error {
	if index < 0 || index > MaxArgumentIndex {
		return invalid("%s index %d is outside [0, %d]", what, index, MaxArgumentIndex)
	}
	if prev, ok := seen[index]; ok {
		return invalid("%s index %d is already bound by %s", what, index, prev)
	}
	seen[index] = what
	return nil
}

func checkSize(what string, s Size) error {
	if s.X < 1 || s.Y < 1 || s.Z < 1 {
		return invalid("%s %v has a dimension below 1", what, s)
	}
	return nil
}

func (e *encoded) dispatch(d Dispatch, maxThreadgroupMemory int) error {
	p := d.Pipeline
	if p == nil {
		return invalid("Pipeline is nil")
	}
	if p.closed() {
		return newError("", ErrClosed, "Pipeline %s is closed", p.info.name)
	}
	if err := checkSize("Grid", d.Grid); err != nil {
		return err
	}
	if err := checkSize("Group", d.Group); err != nil {
		return err
	}
	if n := d.Group.volume(); n > p.info.maxThreads {
		return invalid("Group %v has %d threads; pipeline %s allows at most %d", d.Group, n, p.info.name, p.info.maxThreads)
	}
	c := encodedCmd{kind: kindDispatch, pipeline: p, grid: d.Grid, group: d.Group}

	seen := map[int]string{} // buffers and bytes share the buffer argument table
	c.firstBuffer, c.nBuffers = len(e.buffers), len(d.Buffers)
	for k, a := range d.Buffers {
		what := fmt.Sprintf("Buffers[%d]", k)
		if err := checkIndex(what, a.Index, seen); err != nil {
			return err
		}
		if err := checkBuffer(what, a.Buffer); err != nil {
			return err
		}
		if a.Offset < 0 || a.Offset >= a.Buffer.info.length {
			return invalid("%s offset %d is outside the buffer's %d bytes", what, a.Offset, a.Buffer.info.length)
		}
		e.buffers = append(e.buffers, encodedBuffer{index: a.Index, buffer: a.Buffer, offset: a.Offset})
	}

	c.firstBytes, c.nBytes = len(e.bytes), len(d.Bytes)
	for k, a := range d.Bytes {
		what := fmt.Sprintf("Bytes[%d]", k)
		if err := checkIndex(what, a.Index, seen); err != nil {
			return err
		}
		if len(a.Data) == 0 || len(a.Data) > MaxBytesLength {
			return invalid("%s has %d bytes; setBytes takes 1 to %d", what, len(a.Data), MaxBytesLength)
		}
		// Keep each payload 16-byte aligned in the arena, as a constant
		// buffer would be.
		off := alignUp(len(e.arena), 16)
		e.arena = append(e.arena, make([]byte, off-len(e.arena))...)
		e.arena = append(e.arena, a.Data...)
		e.bytes = append(e.bytes, encodedBytes{index: a.Index, offset: off, length: len(a.Data)})
	}

	tgSeen := map[int]string{}
	total := p.info.staticThreadgroup
	c.firstTG, c.nTG = len(e.tgs), len(d.Threadgroup)
	for k, a := range d.Threadgroup {
		what := fmt.Sprintf("Threadgroup[%d]", k)
		if err := checkIndex(what, a.Index, tgSeen); err != nil {
			return err
		}
		if a.Length <= 0 || a.Length%ThreadgroupMemoryAlign != 0 {
			return invalid("%s length %d is not a positive multiple of %d", what, a.Length, ThreadgroupMemoryAlign)
		}
		total += a.Length
		e.tgs = append(e.tgs, encodedTG{index: a.Index, length: a.Length})
	}
	if total > maxThreadgroupMemory {
		return invalid("threadgroup memory %d bytes (%d static in %s) exceeds the device's %d", total, p.info.staticThreadgroup, p.info.name, maxThreadgroupMemory)
	}
	e.cmds = append(e.cmds, c)
	return nil
}

func (e *encoded) copy(c Copy) error {
	if err := checkBuffer("Src", c.Src); err != nil {
		return err
	}
	if err := checkBuffer("Dst", c.Dst); err != nil {
		return err
	}
	if c.Size <= 0 {
		return invalid("Size %d is not positive", c.Size)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"SrcOffset", c.SrcOffset}, {"DstOffset", c.DstOffset}, {"Size", c.Size}} {
		if v.n < 0 || v.n%CopyAlign != 0 {
			return invalid("%s %d is not a non-negative multiple of %d", v.name, v.n, CopyAlign)
		}
	}
	if c.SrcOffset+c.Size > c.Src.info.length {
		return invalid("source range [%d, %d) passes the end of Src (%d bytes)", c.SrcOffset, c.SrcOffset+c.Size, c.Src.info.length)
	}
	if c.DstOffset+c.Size > c.Dst.info.length {
		return invalid("destination range [%d, %d) passes the end of Dst (%d bytes)", c.DstOffset, c.DstOffset+c.Size, c.Dst.info.length)
	}
	if c.Src == c.Dst && c.SrcOffset < c.DstOffset+c.Size && c.DstOffset < c.SrcOffset+c.Size {
		return invalid("source and destination ranges overlap in the same buffer")
	}
	e.cmds = append(e.cmds, encodedCmd{kind: kindCopy, src: c.Src, dst: c.Dst, srcOffset: c.SrcOffset, dstOffset: c.DstOffset, size: c.Size})
	return nil
}

func (e *encoded) sync(s Synchronize) error {
	if err := checkBuffer("Buffer", s.Buffer); err != nil {
		return err
	}
	if s.Buffer.info.mode != Managed {
		return invalid("Buffer is %v; only managed buffers are synchronized", s.Buffer.info.mode)
	}
	e.cmds = append(e.cmds, encodedCmd{kind: kindSync, src: s.Buffer})
	return nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }
