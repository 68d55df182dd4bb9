//go:build !darwin || ios || !cgo

package metalrt

import "testing"

// Without Metal, test handles are plain values carrying the limits under test.

const testMaxThreadgroupMemory = 32 << 10

func testBuffer(t *testing.T, n int, mode StorageMode) *Buffer {
	t.Helper()
	return &Buffer{info: bufferInfo{length: n, mode: mode}}
}

func testPipeline(t *testing.T) *Pipeline {
	t.Helper()
	return &Pipeline{info: pipelineInfo{name: "test", maxThreads: 1024, executionWidth: 32, staticThreadgroup: 256}}
}

func closeForTest(t *testing.T, b *Buffer) *Buffer {
	t.Skip("handles cannot be closed without Metal")
	return nil
}
