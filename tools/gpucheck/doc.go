// Command gpucheck gives a verdict on Orchard's Metal kernels in one command:
//
//	go run ./tools/gpucheck -o gpucheck.md     (or: bazel run //tools/gpucheck -- -o …)
//
// On a Mac it reports the device, GPU family and macOS version; builds every pipeline of
// the device's tile table and lists its maxTotalThreadsPerThreadgroup and static
// threadgroup memory; runs the lane-layout probe (native/msl/lane_probe.metal) against the
// layout the kernels assume; runs every kernel on a catalogue of problems (each option,
// each dtype, odd head dims, N ≠ M, GQA) against the exact reference; and times forward
// and forward+backward at D = 64, 128, 256 in metal-flash-attention's convention next to
// the CPU executor. On Linux, with no GPU, it runs the same catalogue through the MSL
// emulator (both tile tables; timings omitted), so the program itself is tested there.
//
// It writes one Markdown report and exits with status 1 on any mismatch (2 when it could
// not run at all).
package main
