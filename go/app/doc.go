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
// The Metal executor's seam is MetalExecutors: on systems without one it contributes
// nothing to the group (or, when Metal was asked for by name, an error).
package app
