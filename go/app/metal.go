package app

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/spec"
)

// ErrMetalUnavailable is returned when Metal was asked for by name and this build or
// machine cannot run it; it wraps the reason from package metal.
var ErrMetalUnavailable = errors.New("app: the Metal executor is unavailable")

// MetalExecutors returns the Metal executor, at PriorityMetal, when this build and
// machine can run it. Otherwise — not macOS, no cgo, no suitable GPU (metal.New's error
// wraps metal.ErrUnavailable), or any other failure to open the device — it returns an
// empty list, so the executors group simply has no Metal member, and logs why (Info for
// "unavailable", Warn for anything else). With required set (Config.Executor = "metal")
// any such failure is an error wrapping ErrMetalUnavailable instead.
func MetalExecutors(required bool, logger *slog.Logger) ([]spec.Executor, error) {
	x, err := metal.New(metal.Params{Priority: PriorityMetal})
	if err == nil {
		return []spec.Executor{x}, nil
	}
	if required {
		return nil, fmt.Errorf("%w: %w", ErrMetalUnavailable, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if errors.Is(err, metal.ErrUnavailable) {
		logger.Info("orchard: Metal executor left out", "reason", err)
	} else {
		logger.Warn("orchard: Metal executor failed to open, left out", "reason", err)
	}
	return nil, nil
}
