package mslemu_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/tools/mslemu"
)

// The instantiations of testkernels/sharded.metal are spread over two translation units
// (kgen_testkernels_sharded_s00/s01_gen.cc): every one is built and launches with its own
// function constant, set in the unit the kernel lives in.
func TestShardedInstantiations(t *testing.T) {
	requireEmulator(t)
	for n := -1; n < 30; n++ {
		name, id := fmt.Sprintf("test_sharded_%d", n), n
		if n < 0 {
			name, id = "test_sharded_fixed", 999
		}
		require.Contains(t, mslemu.Kernels(), name)
		out := make([]byte, 4*8)
		offset := int32(7 * (n + 2))
		require.NoError(t, mslemu.LaunchWith(name, [3]int{1, 1, 1}, [3]int{8, 1, 1}, []mslemu.Buffer{{Data: out}},
			mslemu.Options{Constants: []mslemu.Constant{{Index: 0, Value: offset}}}))
		for i, v := range mslemu.BytesUint32(out) {
			assert.Equal(t, uint32(id*1000+int(offset)+i), v, "%s thread %d", name, i)
		}
	}
}
