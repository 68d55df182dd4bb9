package tensor

import (
	"errors"
	"fmt"
)

// ErrShape is wrapped by every error about a shape, stride, view or index.
var ErrShape = errors.New("tensor: bad shape")

// ErrDType is wrapped by every error about an element type.
var ErrDType = errors.New("tensor: bad dtype")

// ErrStorage is wrapped when an operation needs host-visible memory it does not have.
var ErrStorage = errors.New("tensor: storage not host visible")

// Error names the operation and the rule that was broken; it wraps one of the sentinel
// errors above so callers can test with errors.Is.
type Error struct {
	Op   string // the function, e.g. "Reshape"
	Rule string // what was wrong, e.g. "shape [2 3] has 6 elements, want 8"
	Kind error  // ErrShape, ErrDType or ErrStorage
}

func (e *Error) Error() string { return fmt.Sprintf("tensor.%s: %s", e.Op, e.Rule) }

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

func shapeErr(op, format string, args ...any) error {
	return &Error{Op: op, Rule: fmt.Sprintf(format, args...), Kind: ErrShape}
}
