// Package app is Orchard's application edge: it wires allocator strategies, executors,
// the Engine and the trainable layer together, with go.uber.org/fx for the programs in
// its subdirectories (smoke, bench). It is the only Orchard package that imports fx.
//
// Every constructor here is a plain function that also works without fx — NewPreparer,
// CPUFlashExecutor, MetalExecutors, Executors, NewEngine, NewLayer — and the fx modules
// (Module, AllocatorModule, ExecutorsModule, EngineModule, LayerModule) only register them.
//
// Executors and allocator strategies are fx value groups, "orchard.executors" and
// "orchard.strategies". Value groups come in no particular order, so nothing here relies
// on it: each executor carries an explicit priority (the constants below) and the Engine
// sorts by it, with the reference last; strategies carry a priority too, and the Preparer
// uses the highest.
//
// MetalExecutors is where the Metal executor (go/attention/metal) joins: where it is
// unavailable — other systems, no cgo, no suitable GPU — it contributes nothing to the
// group and logs why; asked for by name, its absence is an error.
package app
