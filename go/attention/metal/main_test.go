package metal

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests (the fake-device ones everywhere, the GPU ones on
// macOS) if any goroutine outlives them: the executor starts none of its own, and a
// command buffer's completion must not leave one waiting.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
