package metalrt

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeFlattensCommands(t *testing.T) {
	p := testPipeline(t)
	a := testBuffer(t, 256, Shared)
	b := testBuffer(t, 256, Private)
	params := []byte{1, 2, 3, 4, 5}
	more := []byte{9, 9}
	cmds := []Command{
		Copy{Src: a, Dst: b, Size: 256},
		Dispatch{
			Pipeline:    p,
			Grid:        Size{4, 1, 1},
			Group:       Size{32, 1, 1},
			Buffers:     []BufferArg{{Index: 0, Buffer: b}, {Index: 2, Buffer: a, Offset: 16}},
			Bytes:       []BytesArg{{Index: 1, Data: params}},
			Threadgroup: []ThreadgroupArg{{Index: 0, Length: 128}},
		},
		&Dispatch{
			Pipeline: p,
			Grid:     Size{1, 2, 3},
			Group:    Size{8, 4, 1},
			Buffers:  []BufferArg{{Index: 0, Buffer: a}},
			Bytes:    []BytesArg{{Index: 1, Data: more}},
		},
		Copy{Src: b, SrcOffset: 4, Dst: a, DstOffset: 8, Size: 8},
	}
	e, err := encode("test", cmds, testMaxThreadgroupMemory)
	require.NoError(t, err)
	require.Len(t, e.cmds, 4)

	assert.Equal(t, kindCopy, e.cmds[0].kind)
	assert.Same(t, a, e.cmds[0].src)
	assert.Same(t, b, e.cmds[0].dst)
	assert.Equal(t, 256, e.cmds[0].size)

	d0 := e.cmds[1]
	assert.Equal(t, kindDispatch, d0.kind)
	assert.Equal(t, Size{4, 1, 1}, d0.grid)
	assert.Equal(t, Size{32, 1, 1}, d0.group)
	assert.Equal(t, []encodedBuffer{{0, b, 0}, {2, a, 16}}, e.buffers[d0.firstBuffer:d0.firstBuffer+d0.nBuffers])
	assert.Equal(t, []encodedTG{{0, 128}}, e.tgs[d0.firstTG:d0.firstTG+d0.nTG])
	bytes0 := e.bytes[d0.firstBytes]
	assert.Equal(t, 1, d0.nBytes)
	assert.Equal(t, params, e.arena[bytes0.offset:bytes0.offset+bytes0.length])

	d1 := e.cmds[2]
	assert.Equal(t, []encodedBuffer{{0, a, 0}}, e.buffers[d1.firstBuffer:d1.firstBuffer+d1.nBuffers])
	assert.Equal(t, 0, d1.nTG)
	bytes1 := e.bytes[d1.firstBytes]
	assert.Zero(t, bytes1.offset%16, "payloads are 16-byte aligned in the arena")
	assert.Equal(t, more, e.arena[bytes1.offset:bytes1.offset+bytes1.length])

	assert.Equal(t, encodedCmd{kind: kindCopy, src: b, dst: a, srcOffset: 4, dstOffset: 8, size: 8}, e.cmds[3])

	// The caller's payloads are copied: changing them afterwards changes nothing.
	params[0] = 42
	assert.Equal(t, byte(1), e.arena[bytes0.offset])
}

func TestEncodeEmpty(t *testing.T) {
	e, err := encode("test", nil, testMaxThreadgroupMemory)
	require.NoError(t, err)
	assert.Empty(t, e.cmds)
}

func TestEncodeRejects(t *testing.T) {
	p := testPipeline(t)
	shared := testBuffer(t, 64, Shared)
	other := testBuffer(t, 64, Shared)
	managed := testBuffer(t, 64, Managed)
	ok := func() Dispatch {
		return Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{32, 1, 1}, Buffers: []BufferArg{{Index: 0, Buffer: shared}}}
	}
	tooMuchTG := testMaxThreadgroupMemory - p.StaticThreadgroupMemory() + ThreadgroupMemoryAlign
	tooMuchTG -= tooMuchTG % ThreadgroupMemoryAlign
	cases := []struct {
		name string
		cmd  Command
		kind error
		want string
	}{
		{"nil command", nil, ErrInvalid, "is nil"},
		{"nil *Dispatch", (*Dispatch)(nil), ErrInvalid, "nil *Dispatch"},
		{"nil pipeline", func() Command { d := ok(); d.Pipeline = nil; return d }(), ErrInvalid, "Pipeline is nil"},
		{"zero grid", func() Command { d := ok(); d.Grid = Size{0, 1, 1}; return d }(), ErrInvalid, "Grid"},
		{"zero group", func() Command { d := ok(); d.Group = Size{1, 0, 1}; return d }(), ErrInvalid, "Group"},
		{"group too large", func() Command {
			d := ok()
			d.Group = Size{p.MaxTotalThreadsPerThreadgroup() + 1, 1, 1}
			return d
		}(), ErrInvalid, "allows at most"},
		{"index past table", func() Command { d := ok(); d.Buffers[0].Index = 31; return d }(), ErrInvalid, "outside [0, 30]"},
		{"negative index", func() Command { d := ok(); d.Buffers[0].Index = -1; return d }(), ErrInvalid, "outside"},
		{"duplicate index", func() Command {
			d := ok()
			d.Bytes = []BytesArg{{Index: 0, Data: []byte{1}}}
			return d
		}(), ErrInvalid, "already bound by Buffers[0]"},
		{"nil buffer", func() Command { d := ok(); d.Buffers[0].Buffer = nil; return d }(), ErrInvalid, "Buffers[0] is nil"},
		{"offset past end", func() Command { d := ok(); d.Buffers[0].Offset = shared.Len(); return d }(), ErrInvalid, "offset"},
		{"empty bytes", func() Command { d := ok(); d.Bytes = []BytesArg{{Index: 1}}; return d }(), ErrInvalid, "setBytes takes 1 to 4096"},
		{"bytes too long", func() Command {
			d := ok()
			d.Bytes = []BytesArg{{Index: 1, Data: make([]byte, MaxBytesLength+1)}}
			return d
		}(), ErrInvalid, "4097 bytes"},
		{"threadgroup not multiple of 16", func() Command {
			d := ok()
			d.Threadgroup = []ThreadgroupArg{{Index: 0, Length: 24}}
			return d
		}(), ErrInvalid, "multiple of 16"},
		{"threadgroup duplicate index", func() Command {
			d := ok()
			d.Threadgroup = []ThreadgroupArg{{Index: 0, Length: 16}, {Index: 0, Length: 16}}
			return d
		}(), ErrInvalid, "already bound"},
		{"threadgroup over device limit", func() Command {
			d := ok()
			d.Threadgroup = []ThreadgroupArg{{Index: 0, Length: tooMuchTG}}
			return d
		}(), ErrInvalid, "exceeds the device's"},
		{"copy unaligned offset", Copy{Src: shared, SrcOffset: 2, Dst: other, Size: 4}, ErrInvalid, "SrcOffset 2"},
		{"copy unaligned size", Copy{Src: shared, Dst: other, Size: 6}, ErrInvalid, "Size 6"},
		{"copy zero size", Copy{Src: shared, Dst: other}, ErrInvalid, "Size 0"},
		{"copy past source end", Copy{Src: shared, SrcOffset: 32, Dst: other, Size: 64}, ErrInvalid, "end of Src"},
		{"copy past destination end", Copy{Src: shared, Dst: other, DstOffset: 8, Size: 64}, ErrInvalid, "end of Dst"},
		{"copy overlap", Copy{Src: shared, SrcOffset: 0, Dst: shared, DstOffset: 8, Size: 16}, ErrInvalid, "overlap"},
		{"copy nil", Copy{Dst: other, Size: 4}, ErrInvalid, "Src is nil"},
		{"sync shared", Synchronize{Buffer: shared}, ErrInvalid, "only managed"},
		{"sync nil", Synchronize{}, ErrInvalid, "Buffer is nil"},
		{"unknown command", fakeCommand{}, ErrInvalid, "unknown type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A valid command first: the bad one must still stop everything.
			_, err := encode("Queue.Run", []Command{Synchronize{Buffer: managed}, c.cmd}, testMaxThreadgroupMemory)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.kind)
			var me *Error
			require.True(t, errors.As(err, &me), "error is an *Error: %v", err)
			assert.Equal(t, "Queue.Run", me.Op)
			assert.True(t, strings.HasPrefix(me.Detail, "command 1"), "detail names the command: %q", me.Detail)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestEncodeRejectsClosed(t *testing.T) {
	b := closeForTest(t, testBuffer(t, 64, Shared))
	_, err := encode("Queue.Run", []Command{Copy{Src: b, Dst: testBuffer(t, 64, Shared), Size: 4}}, testMaxThreadgroupMemory)
	assert.ErrorIs(t, err, ErrClosed)
}

type fakeCommand struct{}

func (fakeCommand) command() {}

func TestLanguageVersionRaw(t *testing.T) {
	for _, c := range []struct {
		v    LanguageVersion
		want uint32
	}{{LanguageVersion{}, 0}, {MSL2_4, 0x20004}, {MSL3_0, 0x30000}, {MSL3_1, 196609}, {MSL3_2, 0x30002}} {
		got, err := c.v.raw()
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%v", c.v)
	}
	_, err := LanguageVersion{Major: 0, Minor: 1}.raw()
	assert.Error(t, err)
	_, err = LanguageVersion{Major: 3, Minor: -1}.raw()
	assert.Error(t, err)
}

func TestErrors(t *testing.T) {
	assert.ErrorIs(t, ErrNoDevice, ErrUnavailable, "no device means Metal is unavailable")
	err := newError("OpenDefault", ErrNoDevice, "MTLCreateSystemDefaultDevice returned nil")
	assert.ErrorIs(t, err, ErrNoDevice)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.Equal(t, "metal: OpenDefault: no Metal device: MTLCreateSystemDefaultDevice returned nil", err.Error())
	for code, kind := range map[int]error{
		codeNoDevice: ErrNoDevice, codeCompile: ErrCompile, codeFunction: ErrFunctionNotFound,
		codePipeline: ErrPipeline, codeNoMemory: ErrOutOfMemory, codeCommand: ErrCommandBuffer,
		codeEncode: ErrEncode, codeInvalid: ErrInvalid,
	} {
		assert.Equal(t, kind, kindOf(code))
	}
	assert.Error(t, kindOf(99))
}

func TestStringers(t *testing.T) {
	assert.Equal(t, "private", Private.String())
	assert.True(t, Managed.HostVisible())
	assert.False(t, Private.HostVisible())
	assert.Equal(t, "apple9", FamilyApple9.String())
	assert.Equal(t, "3.1", MSL3_1.String())
	assert.Equal(t, "relaxed", MathRelaxed.String())
	assert.Equal(t, []Family{FamilyApple9, FamilyApple8, FamilyApple7, FamilyMac2}, KnownFamilies())
}
