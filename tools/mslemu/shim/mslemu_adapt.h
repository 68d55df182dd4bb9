// Helpers for the generated adapters (kgen_*_gen.cc): bind a buffer slot to a kernel
// parameter, and convert a position to the parameter's declared type.
#ifndef MSLEMU_ADAPT_H
#define MSLEMU_ADAPT_H
#pragma GCC system_header

#include "mslemu_vec.h"
#include "mslemu_rt.h"

#include <cstdio>

namespace mslemu {

// A [[buffer(i)]] parameter of type T from the slot's address: a pointer as is, a
// reference to the slot's contents, or a copy of them for a value.
// (C casts: under the address-space check they move the slot into the parameter's space.)
template <class T> inline T bind(void* p) {
  if constexpr (std::is_pointer<T>::value) {
    return (T)p;
  } else if constexpr (std::is_reference<T>::value) {
    return *(std::remove_reference_t<T>*)p;
  } else {
    return *static_cast<const T*>(p);
  }
}

// A position parameter of type T (scalar, or vector of 2 or 3) from a 3-element position.
template <class T> inline T pos(const uint32_t* v) {
  if constexpr (is_vecish<T>) {
    T r;
    for (int i = 0; i < T::size; i++) r.s[i] = typename T::value_type(v[i]);
    return r;
  } else {
    return T(v[0]);
  }
}
template <class T> inline T pos(uint32_t v) {
  const uint32_t a[3] = {v, 0, 0};
  return pos<T>(a);
}

// ---- function constants ----

// One function constant of a translation unit (generated): its index, name, kind and size
// (of the declared type), address, and whether the source tests it with
// is_function_constant_defined (then a launch may leave it undefined).
struct fconst {
  int index;
  const char* name;
  char kind;
  size_t size;
  void* addr;
  bool optional;
};

template <class T> constexpr char fc_kind() {
  return std::is_same<T, bool>::value                ? 'b'
         : std::is_same<T, metal::half>::value       ? 'h'
         : std::is_same<T, metal::bfloat>::value     ? 'B'
         : std::is_floating_point<T>::value          ? 'f'
         : std::is_integral<T>::value && std::is_signed<T>::value ? 'i'
         : std::is_integral<T>::value                ? 'u'
                                                     : '?';
}
template <class T> inline void* fc_addr(T* p) { return (void*)p; }

// Sets the unit's function constants from p->consts and gives the launch hint.
inline int prepare(mslemu_prep* p, unsigned max_threads, const fconst* fcs, int n) {
  p->max_threads = max_threads;
  p->ndefined = 0;
  p->err[0] = 0;
  for (int j = 0; j < p->nconsts; j++) {
    bool known = false;
    for (int i = 0; i < n; i++) known = known || fcs[i].index == p->consts[j].index;
    if (!known) {
      std::snprintf(p->err, sizeof p->err, "no function constant has index %d in this kernel's source",
                    int(p->consts[j].index));
      return -1;
    }
  }
  for (int i = 0; i < n; i++) {
    const fconst& c = fcs[i];
    const mslemu_const* v = nullptr;
    for (int j = 0; j < p->nconsts; j++)
      if (p->consts[j].index == c.index) v = &p->consts[j];
    if (v == nullptr) {
      if (c.optional) continue;
      std::snprintf(p->err, sizeof p->err,
                    "function constant %s [[function_constant(%d)]] is not given (its source does not "
                    "test it with is_function_constant_defined)",
                    c.name, c.index);
      return -1;
    }
    if (v->kind != c.kind || size_t(v->size) != c.size) {
      std::snprintf(p->err, sizeof p->err,
                    "function constant %s [[function_constant(%d)]]: given a value of kind '%c' and %d "
                    "bytes, declared kind '%c' and %zu bytes",
                    c.name, c.index, v->kind, int(v->size), c.kind, c.size);
      return -1;
    }
    std::memcpy(c.addr, v->bytes, c.size);
    if (p->ndefined == MSLEMU_MAX_CONSTANTS) {
      std::snprintf(p->err, sizeof p->err, "more than %d function constants", MSLEMU_MAX_CONSTANTS);
      return -1;
    }
    p->defined[p->ndefined++] = c.addr;
  }
  return 0;
}

}  // namespace mslemu

// is_function_constant_defined(name): whether the launch gave a value for the constant.
#define is_function_constant_defined(x) (::mslemu_fc_defined(::mslemu::fc_addr(&(x))) != 0)

#endif
