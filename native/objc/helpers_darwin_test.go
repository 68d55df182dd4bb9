//go:build darwin && !ios && cgo

package metalrt

import (
	"errors"
	"testing"
)

// With Metal, test handles are real: they come from the default device, and the
// limits under test are the ones Metal reports.

const testKernels = `
#include <metal_stdlib>
using namespace metal;

struct AddParams {
	uint n;
	float add;
};

// x[i] += p.add for i < p.n, staged through threadgroup memory.
kernel void add_scalar(device float *x [[buffer(0)]],
                       constant AddParams &p [[buffer(1)]],
                       threadgroup float *scratch [[threadgroup(0)]],
                       uint i [[thread_position_in_grid]],
                       uint t [[thread_position_in_threadgroup]]) {
	scratch[t] = i < p.n ? x[i] : 0.0f;
	threadgroup_barrier(mem_flags::mem_threadgroup);
	if (i < p.n) {
		x[i] = scratch[t] + p.add;
	}
}

// y[i] = 2 * x[i] + MACRO_OFFSET
kernel void twice(device const float *x [[buffer(0)]],
                  device float *y [[buffer(1)]],
                  uint i [[thread_position_in_grid]]) {
	y[i] = 2.0f * x[i] + MACRO_OFFSET;
}
`

func testDevice(t *testing.T) *Device {
	t.Helper()
	d, err := OpenDefault()
	if errors.Is(err, ErrNoDevice) {
		t.Skipf("no Metal device: %v", err)
	}
	if err != nil {
		t.Fatalf("OpenDefault: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var testMaxThreadgroupMemory int

func testBuffer(t *testing.T, n int, mode StorageMode) *Buffer {
	t.Helper()
	d := testDevice(t)
	testMaxThreadgroupMemory = d.MaxThreadgroupMemory()
	b, err := d.NewBuffer(n, mode)
	if err != nil {
		t.Fatalf("NewBuffer(%d, %v): %v", n, mode, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testLibrary(t *testing.T, d *Device) *Library {
	t.Helper()
	lib, err := d.NewLibrary(testKernels, CompileOptions{Language: MSL3_0, Math: MathSafe, Macros: map[string]string{"MACRO_OFFSET": "0.5f"}})
	if err != nil {
		t.Fatalf("NewLibrary: %v", err)
	}
	t.Cleanup(func() { lib.Close() })
	return lib
}

func testPipelineNamed(t *testing.T, d *Device, name string) *Pipeline {
	t.Helper()
	fn, err := testLibrary(t, d).Function(name)
	if err != nil {
		t.Fatalf("Function(%q): %v", name, err)
	}
	defer fn.Close()
	p, err := d.NewPipeline(fn)
	if err != nil {
		t.Fatalf("NewPipeline(%q): %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testPipeline(t *testing.T) *Pipeline {
	t.Helper()
	d := testDevice(t)
	testMaxThreadgroupMemory = d.MaxThreadgroupMemory()
	return testPipelineNamed(t, d, "add_scalar")
}

func closeForTest(t *testing.T, b *Buffer) *Buffer {
	t.Helper()
	b.Close()
	return b
}
