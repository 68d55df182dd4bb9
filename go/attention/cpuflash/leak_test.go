package cpuflash

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the worker pool (run)
// starts its workers per call and waits for all of them, so none may be left behind, also
// after a cancellation or a worker's panic.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
