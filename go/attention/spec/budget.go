package spec

import (
	"context"
	"errors"
	"fmt"
)

// ErrMemoryBudget is wrapped by a MemoryError: a call would need more working memory than
// its budget allows.
var ErrMemoryBudget = errors.New("attention: working memory over budget")

// MemoryError says which allocation would exceed the budget, by how much.
type MemoryError struct {
	What   string // e.g. "cpuflash: scratch", "reference: logits"
	Need   int64  // bytes the call would allocate (saturated at MaxInt64)
	Budget int64  // bytes allowed
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("attention: %s needs %d bytes of working memory, over the budget of %d bytes (spec.WithMemoryBudget sets it)", e.What, e.Need, e.Budget)
}

// Unwrap returns ErrMemoryBudget.
func (e *MemoryError) Unwrap() error { return ErrMemoryBudget }

// FallbackCause implements the cause interface: an over-budget call is reported as such.
func (e *MemoryError) FallbackCause() Cause { return CauseMemoryBudget }

type budgetKey struct{}

// WithMemoryBudget returns a context whose calls may allocate at most bytes of working
// memory (outputs and scratch; not the caller's inputs). bytes ≤ 0 restores the default.
func WithMemoryBudget(ctx context.Context, bytes int64) context.Context {
	return context.WithValue(ctx, budgetKey{}, bytes)
}

// MemoryBudget returns the budget in force for ctx: the one set by WithMemoryBudget, or
// DefaultMemoryBudget.
func MemoryBudget(ctx context.Context) int64 {
	if b, ok := ContextMemoryBudget(ctx); ok {
		return b
	}
	return DefaultMemoryBudget()
}

// ContextMemoryBudget returns the budget set on ctx by WithMemoryBudget, if any.
func ContextMemoryBudget(ctx context.Context) (int64, bool) {
	if ctx != nil {
		if b, ok := ctx.Value(budgetKey{}).(int64); ok && b > 0 {
			return b, true
		}
	}
	return 0, false
}

// DefaultMemoryBudget is half of the machine's physical memory, or 4 GiB where the
// operating system does not say how much there is.
func DefaultMemoryBudget() int64 {
	if total := physicalMemory(); total > 0 {
		return int64(total / 2)
	}
	return 4 << 30
}

// CheckMemory returns a *MemoryError when need bytes exceed ctx's budget. Callers compute
// need with saturating arithmetic (MulBytes) before they allocate anything.
func CheckMemory(ctx context.Context, what string, need int64) error {
	if b := MemoryBudget(ctx); need < 0 || need > b {
		if need < 0 {
			need = maxInt64
		}
		return &MemoryError{What: what, Need: need, Budget: b}
	}
	return nil
}

const maxInt64 = int64(^uint64(0) >> 1)

// MulBytes multiplies non-negative sizes, saturating at MaxInt64 instead of overflowing,
// so an absurd size becomes an over-budget error rather than a small wrapped number.
func MulBytes(factors ...int) int64 {
	out := int64(1)
	for _, f := range factors {
		if f < 0 {
			return maxInt64
		}
		if f == 0 {
			return 0
		}
		if out > maxInt64/int64(f) {
			out = maxInt64
			continue
		}
		out *= int64(f)
	}
	return out
}

// AddBytes adds non-negative sizes, saturating at MaxInt64.
func AddBytes(terms ...int64) int64 {
	var out int64
	for _, t := range terms {
		if t < 0 || out > maxInt64-t {
			return maxInt64
		}
		out += t
	}
	return out
}
