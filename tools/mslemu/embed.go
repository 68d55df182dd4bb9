package mslemu

import "embed"

// The test kernels and the shim, embedded so that the go tool rebuilds this package (and
// recompiles the C++ that includes them) whenever they change: it does not track files
// that cgo sources #include. The project's kernels are embedded by native/msl's own
// package (see sources_gen.go).
//
//go:embed testkernels/*.metal shim
var embedded embed.FS
