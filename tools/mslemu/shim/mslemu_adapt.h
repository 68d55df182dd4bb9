// Helpers for the generated adapters (kgen_*_gen.cc): bind a buffer slot to a kernel
// parameter, and convert a position to the parameter's declared type.
#ifndef MSLEMU_ADAPT_H
#define MSLEMU_ADAPT_H

#include "mslemu_vec.h"
#include "mslemu_rt.h"

namespace mslemu {

// A [[buffer(i)]] parameter of type T from the slot's address: a pointer as is, a
// reference to the slot's contents, or a copy of them for a value.
template <class T> inline T bind(void* p) {
  if constexpr (std::is_pointer<T>::value) {
    return static_cast<T>(p);
  } else if constexpr (std::is_reference<T>::value) {
    return *static_cast<std::remove_reference_t<T>*>(p);
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

}  // namespace mslemu

#endif
