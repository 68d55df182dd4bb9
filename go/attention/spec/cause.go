package spec

import (
	"context"
	"errors"
)

// Cause is why an executor handed a call on: one of a small fixed set, so that counters keyed
// by it stay bounded however many calls fail. The error itself carries the detail.
type Cause string

// The causes. An executor's error names its cause by implementing
// `FallbackCause() Cause` with one of these; CauseOf classifies the rest.
const (
	CauseUnsupported   Cause = "unsupported"      // the executor declined (ErrUnsupported)
	CauseInvalid       Cause = "invalid argument" // the call broke a rule (ErrInvalid)
	CauseMemoryBudget  Cause = "memory budget"    // over the working-memory budget
	CauseOutOfMemory   Cause = "out of memory"    // an allocation failed
	CauseDeviceLost    Cause = "device lost"      // the GPU was removed or reset, or access was not permitted
	CauseCommandBuffer Cause = "command buffer"   // a GPU command buffer failed or timed out
	CauseCompile       Cause = "compile"          // a kernel or pipeline failed to build
	CauseBadOutput     Cause = "bad output"       // the executor returned malformed results
	CausePanic         Cause = "panic"            // the executor panicked
	CauseCanceled      Cause = "canceled"         // the caller's context ended
	CauseError         Cause = "error"            // any other failure
)

// Causer is implemented by errors that know their cause.
type Causer interface {
	FallbackCause() Cause
}

// CauseOf classifies err. A Causer anywhere in err's chain wins, provided it returns one of
// the causes above; otherwise the sentinel errors decide; the rest is CauseError.
func CauseOf(err error) Cause {
	if err == nil {
		return ""
	}
	var c Causer
	if errors.As(err, &c) && c.FallbackCause().Known() {
		return c.FallbackCause()
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CauseCanceled
	case errors.Is(err, ErrUnsupported):
		return CauseUnsupported
	case errors.Is(err, ErrMemoryBudget):
		return CauseMemoryBudget
	case errors.Is(err, ErrInvalid):
		return CauseInvalid
	}
	return CauseError
}

// Known reports whether c is one of the causes this package defines.
func (c Cause) Known() bool {
	switch c {
	case CauseUnsupported, CauseInvalid, CauseMemoryBudget, CauseOutOfMemory, CauseDeviceLost,
		CauseCommandBuffer, CauseCompile, CauseBadOutput, CausePanic, CauseCanceled, CauseError:
		return true
	}
	return false
}
