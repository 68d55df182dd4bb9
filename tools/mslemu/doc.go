// Package mslemu runs the project's Metal Shading Language kernels on the CPU, so that
// Linux machines without an Apple GPU can test them against the exact reference.
//
// The .metal files of native/msl are compiled unchanged, as C++14 with g++ (-pedantic-errors:
// MSL 3.x is C++14-based, so nothing later is accepted), against a shim
// reached by `#include <metal_stdlib>` (shim/), and run with GPU semantics: threadgroups of
// up to 1024 threads in SIMD groups of 32 lanes, threadgroup memory, barriers, SIMD-group
// functions and SIMD-group matrices. Go drives it through cgo:
//
//	err := mslemu.Launch("attention_fwd_bq16_bk8_d32_f32",
//		[3]int{blocks, batch * heads, 1}, // threadgroups, as dispatchThreadgroups
//		[3]int{64, 1, 1},                 // threads per threadgroup
//		[]mslemu.Buffer{{Data: q}, {Data: k}, ...}) // buffers[i] is bound at [[buffer(i)]]
//
// Function constants are given per launch, as Metal takes them per pipeline:
//
//	mslemu.LaunchWith(name, groups, threads, buffers, mslemu.Options{Constants: []mslemu.Constant{
//		{Index: 0, Value: true}, {Index: 1, Value: int32(2)}, {Index: 2, Value: float32(0.5)}}})
//
// Buffers are little-endian bytes in the kernel's layout; what the kernel writes is copied
// back into Buffer.Data. A nil Data leaves the slot unbound. Launches are serialised
// process-wide. A kernel that misbehaves makes Launch return a *KernelError that names
// the threadgroup, the call site and what every thread was doing, e.g.
//
//	mslemu: k: threadgroup (0,0,0): thread 64 returned while 64 thread(s) wait in
//	threadgroup_barrier at testkernels/broken.metal:13
//	  tid 0..63: waiting in threadgroup_barrier at testkernels/broken.metal:13
//	  tid 64: returned (the error above)
//	  tid 65..127: not started
//
// Without cgo, or on another system than Linux (a Mac has the GPU; clang rejects MSL's
// explicit-instantiation syntax), Launch returns ErrUnavailable and Available is false.
//
// # What emulation proves, and what it cannot
//
// It checks what the kernel computes: indexing and strides, masking and bounds, tail
// blocks, the barrier structure (every barrier reached by every thread, at the same line),
// SIMD-group reductions and shuffles, the SIMD-group matrix lane layout, the algorithm's
// numerics in float, half and bfloat, and accesses outside the buffers. Thread order
// between synchronisation points is a parameter (Options.Order), so results must not
// depend on it, and threadgroup memory is filled with NaN before every threadgroup, so a
// read of memory no thread wrote shows.
//
// It cannot check GPU memory ordering (device-memory visibility between threadgroups,
// which run one after another here), lockstep timing inside a SIMD group, Metal's fast-math
// and FMA choices (compare with tolerances), everything the Apple compiler rejects (the
// rules below and the checks of "What the build rejects" catch the common cases; the macOS
// Bazel job compiles the metallib), occupancy, register pressure or speed.
//
// # Execution model: fibers
//
// The threads of a threadgroup are fibers — user-level contexts with their own 256 KiB
// stack (MSLEMU_STACK_KIB), switched by a few instructions of assembly on x86-64 and
// AArch64 (ucontext elsewhere, about 25 times slower) — on the one OS thread that called
// Launch; threadgroups run one
// after another. A fiber runs until it waits (threadgroup_barrier, any SIMD-group function
// or matrix multiply), returns or fails; the scheduler then runs the next ready fiber.
// Measured on this project's 2-core CI machine: a threadgroup_barrier across 128 threads
// costs about 5 µs (OS threads with a futex barrier: 0.7–0.9 ms), a simd_sum in each of 4
// SIMD groups about 10 µs, a 64x64x64 tiled matmul (16 threadgroups of 256) 2 ms, the same
// with SIMD-group matrices (16 of 128) 3–4 ms (go test -bench . ./tools/mslemu).
//
// Fibers were chosen over threads for speed, determinism and diagnosis: a run is the same
// every time for a given Order and Seed; a deadlock is exactly "no fiber is ready"; a
// failing launch abandons its fibers instead of having to unblock threads; the shim needs
// no atomics. Divergence is reported when it happens (a thread at a barrier that others
// do not wait at, a thread returning while others wait, lanes of a SIMD group at different
// SIMD functions), so a broken kernel never hangs. A thread that spins forever without
// synchronising (waiting for a flag another thread sets: a deadlock on a GPU too) is ended
// by a watchdog after Options.Timeout (DefaultTimeout) with the same report. SIGSEGV,
// SIGBUS and SIGFPE in kernel code are caught for the length of a launch (Go's handlers get
// every other signal) and reported with the buffer and offset: each buffer ends right
// before an inaccessible page, and unbound slots point at one.
//
// # Semantics of the shim
//
//   - kernel, device, constant and thread are empty; threadgroup is static, in a section
//     the runtime poisons with 0xff before each threadgroup (NaN for floating types).
//   - half is _Float16 (g++ rounds after every operation, as the GPU does; a software
//     binary16 where C++ lacks _Float16, as g++ 12 on AArch64, or with -DMSLEMU_SOFT_HALF);
//     bfloat is a struct rounding to nearest even; bfloat op bfloat is bfloat, bfloat op
//     float is float, and likewise for the software half.
//   - Vectors of 2, 3 and 4 of every scalar type with .x .y .z .w, [], every swizzle of
//     length 2 and 3 (and 4 on 4-vectors; a.xy = a.yx and cond ? v.xy : v.zw work),
//     elementwise arithmetic and comparisons; a scalar widens to the vector's element type;
//     conversion between element types is explicit.
//   - packed_float3, packed_half4 and the other packed vectors: N elements, no padding,
//     the element's alignment; they convert to and from vec<T, N> and take part in vector
//     arithmetic, with .x .y .z .w and [] (no swizzles, as in MSL).
//   - The math, integer (mulhi, clz, popcount, rotate), relational (select, all, any,
//     isnan...) and geometric (dot, length) functions, also under precise:: and fast::
//     (one accuracy on the CPU: glibc's). METAL_FUNC is inline always_inline.
//   - Loop pragmas (#pragma clang loop unroll(full|disable|enable), unroll_count(N),
//     #pragma unroll [N], #pragma nounroll, and _Pragma forms) are ignored by g++; the
//     generator checks their form and that a loop follows, as clang does.
//   - Function constants, `constant T name [[function_constant(i)]];` at program scope
//     (bool, char, uchar, short, ushort, int, uint, long, ulong, float, half), are globals
//     of the kernel's translation unit that each launch sets from Options.Constants before
//     any thread runs. That is sound because launches are serialised process-wide and every
//     emulated thread is a fiber on the launching OS thread: nothing else reads them during
//     a launch. Every function constant the kernel's .metal file declares must be given,
//     with the Go type of its declared type, unless the file tests it with
//     is_function_constant_defined (then it may be left undefined); an index the file does
//     not declare is an error. A parameter attribute [[buffer(i), function_constant(c)]] is
//     accepted (the slot is simply unbound when the launch gives no buffer). A program-scope
//     constant initialised from a function constant is rejected by the generator: it would
//     be evaluated once at load.
//   - [[max_total_threads_per_threadgroup(N)]] on a kernel or its template definition (N
//     may use the template's parameters; the compiler evaluates it per instantiation): a
//     launch with more threads per threadgroup fails, as a pipeline's limit does on Metal.
//   - SIMD-group functions (sum, product, min, max, and/or/xor, prefix sums, shuffle, xor,
//     up, down, rotate, broadcast, broadcast_first, all, any, ballot) and quad_shuffle,
//     quad_shuffle_xor, quad_broadcast, quad_sum, quad_max exchange values through the
//     runtime: every active lane must call the same function at the same line. A shuffle
//     from outside the SIMD group (or from an inactive lane of a partial one) returns the
//     caller's own value. Reductions are pairwise in lane order.
//   - simdgroup_matrix<T, 8, 8> (simdgroup_float8x8, simdgroup_half8x8, simdgroup_bfloat8x8)
//     is distributed as on the GPU: lane l holds M[row][col] and M[row][col+1] with
//     qid = l/4, row = (qid & 4) + (l/2) % 4, col = (qid & 2)*2 + (l % 2)*2 (MLX's
//     BaseMMAFrag layout); thread_elements() is a reference to those two. Loads and stores
//     touch only the lane's elements; element (r, c) is
//     src[(origin.y + r)*elements_per_row + origin.x + c], or with transpose
//     src[(origin.y + c)*elements_per_row + origin.x + r] (origin.x is the column: not yet
//     checked on hardware). LaneLayout gives the layout to Go, for comparison with a probe
//     run on a GPU. simdgroup_load and simdgroup_store take a pointer to the matrix's own
//     element type only (as Metal's signatures). A multiply may mix element types (Metal
//     accepts it); it gathers the operands from all 32 lanes (it needs a full SIMD group) and
//     accumulates in float.
//
// # Rules for kernel authors
//
// Besides the MSL rules (barriers and SIMD functions in uniform control flow), the
// generator enforces or relies on these:
//
//  1. A kernel is a non-template `[[kernel]] void f(...) {...}` (host name f) or an
//     explicit instantiation with its full parameter list,
//     `template [[host_name("x")]] [[kernel]] void f<float, 32>(params);`, usually from a
//     macro (the generator runs the preprocessor). MLX's `decltype(f<...>) f<...>;` form
//     is not supported.
//  2. Every parameter has [[buffer(i)]] (an integer literal or a macro expanding to one;
//     a pointer or a reference) or a position attribute. Textures, samplers, [[stage_in]]
//     and threadgroup parameters are not supported.
//  3. Threadgroup memory is arrays (or scalars) declared inside a function with constexpr
//     sizes and indexed with offsets. A threadgroup pointer or reference — variable,
//     parameter or cast — is rejected with its line: as a static it would be one pointer
//     shared by all threads.
//  4. Floating literals carry the f suffix (0.5f): cgo does not allow
//     -fsingle-precision-constant, and in C++ 0.5 is a double. MSL's h suffix is not C++:
//     write half(0.5f). The generator rejects both, with their lines.
//  5. File-scope constants are `constant constexpr` (constant is empty here).
//  6. Each .metal file is compiled in its own C++ namespace and translation unit, so
//     helpers may share names across files; a .metal file must not rely on another's
//     definitions except through headers it includes.
//  7. No atomics; no [[threadgroup(i)]] memory set by the host.
//  8. Instantiations inside `#ifndef MSLEMU_KGEN_SHARD` may be built in translation units
//     of their own: the generator spreads them round-robin over units of PerShard (24),
//     each defining MSLEMU_KGEN_SHARD and instantiating its kernels through their adapters,
//     so that every instantiation is compiled, in parallel, without one huge unit.
//
// # What the build rejects
//
// Metal's compiler refuses things plain C++ accepts. The emulator refuses them too, each
// shown by a kernel in testkernels/rejected (TestRejectedKernels):
//
//   - anything past C++14 (if constexpr, fold expressions, structured bindings, inline
//     variables, nested namespace definitions, hex float literals): g++ -std=c++14
//     -pedantic-errors, with the shim as a system header so that only kernel code is held
//     to it;
//   - simdgroup_load/simdgroup_store between a matrix and memory of another element type;
//   - the generator's rules above, and loop pragmas clang would refuse;
//   - address spaces (TestAddressSpaces): clang++ 17 or later compiles every generated unit
//     with -DMSLEMU_ADDRESS_SPACES, under which device, constant and threadgroup are clang's
//     address spaces 1, 2 and 3 (thread is the default one), so a pointer or reference
//     converts only within its space, as in MSL. The check only compiles (bfloat is
//     clang's __bf16 there). g++ has no address spaces in C++ and typed wrappers cannot
//     follow MSL's prefix syntax, hence clang. What clang's C++ cannot express — copying a
//     whole struct or vector out of, or into, device, constant or threadgroup memory, which
//     MSL allows — is not counted, nor its refusal of the [[host_name]] instantiation
//     syntax. CI installs clang-19 (.ci/run); elsewhere the test skips without clang.
//
// # Adding or changing kernels
//
// The adapters that bind buffer slots and positions to each kernel's parameters are
// generated from the sources into kgen_*_gen.cc, kernels_gen.cc and sources_gen.go.
// After adding, removing or renaming a kernel, or adding or removing a .metal file in
// native/msl or tools/mslemu/testkernels, run from the repository root
//
//	go generate ./tools/mslemu
//
// (it runs `go run ./cmd/mslemu-gen` and needs g++), commit the generated files with the
// change, and update the BUILD files (gazelle) when files were added or removed.
// TestGeneratedFilesAreUpToDate fails when they are stale, and Launch returns ErrStale
// when a .metal file was added or removed without regenerating. Editing a kernel's body
// needs no regeneration unless it changes the kernels' parameters, function constants,
// launch hints or instantiations: native/msl's Go package embeds its sources and this
// package imports it, so the go tool rebuilds the C++ when they change.
//
// # ThreadSanitizer
//
// With the build tag mslemu_tsan the kernels and the runtime are built with
// -fsanitize=thread, with happens-before edges at barriers and SIMD exchanges only, so a
// missing barrier is reported as a data race at its source lines:
//
//	TSAN_OPTIONS=halt_on_error=1 go test -tags mslemu_tsan ./tools/mslemu ./tools/msltest
//
// Do not combine it with -race (two sanitizer runtimes); tests of deliberately racy or
// faulting kernels skip themselves in this mode (ThreadSanitizer is true). It is slower
// and not part of CI.
package mslemu
