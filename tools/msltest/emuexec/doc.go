// Package emuexec runs the fused attention kernels of native/msl on the CPU through the
// MSL emulator (tools/mslemu), with the dispatch geometry, parameter block and function
// constants of go/attention/mslplan: the plan the Metal executor makes on a Mac.
//
// Runner launches one plan's dispatches, the way the Metal executor encodes them: one
// byte buffer per binding, Params at mslplan.BufParams, the plan's function constants on
// every launch. Executor wraps it as a spec.Executor (for one GPU family's tile table), so
// that code written against the executor interface — tools/gpucheck's catalogue — runs
// the same on the emulator and on a GPU, and records which kernels it launched.
//
// It is a test tool, not an executor for production: the emulator runs every GPU thread
// as a fiber on one OS thread, orders of magnitude slower than the CPU executor. Without
// cgo on Linux every call fails with an error wrapping mslemu.ErrUnavailable.
package emuexec
