package metalrt

import (
	"errors"
	"fmt"
)

// Sentinel kinds. Every error this package returns is an *Error whose Kind is one
// of them, so callers test with errors.Is.
var (
	// ErrUnavailable: Metal cannot be used by this build (not darwin, or built
	// without cgo). ErrNoDevice also matches it.
	ErrUnavailable = errors.New("metal unavailable")
	// ErrNoDevice: the system has no Metal device (or none of the requested name).
	ErrNoDevice error = &kindError{msg: "no Metal device", parent: ErrUnavailable}
	// ErrCompile: a library failed to compile from source or to load from data.
	ErrCompile = errors.New("library compilation failed")
	// ErrFunctionNotFound: the library has no function of the requested name.
	ErrFunctionNotFound = errors.New("function not found")
	// ErrPipeline: a compute pipeline could not be created from a function.
	ErrPipeline = errors.New("pipeline creation failed")
	// ErrOutOfMemory: a buffer allocation failed, or the GPU ran out of memory
	// while running a command buffer.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrCommandBuffer: a command buffer completed with an error.
	ErrCommandBuffer = errors.New("command buffer failed")
	// ErrEncode: a command buffer or encoder could not be created.
	ErrEncode = errors.New("encoding failed")
	// ErrInvalid: an argument breaks a Metal limit or rule; nothing was sent to
	// the GPU.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed: the handle (or one it uses) was closed.
	ErrClosed = errors.New("handle is closed")
	// ErrDeviceLost: the GPU was removed, or this process's access to it was revoked or
	// is not permitted (MTLCommandBufferErrorDeviceRemoved, AccessRevoked, NotPermitted).
	// Nothing on that device will work again in this process.
	ErrDeviceLost = errors.New("device lost")
	// ErrTimeout: a command buffer did not complete within the queue's wait limit. It
	// may still be running and still holds the buffers it uses.
	ErrTimeout = errors.New("command buffer timed out")
)

// kindError is a sentinel that also matches a broader one.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// Error is what every failing call returns: the operation, the kind (one of the
// sentinels above) and the detail Metal or this package gave.
type Error struct {
	Op     string // e.g. "NewLibrary", "Queue.Run"
	Kind   error  // one of the Err* sentinels
	Detail string // Metal's description, or the rule that was broken
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("metal: %s: %v", e.Op, e.Kind)
	}
	return fmt.Sprintf("metal: %s: %v: %s", e.Op, e.Kind, e.Detail)
}

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

func newError(op string, kind error, format string, args ...any) *Error {
	return &Error{Op: op, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Result codes of the shims (shim.h); metal_darwin_test.go checks they match.
const (
	codeOK = iota
	codeNoDevice
	codeCompile
	codeFunction
	codePipeline
	codeNoMemory
	codeCommand
	codeEncode
	codeInvalid
	codeDeviceLost
	codeTimeout
)

// kindOf maps a shim result code to its sentinel.
func kindOf(code int) error {
	switch code {
	case codeNoDevice:
		return ErrNoDevice
	case codeCompile:
		return ErrCompile
	case codeFunction:
		return ErrFunctionNotFound
	case codePipeline:
		return ErrPipeline
	case codeNoMemory:
		return ErrOutOfMemory
	case codeCommand:
		return ErrCommandBuffer
	case codeEncode:
		return ErrEncode
	case codeInvalid:
		return ErrInvalid
	case codeDeviceLost:
		return ErrDeviceLost
	case codeTimeout:
		return ErrTimeout
	}
	return fmt.Errorf("unknown shim result code %d", code)
}
