package app

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/orchard-ml/orchard/go/attention/spec"
)

// ErrMetalUnavailable is returned when Metal was asked for by name and this build or
// machine has no Metal executor.
var ErrMetalUnavailable = errors.New("app: the Metal executor is unavailable")

// MetalExecutors returns the Metal executor, at PriorityMetal, when this build and
// machine have one, and an empty list otherwise — the executors group then simply has no
// Metal member. With required set (Config.Executor = "metal"), absence is an error
// wrapping ErrMetalUnavailable.
//
// This is the seam for go/attention/metal: when it lands, construct it here and map its
// typed "unavailable" error (the stub on other systems, or no device) to the empty list.
func MetalExecutors(required bool) ([]spec.Executor, error) {
	if required {
		return nil, fmt.Errorf("%w: this build has no Metal executor yet (GOOS=%s)", ErrMetalUnavailable, runtime.GOOS)
	}
	return nil, nil
}
