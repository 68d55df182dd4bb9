// Many instantiations of one template, for the generator's sharding (each must be built,
// in whichever translation unit, and launch with its own function constants). Instantiations
// inside `#ifndef MSLEMU_KGEN_SHARD` are spread over several translation units.
#include <metal_stdlib>
using namespace metal;

constant int shard_offset [[function_constant(0)]];

// out[tid] = N * 1000 + shard_offset + tid
template <int N>
[[kernel]] void test_sharded(device int* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = N * 1000 + shard_offset + int(tid);
}

// Outside the guard: compiled in the first unit, like a non-template kernel.
template [[host_name("test_sharded_fixed")]] [[kernel]] void test_sharded<999>(
    device int* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]);

#define SHARD_INSTANTIATE(N)                                                                   \
  template [[host_name("test_sharded_" #N)]] [[kernel]] void test_sharded<N>(device int* out [[buffer(0)]], \
                                                                          uint tid [[thread_index_in_threadgroup]]);

#ifndef MSLEMU_KGEN_SHARD
SHARD_INSTANTIATE(0)
SHARD_INSTANTIATE(1)
SHARD_INSTANTIATE(2)
SHARD_INSTANTIATE(3)
SHARD_INSTANTIATE(4)
SHARD_INSTANTIATE(5)
SHARD_INSTANTIATE(6)
SHARD_INSTANTIATE(7)
SHARD_INSTANTIATE(8)
SHARD_INSTANTIATE(9)
SHARD_INSTANTIATE(10)
SHARD_INSTANTIATE(11)
SHARD_INSTANTIATE(12)
SHARD_INSTANTIATE(13)
SHARD_INSTANTIATE(14)
SHARD_INSTANTIATE(15)
SHARD_INSTANTIATE(16)
SHARD_INSTANTIATE(17)
SHARD_INSTANTIATE(18)
SHARD_INSTANTIATE(19)
SHARD_INSTANTIATE(20)
SHARD_INSTANTIATE(21)
SHARD_INSTANTIATE(22)
SHARD_INSTANTIATE(23)
SHARD_INSTANTIATE(24)
SHARD_INSTANTIATE(25)
SHARD_INSTANTIATE(26)
SHARD_INSTANTIATE(27)
SHARD_INSTANTIATE(28)
SHARD_INSTANTIATE(29)
#endif
