package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/layer"
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
		for _, x := range executors {
			if c, ok := x.(io.Closer); ok {
				err = errors.Join(err, c.Close())
			}
		}
		return nil, fmt.Errorf("app: building the engine: %w", err)
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
