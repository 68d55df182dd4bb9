// Package bad is a fixture: its darwin cgo file has Go type errors.
package bad

// Count is implemented per system.
func Count() int { return count() }
