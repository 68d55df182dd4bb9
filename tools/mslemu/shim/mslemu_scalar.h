// Scalar types of MSL on the CPU: half (_Float16, rounded after every operation, as g++
// does for _Float16 on x86-64; in software where the compiler lacks _Float16), bfloat
// (software, round to nearest even), the short integer names, and the traits the vector
// and math headers use.
#ifndef MSLEMU_SCALAR_H
#define MSLEMU_SCALAR_H
#pragma GCC system_header

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace metal {

typedef unsigned int uint;
typedef unsigned short ushort;
typedef unsigned char uchar;
typedef unsigned long ulong;

// A 16-bit float in software: arithmetic in float, rounded back (to nearest even) after
// every operation, like half on the GPU; mixed with float it gives float.
#define MSLEMU_SOFT16(T)                                                        \
  struct T {                                                                    \
    uint16_t bits;                                                              \
    T() = default;                                                              \
    T(float f) : bits(encode(f)) {}                                             \
    T(double f) : bits(encode(float(f))) {}                                     \
    T(int v) : bits(encode(float(v))) {}                                        \
    T(unsigned v) : bits(encode(float(v))) {}                                   \
    T(long v) : bits(encode(float(v))) {}                                       \
    T(unsigned long v) : bits(encode(float(v))) {}                              \
    T(short v) : bits(encode(float(v))) {}                                      \
    T(unsigned short v) : bits(encode(float(v))) {}                            \
    T(bool v) : bits(encode(v ? 1.0f : 0.0f)) {}                                \
    /* from the other 16-bit float types (_Float16 is not arithmetic in g++ 12) */ \
    template <class U, std::enable_if_t<!std::is_arithmetic<U>::value &&         \
                                            !std::is_same<U, T>::value &&        \
                                            std::is_convertible<U, float>::value, \
                                        int> = 0>                                \
    T(U v) : bits(encode(float(v))) {}                                          \
    operator float() const { return decode(bits); }                             \
    static T from_bits(uint16_t b) {                                            \
      T r;                                                                      \
      r.bits = b;                                                               \
      return r;                                                                 \
    }                                                                           \
    T operator-() const { return from_bits(uint16_t(bits ^ 0x8000u)); }         \
    T operator+() const { return *this; }                                       \
    static uint16_t encode(float f);                                            \
    static float decode(uint16_t b);                                            \
  };

// bfloat: 8 exponent bits, 7 mantissa bits. Under the address-space check (clang, never
// run) the compiler's __bf16, so that bfloat is a scalar like half there; clang before 17
// has no arithmetic on it.
#if defined(MSLEMU_ADDRESS_SPACES) && defined(__clang__)
typedef __bf16 bfloat;
#define MSLEMU_NATIVE_BFLOAT 1
#else
#define MSLEMU_NATIVE_BFLOAT 0
MSLEMU_SOFT16(bfloat)

inline float bfloat::decode(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t bfloat::encode(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
#endif

#if !defined(MSLEMU_SOFT_HALF) && (defined(__STDCPP_FLOAT16_T__) || (defined(__x86_64__) && defined(__FLT16_MANT_DIG__)))
// g++ computes _Float16 in float and rounds after every operation (x86-64).
typedef _Float16 half;
#define MSLEMU_NATIVE_HALF 1
#else
// No _Float16 in this compiler's C++ (g++ 12 on AArch64): a software IEEE binary16.
MSLEMU_SOFT16(half)
#define MSLEMU_NATIVE_HALF 0

inline float half::decode(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while ((man & 0x400u) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t half::encode(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  int32_t exp = int32_t((u >> 23) & 0xffu);
  uint32_t man = u & 0x7fffffu;
  if (exp == 0xff) return uint16_t(sign | (man ? 0x7e00u : 0x7c00u));
  if (exp == 0 && man == 0) return sign;
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return uint16_t(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return sign;
    uint32_t m = man | 0x800000u, shift = uint32_t(14 - e), hv = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (hv & 1u))) hv++;
    return uint16_t(sign | hv);
  }
  uint32_t hv = uint32_t(e) << 10 | man >> 13, rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (hv & 1u))) hv++;
  return uint16_t(sign | hv);
}
#endif

#undef MSLEMU_SOFT16

}  // namespace metal

// Traits, in their own namespace so kernels never see them through `using namespace metal`.
namespace mslemu {

template <class T> struct is_float_like : std::is_floating_point<T> {};
template <> struct is_float_like<metal::half> : std::true_type {};
template <> struct is_float_like<metal::bfloat> : std::true_type {};

template <class T> struct is_scalar_num
    : std::integral_constant<bool, std::is_arithmetic<T>::value || is_float_like<T>::value> {};

template <class T> constexpr bool is_float_like_v = is_float_like<T>::value;
template <class T> constexpr bool is_scalar_num_v = is_scalar_num<T>::value;

}  // namespace mslemu

namespace metal {

// Arithmetic of a software 16-bit type S: S op S -> S; S op integer -> S; S op float ->
// float; S op double -> double.
#define MSLEMU_SOFT16_OP(S, op)                                                           \
  inline S operator op(S a, S b) { return S(float(a) op float(b)); }                      \
  template <class U, std::enable_if_t<std::is_integral<U>::value, int> = 0>               \
  inline S operator op(S a, U b) { return S(float(a) op float(b)); }                      \
  template <class U, std::enable_if_t<std::is_integral<U>::value, int> = 0>               \
  inline S operator op(U a, S b) { return S(float(a) op float(b)); }                      \
  inline float operator op(S a, float b) { return float(a) op b; }                        \
  inline float operator op(float a, S b) { return a op float(b); }                        \
  inline double operator op(S a, double b) { return double(float(a)) op b; }              \
  inline double operator op(double a, S b) { return a op double(float(b)); }              \
  template <class U> inline S& operator op##=(S& a, U b) {                                \
    a = S(float(a) op float(b));                                                          \
    return a;                                                                             \
  }
#define MSLEMU_SOFT16_CMP(S, op)                                                          \
  inline bool operator op(S a, S b) { return float(a) op float(b); }                      \
  template <class U, std::enable_if_t<mslemu::is_scalar_num_v<U> &&                       \
                                          !mslemu::is_float_like_v<U>, int> = 0>          \
  inline bool operator op(S a, U b) { return float(a) op float(b); }                      \
  template <class U, std::enable_if_t<mslemu::is_scalar_num_v<U> &&                       \
                                          !mslemu::is_float_like_v<U>, int> = 0>          \
  inline bool operator op(U a, S b) { return float(a) op float(b); }                      \
  inline bool operator op(S a, float b) { return float(a) op b; }                         \
  inline bool operator op(float a, S b) { return a op float(b); }                         \
  inline bool operator op(S a, double b) { return double(float(a)) op b; }                \
  inline bool operator op(double a, S b) { return a op double(float(b)); }
#define MSLEMU_SOFT16_ALL(S)                                                              \
  MSLEMU_SOFT16_OP(S, +) MSLEMU_SOFT16_OP(S, -) MSLEMU_SOFT16_OP(S, *)                    \
  MSLEMU_SOFT16_OP(S, /) MSLEMU_SOFT16_CMP(S, ==) MSLEMU_SOFT16_CMP(S, !=)                \
  MSLEMU_SOFT16_CMP(S, <) MSLEMU_SOFT16_CMP(S, <=) MSLEMU_SOFT16_CMP(S, >)                \
  MSLEMU_SOFT16_CMP(S, >=)

#if !MSLEMU_NATIVE_BFLOAT
MSLEMU_SOFT16_ALL(bfloat)
#endif
#if !MSLEMU_NATIVE_HALF
MSLEMU_SOFT16_ALL(half)
#endif

// bfloat with half: float.
#if !MSLEMU_NATIVE_BFLOAT
#define MSLEMU_MIXED(op, R)                                                    \
  inline R operator op(bfloat a, half b) { return float(a) op float(b); }      \
  inline R operator op(half a, bfloat b) { return float(a) op float(b); }
MSLEMU_MIXED(+, float)
MSLEMU_MIXED(-, float)
MSLEMU_MIXED(*, float)
MSLEMU_MIXED(/, float)
MSLEMU_MIXED(==, bool)
MSLEMU_MIXED(!=, bool)
MSLEMU_MIXED(<, bool)
MSLEMU_MIXED(<=, bool)
MSLEMU_MIXED(>, bool)
MSLEMU_MIXED(>=, bool)
#undef MSLEMU_MIXED
#endif
#undef MSLEMU_SOFT16_ALL
#undef MSLEMU_SOFT16_CMP
#undef MSLEMU_SOFT16_OP

// numeric_limits: std's for the standard types, MSL's values for half and bfloat.
template <class T> struct numeric_limits : std::numeric_limits<T> {};

template <> struct numeric_limits<half> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 11;
#if MSLEMU_NATIVE_HALF
  static constexpr half min() { return half(6.103515625e-05f); }
  static constexpr half max() { return half(65504.0f); }
  static constexpr half lowest() { return half(-65504.0f); }
  static constexpr half epsilon() { return half(0.0009765625f); }
  static constexpr half infinity() { return half(__builtin_inff()); }
  static constexpr half quiet_NaN() { return half(__builtin_nanf("")); }
  static constexpr half denorm_min() { return half(5.9604644775390625e-08f); }
#else
  static half min() { return half::from_bits(0x0400); }
  static half max() { return half::from_bits(0x7bff); }
  static half lowest() { return half::from_bits(0xfbff); }
  static half epsilon() { return half::from_bits(0x1400); }
  static half infinity() { return half::from_bits(0x7c00); }
  static half quiet_NaN() { return half::from_bits(0x7e00); }
  static half denorm_min() { return half::from_bits(0x0001); }
#endif
};

template <> struct numeric_limits<bfloat> {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr int digits = 8;
#if MSLEMU_NATIVE_BFLOAT
  static bfloat min() { return bfloat(1.17549435e-38f); }
  static bfloat max() { return bfloat(3.38953139e38f); }
  static bfloat lowest() { return bfloat(-3.38953139e38f); }
  static bfloat epsilon() { return bfloat(0.0078125f); }
  static bfloat infinity() { return bfloat(__builtin_inff()); }
  static bfloat quiet_NaN() { return bfloat(__builtin_nanf("")); }
  static bfloat denorm_min() { return bfloat(9.18354962e-41f); }
#else
  static bfloat min() { return bfloat::from_bits(0x0080); }
  static bfloat max() { return bfloat::from_bits(0x7f7f); }
  static bfloat lowest() { return bfloat::from_bits(0xff7f); }
  static bfloat epsilon() { return bfloat::from_bits(0x3c00); }
  static bfloat infinity() { return bfloat::from_bits(0x7f80); }
  static bfloat quiet_NaN() { return bfloat::from_bits(0x7fc0); }
  static bfloat denorm_min() { return bfloat::from_bits(0x0001); }
#endif
};

// as_type<T>(x): reinterprets the bits of x (sizes must match).
template <class T, class U> inline T as_type(const U& x) {
  static_assert(sizeof(T) == sizeof(U), "as_type: sizes differ");
  T r;
  std::memcpy((void*)&r, (const void*)&x, sizeof(T));  // C casts: x may be in any address space
  return r;
}

}  // namespace metal

#endif
