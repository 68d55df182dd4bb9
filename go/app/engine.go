package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"go.uber.org/fx"
)

// Executors returns the executors cfg.Executor selects, in no particular order (the
// Engine orders them by priority and appends the reference itself).
func Executors(cfg Config) ([]spec.Executor, error) {
	choice, err := cfg.choice()
	if err != nil {
		return nil, err
	}
	var out []spec.Executor
	if choice == ExecutorAuto || choice == ExecutorMetal {
		m, err := MetalExecutors(choice == ExecutorMetal, cfg.Logger)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	if choice == ExecutorAuto || choice == ExecutorCPUFlash {
		c, err := CPUFlashExecutor()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Build is the whole graph without fx: the executors cfg selects, a Preparer over the host
// strategy and, where Metal runs, its device's strategies (so the preparer's copies land
// where the GPU reads them), and the Engine. It is what Module provides.
func Build(cfg Config) (*attention.Engine, error) {
	choice, err := cfg.choice()
	if err != nil {
		return nil, err
	}
	strategies := []Strategy{HostStrategy()}
	var execs []spec.Executor
	if choice == ExecutorAuto || choice == ExecutorMetal {
		m, err := NewMetal(choice == ExecutorMetal, cfg.Logger, metal.Params{})
		if err != nil {
			return nil, err
		}
		execs = append(execs, m.Executors()...)
		strategies = append(strategies, m.Strategies...)
	}
	if choice == ExecutorAuto || choice == ExecutorCPUFlash {
		c, err := CPUFlashExecutor()
		if err != nil {
			return nil, errors.Join(err, closeAll(execs))
		}
		execs = append(execs, c)
	}
	prep, err := NewPreparer(strategies)
	if err != nil {
		return nil, errors.Join(err, closeAll(execs))
	}
	return NewEngine(cfg, prep, execs)
}

func closeAll(execs []spec.Executor) error {
	var errs []error
	for _, x := range execs {
		if c, ok := x.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// NewEngine builds the Engine over executors (any order) with cfg's strictness, debug
// flag and logger. prep may be nil (a host Preparer). The Engine owns the executors: its
// Close closes those that hold resources, and so does a failed NewEngine.
func NewEngine(cfg Config, prep *allocator.Preparer, executors []spec.Executor) (*attention.Engine, error) {
	e, err := attention.NewEngine(attention.Params{
		Executors: executors,
		Preparer:  prep,
		Strict:    cfg.Strict,
		Logger:    cfg.Logger,
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, fmt.Errorf("app: building the engine: %w", errors.Join(err, closeAll(executors)))
	}
	return e, nil
}

// NewLayer builds a MultiHeadAttention that runs its attention on e.
func NewLayer(p layer.Params, e *attention.Engine) (*layer.MultiHeadAttention, error) {
	return layer.New(p, e)
}

// EngineIn is what the fx engine provider consumes: the config, the preparer and the
// executors group.
type EngineIn struct {
	fx.In
	Lifecycle fx.Lifecycle
	Config    Config
	Preparer  *allocator.Preparer
	Executors []spec.Executor `group:"orchard.executors"`
}

// provideEngine is NewEngine for fx: it registers Engine.Close as an OnStop hook.
func provideEngine(in EngineIn) (*attention.Engine, error) {
	e, err := NewEngine(in.Config, in.Preparer, in.Executors)
	if err != nil {
		return nil, err
	}
	in.Lifecycle.Append(fx.Hook{OnStop: func(context.Context) error { return e.Close() }})
	return e, nil
}
