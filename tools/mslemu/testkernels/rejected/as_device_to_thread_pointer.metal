// REJECT clang: cannot initialize a variable of type 'float *' with an rvalue of type 'device float *'
// An unqualified pointer is a thread pointer in MSL: a device pointer does not convert to it.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  float* p = out + tid;
  *p = 1.0f;
}
