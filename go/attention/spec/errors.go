package spec

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error about a bad argument.
var ErrInvalid = errors.New("attention: invalid argument")

// ErrUnsupported is wrapped by an executor that cannot run a valid problem; the engine
// moves on to the next executor when it sees it.
var ErrUnsupported = errors.New("attention: unsupported by executor")

// ArgError names the argument and the rule it broke.
type ArgError struct {
	Arg  string // e.g. "K", "Options.Dropout.P"
	Rule string // e.g. "shape [2 4 8 16] has D = 16, Q has D = 32"
}

func (e *ArgError) Error() string { return fmt.Sprintf("attention: argument %s: %s", e.Arg, e.Rule) }

// Unwrap returns ErrInvalid.
func (e *ArgError) Unwrap() error { return ErrInvalid }

func argErr(arg, format string, args ...any) error {
	return &ArgError{Arg: arg, Rule: fmt.Sprintf(format, args...)}
}

// UnsupportedError says which executor declined a problem and why.
type UnsupportedError struct {
	Executor string
	Reason   string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("attention: executor %s does not support this problem: %s", e.Executor, e.Reason)
}

// Unwrap returns ErrUnsupported.
func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// Unsupported builds an UnsupportedError.
func Unsupported(executor, format string, args ...any) error {
	return &UnsupportedError{Executor: executor, Reason: fmt.Sprintf(format, args...)}
}
