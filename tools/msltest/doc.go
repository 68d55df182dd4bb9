// Package msltest holds the fused attention kernels of native/msl against the exact
// reference (go/fallback) by running them on the CPU through the MSL emulator
// (tools/mslemu), with the dispatch geometry of go/attention/mslplan — the same plan the
// Metal executor uses on a Mac.
//
// Its tests cover every kernel (forward, Delta, dK/dV, dQ), every dtype, every option of
// the contract on a few hundred random problems whose sizes are not tile multiples, the
// PyTorch oracle vectors of go/fallback/oracletest, dropout decisions bit for bit,
// determinism across thread schedules, and the C layout of the parameter block. They
// skip with a message when cgo (and so the emulator) is unavailable.
//
// The emulator compiles a subset of the kernel instantiations (the C++ build of all of
// them would dominate CI); the subset, and the generated instantiation block of
// native/msl/attention.metal, are defined in instantiations_test.go: run
//
//	go test ./tools/msltest -run TestInstantiations -update
//	go generate ./tools/mslemu
//
// after changing the tile table or the subset. What emulation proves and what it cannot
// is written down in docs/EMULATION.md.
//
// The package has no API: its non-test files only expose the C header's layout to the
// tests through cgo.
package msltest
