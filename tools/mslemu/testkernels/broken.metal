// Deliberately broken kernels: each must end its launch with a reported error that names
// the call site, never a hang or a crash. Buffer 0 is a float array of the grid's size.
#include <metal_stdlib>
using namespace metal;

// A barrier inside a branch taken by half the threads.
[[kernel]] void test_broken_barrier_in_branch(device float* out [[buffer(0)]],
                                              uint tid [[thread_index_in_threadgroup]],
                                              uint n [[threads_per_threadgroup]]) {
  threadgroup float t[1024];
  t[tid] = float(tid);
  if (tid < n / 2) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // BROKEN_BARRIER_LINE
  }
  out[tid] = t[(tid + 1) % n];
}

// Two different barriers: the halves of the threadgroup wait at different lines.
[[kernel]] void test_broken_two_barriers(device float* out [[buffer(0)]],
                                         uint tid [[thread_index_in_threadgroup]]) {
  if (tid % 2 == 0) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // EVEN_BARRIER_LINE
  } else {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // ODD_BARRIER_LINE
  }
  out[tid] = 1.0f;
}

// A SIMD reduction in a branch that half the lanes take.
[[kernel]] void test_broken_divergent_simd(device float* out [[buffer(0)]],
                                           uint tid [[thread_index_in_threadgroup]],
                                           uint lane [[thread_index_in_simdgroup]]) {
  float x = float(tid);
  if (lane < 16) {
    x = simd_sum(x);  // DIVERGENT_SIMD_LINE
  }
  out[tid] = x;
}

// An early return before a barrier that the other threads reach.
[[kernel]] void test_broken_early_return(device float* out [[buffer(0)]],
                                         uint tid [[thread_index_in_threadgroup]]) {
  if (tid >= 40) return;
  threadgroup_barrier(mem_flags::mem_threadgroup);  // EARLY_RETURN_BARRIER_LINE
  out[tid] = 1.0f;
}

// Thread 0 spins until thread 1 sets a flag: a deadlock on a GPU whenever the two share
// a SIMD group, and an endless loop here, ended by the launch timeout.
[[kernel]] void test_broken_spin_deadlock(device float* out [[buffer(0)]],
                                          uint tid [[thread_index_in_threadgroup]]) {
  threadgroup volatile uint flag[1];
  if (tid == 0) flag[0] = 0u;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    while (flag[0] == 0u) {
    }
  }
  if (tid == 1) flag[0] = 1u;
  out[tid] = 1.0f;
}

// Every thread reads one element past the end of its buffer.
[[kernel]] void test_broken_out_of_bounds(device float* out [[buffer(0)]],
                                          uint gid [[thread_position_in_grid]],
                                          uint n [[threads_per_grid]]) {
  out[gid] = out[gid + n];
}

// Reads a buffer slot that the launch leaves unbound.
[[kernel]] void test_broken_unbound(device float* out [[buffer(0)]], device const float* in [[buffer(1)]],
                                    uint gid [[thread_position_in_grid]]) {
  out[gid] = in[gid];
}

// A missing barrier between writing threadgroup memory and reading a neighbour's element:
// gives the right answer only in some thread orders (the emulator's Reverse order
// exposes it). out[tid] should be tid + 1 (mod n).
[[kernel]] void test_racy_missing_barrier(device float* out [[buffer(0)]],
                                          uint tid [[thread_index_in_threadgroup]],
                                          uint n [[threads_per_threadgroup]]) {
  threadgroup float t[1024];
  t[tid] = float(tid);
  // threadgroup_barrier(mem_flags::mem_threadgroup) is missing here.
  out[tid] = t[(tid + 1) % n];
}

// A thread array far larger than a fiber's stack.
[[kernel]] void test_broken_stack_overflow(device float* out [[buffer(0)]],
                                           uint tid [[thread_index_in_threadgroup]]) {
  float big[1 << 20];
  for (uint i = 0; i < (1u << 20); i += 1024u) big[i] = float(tid + i);
  out[tid] = big[(tid * 1024u) % (1u << 20)];
}
