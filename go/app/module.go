package app

import (
	"io"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/metal"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
)

// Group tags of the value groups.
const (
	executorsGroup  = `group:"orchard.executors"`
	strategiesGroup = `group:"orchard.strategies"`
)

// Module is the whole Orchard graph for cfg: it supplies cfg, registers the allocator,
// the executors cfg selects and the Engine. Add LayerModule and supply a layer.Params to
// get a *layer.MultiHeadAttention.
func Module(cfg Config) fx.Option {
	return fx.Options(
		fx.Supply(cfg),
		AllocatorModule(),
		ExecutorsModule(cfg),
		EngineModule(),
	)
}

// AllocatorModule puts the host strategy into the strategies group and provides the
// *allocator.Preparer built over the group's highest-priority member.
func AllocatorModule() fx.Option {
	return fx.Module("orchard.allocator",
		fx.Provide(
			fx.Annotate(HostStrategy, fx.ResultTags(strategiesGroup)),
			fx.Annotate(func(s []Strategy) (*allocator.Preparer, error) { return NewPreparer(s) },
				fx.ParamTags(strategiesGroup)),
		),
	)
}

// ExecutorsModule puts the executors cfg.Executor selects into the executors group: for
// "auto" the Metal executor where there is one and the CPU flash executor; for "cpuflash"
// or "metal" that one alone; for "reference" none (the Engine always appends the
// reference). A bad choice fails the graph with an *spec.ArgError.
func ExecutorsModule(cfg Config) fx.Option {
	choice, err := cfg.choice()
	if err != nil {
		return fx.Error(err)
	}
	var opts []fx.Option
	if choice == ExecutorAuto || choice == ExecutorMetal {
		required := choice == ExecutorMetal
		// The executor and its device's strategies come from one Metal value, so the
		// preparer and the engine see the same device.
		opts = append(opts, MetalModule(required, cfg.Logger, metal.Params{}))
	}
	if choice == ExecutorAuto || choice == ExecutorCPUFlash {
		opts = append(opts, fx.Provide(fx.Annotate(CPUFlashExecutor, fx.ResultTags(executorsGroup))))
	}
	return fx.Module("orchard.executors", opts...)
}

// EngineModule provides the *attention.Engine over the executors group and closes it on
// stop.
func EngineModule() fx.Option {
	return fx.Module("orchard.engine", fx.Provide(provideEngine))
}

// LayerModule provides a *layer.MultiHeadAttention from a layer.Params in the graph.
func LayerModule() fx.Option {
	return fx.Module("orchard.layer", fx.Provide(NewLayer))
}

// Logger is fx's own event log: silent unless verbose, then to w.
func Logger(verbose bool, w io.Writer) fx.Option {
	if !verbose {
		return fx.NopLogger
	}
	return fx.WithLogger(func() fxevent.Logger { return &fxevent.ConsoleLogger{W: w} })
}
