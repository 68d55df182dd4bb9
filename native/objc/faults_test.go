package metalrt

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The hook's faults map to the shim's fault argument (shim.h MR_FAULT_*): any
// nonzero value for a constructor, MTLCommandBufferError codes for Run.
func TestFaultCodes(t *testing.T) {
	for _, c := range []struct {
		op    string
		fault Fault
		want  int
	}{
		{OpNewBuffer, NoFault, 0},
		{OpNewBuffer, FaultNil, 1},
		{OpNewPipeline, FaultDeviceRemoved, 1},
		{OpRun, NoFault, 0},
		{OpRun, FaultNil, -1},
		{OpRun, FaultTimeout, -2},
		{OpRun, FaultPageFault, 3},
		{OpRun, FaultAccessRevoked, 4},
		{OpRun, FaultNotPermitted, 7},
		{OpRun, FaultOutOfMemory, 8},
		{OpRun, FaultDeviceRemoved, 11},
	} {
		assert.Equal(t, c.want, faultCode(c.op, c.fault), "%s %v", c.op, c.fault)
	}
	var f faults
	assert.Zero(t, f.code(OpRun), "no hook")
	h := FaultHook(func(op string) Fault {
		if op == OpRun {
			return FaultDeviceRemoved
		}
		return NoFault
	})
	f.hook.Store(&h)
	assert.Equal(t, 11, f.code(OpRun))
	assert.Zero(t, f.code(OpNewBuffer))
	assert.Zero(t, (*faults)(nil).code(OpRun))
}

func TestNewKinds(t *testing.T) {
	assert.ErrorIs(t, kindOf(codeDeviceLost), ErrDeviceLost)
	assert.ErrorIs(t, kindOf(codeTimeout), ErrTimeout)
	assert.True(t, OSVersion{14, 2, 0}.AtLeast(14, 0))
	assert.False(t, OSVersion{13, 9, 0}.AtLeast(14, 0))
	assert.Equal(t, "15.1.0", OSVersion{15, 1, 0}.String())
}
