// Package msl holds Orchard's Metal Shading Language kernels — the fused FlashAttention
// forward and backward in attention.metal and the parameter block they share with host
// code in attention_params.h — and embeds them for the programs that need the text.
//
// Three consumers compile the same files, so there is no second copy of a kernel:
//
//   - on macOS, Bazel's apple_metal_library (//native/msl:attention_metallib) compiles
//     them ahead of time into a metallib;
//   - the Metal executor may instead compile Source("attention.metal") at run time
//     (newLibraryWithSource), which needs the local includes inlined;
//   - on Linux, tools/mslemu compiles them as C++ against its MSL shim and runs them on
//     the CPU; it checks its generated adapters against Sources.
//
// The kernels use bfloat, so they need Metal Shading Language 3.1 (macOS 14): the
// metallib rule passes -std=metal3.1, and a run-time compile must set
// MTLCompileOptions.languageVersion to 3.1. Under the emulator (MSLEMU defined) the file
// instantiates only the subset the tests run; Metal gets every instantiation the tile
// table can select.
//
// Which kernel to run, with what grid, threadgroup size and buffers, is decided in
// go/attention/mslplan, never here. This package holds no Go logic beyond reading the
// embedded files.
package msl
