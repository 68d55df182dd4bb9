// REJECT kgen: initialised from function constant
// A program-scope constant computed from a function constant: Metal evaluates it when the
// function is specialised, the emulator would evaluate it once when the program loads.
#include <metal_stdlib>
using namespace metal;

constant bool has_mask [[function_constant(0)]];
constant bool no_mask = !has_mask;

[[kernel]] void k(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = no_mask ? 1.0f : 0.0f;
}
