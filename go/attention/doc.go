// Package attention runs attention problems on the best executor that can take them.
//
// An Engine holds executors in priority order — a Metal executor on darwin, the CPU flash
// executor, and always, last, the exact reference from go/fallback — and keeps Orchard's
// promise: a call always completes when any executor can run it, and every fallback is
// visible. An executor that declines a problem (its Supports error wraps
// spec.ErrUnsupported) or fails while running hands the problem to the next one; the
// reason is counted in Stats, logged once per distinct reason through log/slog, and, with
// ORCHARD_DEBUG=1, every dispatch is logged with the executors skipped and why. Strict mode
// turns any fallback into an error, for tests and benchmarks that must know which
// executor ran.
//
// Before an executor runs, the Engine prepares each input with the allocator to what the
// executor declares it Needs (layout, dtype, storage); tensors that already fit are passed
// as they are, and copies are counted in Stats.
//
// The problem types and the Executor interface live in go/attention/spec; executors live
// in their own packages (go/attention/cpuflash, go/attention/metal, go/fallback).
package attention
