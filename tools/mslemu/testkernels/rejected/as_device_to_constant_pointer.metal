// REJECT clang: cannot initialize a variable of type 'constant float *' with an lvalue of type 'device float *'
// Device and constant memory are different address spaces: no conversion either way.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  constant float* c = out;
  out[tid] = c[0];
}
