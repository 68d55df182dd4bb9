// Package msltest holds the fused attention kernels of native/msl against the exact
// reference (go/fallback) by running them on the CPU through the MSL emulator
// (tools/mslemu), with the dispatch geometry and function constants of
// go/attention/mslplan — the plan the Metal executor uses on a Mac.
//
// Its tests run every instantiation Metal can be asked to run (mslplan.Instances, both
// tile tables) on fresh random problems, ragged and tile-aligned (TestEveryInstantiation;
// ORCHARD_MSL_SHARD=i/n runs one of n deterministic shards); every kernel (forward, Delta,
// dK/dV, dQ), every dtype and every option of the contract on a few hundred random
// problems with small test tiles, whose sizes are not tile multiples; the PyTorch oracle
// vectors of go/fallback/oracletest; dropout decisions bit for bit; determinism across
// thread schedules; rows with no visible key; huge finite biases (W1) and float32
// gradients (W2); and the C layout of the parameter block. They skip with a message when
// cgo (and so the emulator) is unavailable.
//
// The generated instantiation block of native/msl/attention.metal (every instance of the
// tile table, plus the test tiles under MSLEMU) is written from instantiations_test.go:
// run
//
//	go test ./tools/msltest -run TestInstantiations -update
//	go generate ./tools/mslemu
//
// after changing the tile table or the test tiles. What emulation proves and what it
// cannot is written down in docs/EMULATION.md.
//
// Subpackages: emuexec runs plans on the emulator (and is a spec.Executor over it);
// refcheck judges outputs against the reference. tools/gpucheck uses both.
//
// The package itself has no API: its non-test files only expose the C header's layout to
// the tests through cgo.
package msltest
