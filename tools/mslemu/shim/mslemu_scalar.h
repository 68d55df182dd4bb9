// Scalar types of MSL on the CPU: half (_Float16, rounded after every operation, as g++
// does for _Float16 on x86-64), bfloat (software, round to nearest even), the short
// integer names, and the traits the vector and math headers use.
#ifndef MSLEMU_SCALAR_H
#define MSLEMU_SCALAR_H

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace metal {

typedef _Float16 half;
typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;

// bfloat: 8 exponent bits, 7 mantissa bits. Arithmetic between bfloats is done in float
// and rounded back (round to nearest even), like half on the GPU; mixed with float it
// gives float.
struct bfloat {
  uint16_t bits;

  bfloat() = default;
  bfloat(float f) : bits(from_float(f)) {}
  bfloat(double f) : bits(from_float(float(f))) {}
  bfloat(_Float16 f) : bits(from_float(float(f))) {}
  bfloat(int v) : bits(from_float(float(v))) {}
  bfloat(unsigned v) : bits(from_float(float(v))) {}
  bfloat(long v) : bits(from_float(float(v))) {}
  bfloat(unsigned long v) : bits(from_float(float(v))) {}
  bfloat(short v) : bits(from_float(float(v))) {}
  bfloat(unsigned short v) : bits(from_float(float(v))) {}
  bfloat(bool v) : bits(from_float(v ? 1.0f : 0.0f)) {}

  operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }

  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }
  static bfloat from_bits(uint16_t b) {
    bfloat r;
    r.bits = b;
    return r;
  }

  bfloat operator-() const { return from_bits(uint16_t(bits ^ 0x8000u)); }
  bfloat operator+() const { return *this; }
};

}  // namespace metal

// Traits, in their own namespace so kernels never see them through `using namespace metal`.
namespace mslemu {

template <class T> struct is_float_like : std::is_floating_point<T> {};
template <> struct is_float_like<_Float16> : std::true_type {};
template <> struct is_float_like<metal::bfloat> : std::true_type {};

template <class T> struct is_scalar_num
    : std::integral_constant<bool, std::is_arithmetic<T>::value || is_float_like<T>::value> {};

template <class T> constexpr bool is_float_like_v = is_float_like<T>::value;
template <class T> constexpr bool is_scalar_num_v = is_scalar_num<T>::value;

// The float type that computes T's math: float for half and bfloat (rounded back on
// return), double for double.
template <class T> struct compute { typedef float type; };
template <> struct compute<double> { typedef double type; };

}  // namespace mslemu

namespace metal {

// bfloat arithmetic. bfloat op bfloat -> bfloat; bfloat op float/double/half -> float;
// bfloat op integer -> bfloat.
#define MSLEMU_BF_OP(op)                                                                   \
  inline bfloat operator op(bfloat a, bfloat b) { return bfloat(float(a) op float(b)); } \
  template <class U, std::enable_if_t<std::is_integral<U>::value, int> = 0>              \
  inline bfloat operator op(bfloat a, U b) { return bfloat(float(a) op float(b)); }      \
  template <class U, std::enable_if_t<std::is_integral<U>::value, int> = 0>              \
  inline bfloat operator op(U a, bfloat b) { return bfloat(float(a) op float(b)); }      \
  inline float operator op(bfloat a, float b) { return float(a) op b; }                  \
  inline float operator op(float a, bfloat b) { return a op float(b); }                  \
  inline float operator op(bfloat a, _Float16 b) { return float(a) op float(b); }        \
  inline float operator op(_Float16 a, bfloat b) { return float(a) op float(b); }        \
  inline double operator op(bfloat a, double b) { return double(float(a)) op b; }        \
  inline double operator op(double a, bfloat b) { return a op double(float(b)); }        \
  template <class U> inline bfloat& operator op##=(bfloat& a, U b) {                     \
    a = bfloat(float(a) op float(b));                                                    \
    return a;                                                                            \
  }
MSLEMU_BF_OP(+)
MSLEMU_BF_OP(-)
MSLEMU_BF_OP(*)
MSLEMU_BF_OP(/)
#undef MSLEMU_BF_OP

#define MSLEMU_BF_CMP(op)                                                                  \
  inline bool operator op(bfloat a, bfloat b) { return float(a) op float(b); }           \
  template <class U, std::enable_if_t<mslemu::is_scalar_num_v<U>, int> = 0>              \
  inline bool operator op(bfloat a, U b) { return float(a) op float(b); }                \
  template <class U, std::enable_if_t<mslemu::is_scalar_num_v<U>, int> = 0>              \
  inline bool operator op(U a, bfloat b) { return float(a) op float(b); }
MSLEMU_BF_CMP(==)
MSLEMU_BF_CMP(!=)
MSLEMU_BF_CMP(<)
MSLEMU_BF_CMP(<=)
MSLEMU_BF_CMP(>)
MSLEMU_BF_CMP(>=)
#undef MSLEMU_BF_CMP

// numeric_limits: std's for the standard types, MSL's values for half and bfloat.
template <class T> struct numeric_limits : std::numeric_limits<T> {};

template <> struct numeric_limits<half> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 11;
  static constexpr half min() { return half(6.103515625e-05f); }
  static constexpr half max() { return half(65504.0f); }
  static constexpr half lowest() { return half(-65504.0f); }
  static constexpr half epsilon() { return half(0.0009765625f); }
  static constexpr half infinity() { return half(__builtin_inff()); }
  static constexpr half quiet_NaN() { return half(__builtin_nanf("")); }
  static constexpr half denorm_min() { return half(5.9604644775390625e-08f); }
};

template <> struct numeric_limits<bfloat> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 8;
  static bfloat min() { return bfloat::from_bits(0x0080); }
  static bfloat max() { return bfloat::from_bits(0x7f7f); }
  static bfloat lowest() { return bfloat::from_bits(0xff7f); }
  static bfloat epsilon() { return bfloat::from_bits(0x3c00); }
  static bfloat infinity() { return bfloat::from_bits(0x7f80); }
  static bfloat quiet_NaN() { return bfloat::from_bits(0x7fc0); }
  static bfloat denorm_min() { return bfloat::from_bits(0x0001); }
};

// as_type<T>(x): reinterprets the bits of x (sizes must match).
template <class T, class U> inline T as_type(const U& x) {
  static_assert(sizeof(T) == sizeof(U), "as_type: sizes differ");
  T r;
  std::memcpy(static_cast<void*>(&r), static_cast<const void*>(&x), sizeof(T));
  return r;
}

}  // namespace metal

#endif
