// Package metallib finds the Metal libraries that Bazel compiles ahead of time from
// native/msl/attention.metal, so that a program built with Bazel on macOS can load them
// instead of compiling the kernels' source at run time.
//
// Bazel builds two metallibs here with rules_apple's apple_metal_library, one per library
// of go/attention/mslplan (LibraryFor), each with the language version and macros of the
// run-time compile and with fast math off (-fno-fast-math, the command-line form of the
// executor's MathSafe):
//
//   - "attention" (attention.metallib): MSL 3.0, the float32 and float16 kernels;
//   - "attention_bf16" (attention_bf16.metallib): MSL 3.1 with ATTN_LIBRARY_BFLOAT=1, the
//     bfloat16 kernels.
//
// They reach a program as runfiles of this package's go_library (a data dependency on
// macOS only), found with rules_go's runfiles library. The go tool builds this package too,
// but builds no metallib: there Path returns an error wrapping ErrNotBuilt and the Metal
// executor compiles the embedded source.
//
// This package holds no Metal code and builds on every system; only the BUILD file loads
// rules_apple, so that a consumer of the kernel sources alone (//native/msl) does not.
package metallib
