package metalrt

import (
	"fmt"
	"sync/atomic"
)

// Fault is a failure a test asks the shim to produce (Device.SetFaultHook). The shim
// takes the same path as when Metal itself fails: a constructor behaves as if Metal
// returned nil, and a command buffer runs to completion and then reports the injected
// MTLCommandBufferError through the same classification as a real one. So the whole
// error path below Go (the shim's mapping to result codes and messages) runs, on a Mac,
// as it would for a real failure.
type Fault int

// Faults.
const (
	// NoFault lets the call proceed.
	NoFault Fault = iota
	// FaultNil makes the Metal constructor behind the operation return nil: an allocation
	// (ErrOutOfMemory), a queue (ErrNoDevice), a library (ErrCompile), a function
	// (ErrFunctionNotFound), a pipeline (ErrPipeline), or for Queue.Run the command
	// buffer (ErrEncode).
	FaultNil
	// FaultTimeout makes Queue.Run report that the wait limit expired (ErrTimeout).
	FaultTimeout
	// The command buffer completes with this MTLCommandBufferError (Queue.Run only).
	FaultPageFault     // MTLCommandBufferErrorPageFault (3): ErrCommandBuffer
	FaultAccessRevoked // MTLCommandBufferErrorAccessRevoked (4): ErrDeviceLost
	FaultNotPermitted  // MTLCommandBufferErrorNotPermitted (7): ErrDeviceLost
	FaultOutOfMemory   // MTLCommandBufferErrorOutOfMemory (8): ErrOutOfMemory
	FaultDeviceRemoved // MTLCommandBufferErrorDeviceRemoved (11): ErrDeviceLost
)

func (f Fault) String() string {
	switch f {
	case NoFault:
		return "none"
	case FaultNil:
		return "nil"
	case FaultTimeout:
		return "timeout"
	case FaultPageFault:
		return "page fault"
	case FaultAccessRevoked:
		return "access revoked"
	case FaultNotPermitted:
		return "not permitted"
	case FaultOutOfMemory:
		return "out of memory"
	case FaultDeviceRemoved:
		return "device removed"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Operations a FaultHook is asked about.
const (
	OpNewQueue           = "NewQueue"
	OpNewBuffer          = "NewBuffer"
	OpNewBufferNoCopy    = "NewBufferNoCopy"
	OpNewLibrary         = "NewLibrary"
	OpNewLibraryFromData = "NewLibraryFromData"
	OpFunction           = "Library.Function"
	OpNewPipeline        = "NewPipeline"
	OpRun                = "Queue.Run"
)

// FaultHook is asked, before each call into the shim that can fail, whether to inject a
// fault; op is one of the Op* names. It may be called from several goroutines at once.
type FaultHook func(op string) Fault

// faults holds a device's hook; the objects made from the device share it.
type faults struct{ hook atomic.Pointer[FaultHook] }

// code returns the shim's fault argument for op: 0 when there is no hook or it injects
// nothing.
func (f *faults) code(op string) int {
	if f == nil {
		return 0
	}
	h := f.hook.Load()
	if h == nil {
		return 0
	}
	return faultCode(op, (*h)(op))
}

// faultCode maps a fault to the shim's argument (shim.h, MR_FAULT_*): constructors take
// any nonzero value as "Metal returned nil"; Queue.Run takes -1 (no command buffer), -2
// (timeout) or an MTLCommandBufferError code.
func faultCode(op string, f Fault) int {
	if f == NoFault {
		return 0
	}
	if op != OpRun {
		return 1
	}
	switch f {
	case FaultNil:
		return -1
	case FaultTimeout:
		return -2
	case FaultPageFault:
		return 3
	case FaultAccessRevoked:
		return 4
	case FaultNotPermitted:
		return 7
	case FaultOutOfMemory:
		return 8
	case FaultDeviceRemoved:
		return 11
	}
	return 1 // MTLCommandBufferErrorInternal for an unknown fault
}
