//go:build darwin && !ios && cgo

package metalrt

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every error class, produced by the real shim through the fault hook: the
// shim takes the same branch (and the same result-code mapping) as for a real
// failure of that kind.
func TestFaultsThroughTheShim(t *testing.T) {
	d := testDevice(t)
	lib := testLibrary(t, d)
	p := testPipelineNamed(t, d, "add_scalar")
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	x, err := d.NewBuffer(4*32, Shared)
	require.NoError(t, err)
	defer x.Close()
	run := func() error {
		return q.Run(Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{32, 1, 1},
			Buffers:     []BufferArg{{Index: 0, Buffer: x}},
			Bytes:       []BytesArg{{Index: 1, Data: addParams(32, 1)}},
			Threadgroup: []ThreadgroupArg{{Index: 0, Length: 32 * 4}}})
	}
	cases := []struct {
		op    string
		fault Fault
		call  func() error
		want  error
	}{
		{OpNewBuffer, FaultNil, func() error { _, err := d.NewBuffer(64, Shared); return err }, ErrOutOfMemory},
		{OpNewBufferNoCopy, FaultNil, func() error { _, err := d.NewBufferNoCopy(64, Shared); return err }, ErrOutOfMemory},
		{OpNewQueue, FaultNil, func() error { _, err := d.NewQueue(); return err }, ErrNoDevice},
		{OpNewLibrary, FaultNil, func() error {
			_, err := d.NewLibrary(testKernels, CompileOptions{Macros: map[string]string{"MACRO_OFFSET": "0"}})
			return err
		}, ErrCompile},
		{OpFunction, FaultNil, func() error { _, err := lib.Function("add_scalar"); return err }, ErrFunctionNotFound},
		{OpNewPipeline, FaultNil, func() error {
			fn, err := lib.Function("add_scalar")
			if err != nil {
				return err
			}
			defer fn.Close()
			_, err = d.NewPipeline(fn)
			return err
		}, ErrPipeline},
		{OpRun, FaultNil, run, ErrEncode},
		{OpRun, FaultTimeout, run, ErrTimeout},
		{OpRun, FaultPageFault, run, ErrCommandBuffer},
		{OpRun, FaultOutOfMemory, run, ErrOutOfMemory},
		{OpRun, FaultAccessRevoked, run, ErrDeviceLost},
		{OpRun, FaultNotPermitted, run, ErrDeviceLost},
		{OpRun, FaultDeviceRemoved, run, ErrDeviceLost},
	}
	for _, c := range cases {
		t.Run(c.op+"/"+c.fault.String(), func(t *testing.T) {
			d.SetFaultHook(func(op string) Fault {
				if op == c.op {
					return c.fault
				}
				return NoFault
			})
			defer d.SetFaultHook(nil)
			err := c.call()
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			var me *Error
			require.True(t, errors.As(err, &me))
			assert.Equal(t, c.op, me.Op)
			d.SetFaultHook(nil)
			assert.NoError(t, run(), "the queue works again once the hook is gone")
		})
	}
}

// A no-copy buffer is page-aligned host memory Metal reads and writes in place.
func TestNoCopyBuffer(t *testing.T) {
	d := testDevice(t)
	p := testPipelineNamed(t, d, "add_scalar")
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	b, err := d.NewBufferNoCopy(100, Shared)
	require.NoError(t, err)
	assert.True(t, b.NoCopy())
	assert.Zero(t, b.Len()%4096, "whole pages: %d", b.Len())
	assert.GreaterOrEqual(t, b.Len(), 100)
	assert.Equal(t, d.RegistryID(), b.DeviceID())
	in := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25}
	putFloats(b.Bytes(), in)
	require.NoError(t, q.Run(Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{32, 1, 1},
		Buffers: []BufferArg{{Index: 0, Buffer: b}}, Bytes: []BytesArg{{Index: 1, Data: addParams(uint32(len(in)), 2)}},
		Threadgroup: []ThreadgroupArg{{Index: 0, Length: 32 * 4}}}))
	got := getFloats(b.Bytes(), len(in))
	for i := range in {
		assert.Equal(t, in[i]+2, got[i])
	}
	require.NoError(t, b.Close())
	assert.Nil(t, b.Bytes())
	_, err = d.NewBufferNoCopy(64, Private)
	assert.ErrorIs(t, err, ErrInvalid)
}

// Function constants select code: the same function specialised two ways.
func TestSpecializedFunction(t *testing.T) {
	d := testDevice(t)
	lib, err := d.NewLibrary(`
#include <metal_stdlib>
using namespace metal;
constant bool add_one [[function_constant(3)]];
kernel void pick(device float *x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
	x[i] = add_one ? x[i] + 1.0f : x[i] - 1.0f;
}`, CompileOptions{Language: MSL3_0, Math: MathSafe})
	require.NoError(t, err)
	defer lib.Close()
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	for _, v := range []bool{true, false} {
		fn, err := lib.SpecializedFunction("pick", []BoolConstant{{Index: 3, Value: v}})
		require.NoError(t, err)
		p, err := d.NewPipeline(fn)
		require.NoError(t, err)
		fn.Close()
		b, err := d.NewBuffer(32*4, Shared)
		require.NoError(t, err)
		putFloats(b.Bytes(), make([]float32, 32))
		require.NoError(t, q.Run(Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{32, 1, 1}, Buffers: []BufferArg{{Index: 0, Buffer: b}}}))
		want := float32(-1)
		if v {
			want = 1
		}
		assert.Equal(t, want, getFloats(b.Bytes(), 1)[0])
		p.Close()
		b.Close()
	}
	_, err = lib.SpecializedFunction("pick", []BoolConstant{{Index: -1}})
	assert.ErrorIs(t, err, ErrInvalid)
}

// Queues made and dropped at once stay alive during Run (runtime.KeepAlive
// after the cgo call): with the GC running beside it, the queue's cleanup must
// not release it mid-call. Without KeepAlive this crashes or fails on a Mac.
func TestDroppedQueueSurvivesRun(t *testing.T) {
	d := testDevice(t)
	p := testPipelineNamed(t, d, "add_scalar")
	b, err := d.NewBuffer(4*32, Shared)
	require.NoError(t, err)
	defer b.Close()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	defer close(stop)
	for range 50 {
		q, err := d.NewQueue()
		require.NoError(t, err)
		require.NoError(t, q.Run(Dispatch{Pipeline: p, Grid: Size{1, 1, 1}, Group: Size{32, 1, 1},
			Buffers: []BufferArg{{Index: 0, Buffer: b}}, Bytes: []BytesArg{{Index: 1, Data: addParams(32, 0)}},
			Threadgroup: []ThreadgroupArg{{Index: 0, Length: 32 * 4}}}))
	}
}

func TestDeviceInfo(t *testing.T) {
	d := testDevice(t)
	v, err := SystemVersion()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, v.Major, 12)
	assert.NotZero(t, d.RegistryID())
	assert.Positive(t, d.MaxBufferLength())
	assert.Positive(t, d.RecommendedWorkingSet())
	q, err := d.NewQueue()
	require.NoError(t, err)
	defer q.Close()
	assert.Equal(t, DefaultWaitLimit, q.WaitLimit())
	q.SetWaitLimit(time.Second)
	assert.Equal(t, time.Second, q.WaitLimit())
	t.Logf("%s, macOS %v, registry %#x, max buffer %d, working set %d", d.Name(), v, d.RegistryID(), d.MaxBufferLength(), d.RecommendedWorkingSet())
}
