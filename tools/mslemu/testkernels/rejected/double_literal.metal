// REJECT kgen: without the f suffix
// 0.5 is a float in MSL but a double in C++: the emulator would compute in double.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = float(tid) * 0.5;
}
