// REJECT clang: no matching function for call to 'scale_of'
// Parameters in the constant address space bind only to constant references: a helper
// taking `const Params&` (thread) cannot be given one.
#include <metal_stdlib>
using namespace metal;

struct Params {
  float scale;
};

inline float scale_of(const Params& p) { return p.scale; }

[[kernel]] void k(device float* out [[buffer(0)]], constant Params& p [[buffer(1)]],
                  uint tid [[thread_index_in_threadgroup]]) {
  out[tid] = scale_of(p);
}
