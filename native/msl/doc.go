// Package msl holds Orchard's Metal Shading Language kernels — the fused FlashAttention
// forward and backward in attention.metal and the parameter block they share with host
// code in attention_params.h — and embeds them for the programs that need the text.
//
// Three consumers compile the same files, so there is no second copy of a kernel:
//
//   - on macOS, Bazel's apple_metal_library targets in //native/msl/metallib compile
//     them ahead of time into two metallibs, one per library below:
//     //native/msl/metallib:attention_metallib (-std=metal3.0: float32 and float16) and
//     //native/msl/metallib:attention_bf16_metallib (-std=metal3.1 with
//     ATTN_LIBRARY_BFLOAT=1: bfloat16), which package native/msl/metallib finds at run
//     time;
//   - the Metal executor may instead compile Source("attention.metal") at run time
//     (newLibraryWithSource), which needs the local includes inlined;
//   - on Linux, tools/mslemu compiles them as C++ against its MSL shim and runs them on
//     the CPU; it checks its generated adapters against Sources.
//
// Libraries: bfloat needs Metal Shading Language 3.1 (macOS 14). Compiled with MSL 3.0
// the file instantiates the float32 and float16 kernels only, so they run wherever Metal
// 3 does; with 3.1 or later also the bfloat16 ones; with the macro ATTN_LIBRARY_BFLOAT=1
// only the bfloat16 ones. A run-time compile therefore builds two libraries from the one
// source — "attention" (MSL 3.0) and "attention_bf16" (MSL 3.1, ATTN_LIBRARY_BFLOAT=1);
// go/attention/mslplan's LibraryFor says which holds a kernel — and the two metallib
// targets are compiled with the same versions and macros. Compiled with -std=metal3.1
// and no macro the file holds all of them. The emulator builds every instantiation Metal
// gets (those the tile table can select) plus, under MSLEMU, small test tiles.
//
// The kernels are specialised with function constants (attn_fc_*, indices ATTN_FC_* in
// attention_params.h), whose values per problem come from mslplan.Plan.Constants.
//
// Which kernel to run, with what grid, threadgroup size and buffers, is decided in
// go/attention/mslplan, never here. This package holds no Go logic beyond reading the
// embedded files.
package msl
