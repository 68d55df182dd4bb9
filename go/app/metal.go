package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/native/msl/metallib"
	"go.uber.org/fx"
)

// ErrMetalUnavailable is returned when Metal was asked for by name and this build or
// machine cannot run it; it wraps the reason from package metal.
var ErrMetalUnavailable = errors.New("app: the Metal executor is unavailable")

// Metal is the Metal executor and the allocator strategies over its device, or neither
// when Metal is unavailable here.
type Metal struct {
	Executor   *metal.Executor // nil when unavailable
	Strategies []Strategy
}

// NewMetal opens the Metal executor with p (Priority defaults to PriorityMetal) and the
// strategies of its device (MetalStrategies). When this build or machine cannot run it —
// not macOS, no cgo, no suitable GPU (metal.New's error wraps metal.ErrUnavailable), or
// any other failure to open the device — it returns an empty Metal and logs why (Info
// for "unavailable", Warn for anything else); with required set any such failure is an
// error wrapping ErrMetalUnavailable instead.
//
// Unless p names metallibs (Metallibs, MetallibDir or $ORCHARD_METALLIB_DIR), the
// precompiled ones a Bazel build ships as runfiles (package metallib) are used when
// present; the go tool builds none, and the executor compiles the kernels' source.
func NewMetal(required bool, logger *slog.Logger, p metal.Params) (Metal, error) {
	if p.Priority == 0 {
		p.Priority = PriorityMetal
	}
	if len(p.Metallibs) == 0 && p.MetallibDir == "" && os.Getenv(metal.MetallibDirEnv) == "" {
		for _, name := range []string{metallib.Attention, metallib.AttentionBF16} {
			if data, err := metallib.Load(name); err == nil {
				if p.Metallibs == nil {
					p.Metallibs = map[string][]byte{}
				}
				p.Metallibs[name] = data
			}
		}
	}
	x, err := metal.New(p)
	if err == nil {
		ss, serr := MetalStrategies(x.Device())
		if serr != nil {
			x.Close()
			err = serr
		} else {
			return Metal{Executor: x, Strategies: ss}, nil
		}
	}
	if required {
		return Metal{}, fmt.Errorf("%w: %w", ErrMetalUnavailable, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if errors.Is(err, metal.ErrUnavailable) {
		logger.Info("orchard: Metal executor left out", "reason", err)
	} else {
		logger.Warn("orchard: Metal executor failed to open, left out", "reason", err)
	}
	return Metal{}, nil
}

// Executors is the executors-group view of m: the Metal executor, or nothing.
func (m Metal) Executors() []spec.Executor {
	if m.Executor == nil {
		return nil
	}
	return []spec.Executor{m.Executor}
}

// MetalExecutors returns the Metal executor, at PriorityMetal, when this build and
// machine can run it, and otherwise an empty list (see NewMetal), so the executors group
// simply has no Metal member.
func MetalExecutors(required bool, logger *slog.Logger) ([]spec.Executor, error) {
	m, err := NewMetal(required, logger, metal.Params{})
	if err != nil {
		return nil, err
	}
	return m.Executors(), nil
}

// MetalModule provides Metal (NewMetal with p) and puts its executor into the
// "orchard.executors" group and its strategies into the "orchard.strategies" group, so
// the preparer and the engine see the same device. Use it in place of a bare
// MetalExecutors provider.
func MetalModule(required bool, logger *slog.Logger, p metal.Params) fx.Option {
	return fx.Module("orchard.metal", fx.Provide(
		func() (Metal, error) { return NewMetal(required, logger, p) },
		fx.Annotate(func(m Metal) []spec.Executor { return m.Executors() },
			fx.ResultTags(`group:"orchard.executors,flatten"`)),
		fx.Annotate(func(m Metal) []Strategy { return m.Strategies },
			fx.ResultTags(`group:"orchard.strategies,flatten"`)),
	))
}
