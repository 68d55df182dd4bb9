package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them (an executor, engine or
// pool that a test forgot to close, or one that does not stop its workers on Close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
