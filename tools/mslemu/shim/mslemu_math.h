// MSL math functions on the CPU. Each function has an overload for float, half and bfloat
// (half and bfloat compute in float and round the result back) and an elementwise version
// for vectors and swizzles. double goes to <cmath>'s global functions. precise:: and fast::
// name the same functions: the CPU has one accuracy.
#ifndef MSLEMU_MATH_H
#define MSLEMU_MATH_H
#pragma GCC system_header

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "mslemu_vec.h"

namespace mslemu {

// The vector type of a call with arguments A, B, C (at least one of them a vector; the
// vectors all of one type; scalars widen to it).
template <class... X> struct first_vec {};
template <class A, class... X> struct first_vec<A, X...> {
  typedef std::conditional_t<is_vecish<A>, vt<A>, first_vec<X...>> next;
  typedef typename std::conditional_t<is_vecish<A>, vec_traits<decay_t<A>>, next>::type type;
};
template <class... X> using first_vec_t = typename first_vec<X...>::type;
template <class... X>
constexpr bool any_vec = (false || ... || is_vecish<X>);

// True when every argument is a vector of type V or a scalar.
template <class V, class... X>
constexpr bool fits_vec =
    (true && ... && ((is_vecish<X> && std::is_same<decay_t<X>, V>::value) ||
                     (!is_vecish<X> && is_scalar_num_v<std::remove_cv_t<std::remove_reference_t<X>>>)));

}  // namespace mslemu

namespace metal {

// ---- float-like unary functions ----
#define MSLEMU_UNARY_F(name, expr)                                                        \
  inline float name(float x) { return (expr); }                                           \
  inline half name(half h) { return half(name(float(h))); }                               \
  inline bfloat name(bfloat b) { return bfloat(name(float(b))); }                         \
  template <class I, std::enable_if_t<std::is_integral<I>::value, int> = 0>               \
  inline float name(I i) { return name(float(i)); }                                       \
  template <class X, class V = mslemu::decay_t<X>,                                        \
            std::enable_if_t<mslemu::is_vecish<X>, int> = 0>                              \
  inline V name(const X& x) {                                                             \
    V v = x, r;                                                                           \
    for (int i = 0; i < V::size; i++) r.s[i] = name(v.s[i]);                              \
    return r;                                                                             \
  }

MSLEMU_UNARY_F(exp, std::exp(x))
MSLEMU_UNARY_F(exp2, std::exp2(x))
MSLEMU_UNARY_F(exp10, std::pow(10.0f, x))
MSLEMU_UNARY_F(log, std::log(x))
MSLEMU_UNARY_F(log2, std::log2(x))
MSLEMU_UNARY_F(log10, std::log10(x))
MSLEMU_UNARY_F(sqrt, std::sqrt(x))
MSLEMU_UNARY_F(rsqrt, 1.0f / std::sqrt(x))
MSLEMU_UNARY_F(tanh, std::tanh(x))
MSLEMU_UNARY_F(sinh, std::sinh(x))
MSLEMU_UNARY_F(cosh, std::cosh(x))
MSLEMU_UNARY_F(sin, std::sin(x))
MSLEMU_UNARY_F(cos, std::cos(x))
MSLEMU_UNARY_F(tan, std::tan(x))
MSLEMU_UNARY_F(asin, std::asin(x))
MSLEMU_UNARY_F(acos, std::acos(x))
MSLEMU_UNARY_F(atan, std::atan(x))
MSLEMU_UNARY_F(floor, std::floor(x))
MSLEMU_UNARY_F(ceil, std::ceil(x))
MSLEMU_UNARY_F(trunc, std::trunc(x))
MSLEMU_UNARY_F(round, std::round(x))
MSLEMU_UNARY_F(rint, std::nearbyint(x))
MSLEMU_UNARY_F(fabs, std::fabs(x))
MSLEMU_UNARY_F(fract, std::fmin(x - std::floor(x), 0.99999994f))
MSLEMU_UNARY_F(saturate, std::fmin(std::fmax(x, 0.0f), 1.0f))
MSLEMU_UNARY_F(sign, x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == x ? x * 0.0f : 0.0f)))
#undef MSLEMU_UNARY_F

// abs: fabs for floating types, the C abs for integers (the global ::abs(int) is the one
// MSL's abs(int) means; declaring another would make `abs(i)` ambiguous).
using ::abs;
inline float abs(float x) { return std::fabs(x); }
inline half abs(half x) { return half(std::fabs(float(x))); }
#if MSLEMU_NATIVE_BFLOAT
inline bfloat abs(bfloat x) { return bfloat(std::fabs(float(x))); }
#else
inline bfloat abs(bfloat x) { return bfloat::from_bits(uint16_t(x.bits & 0x7fffu)); }
#endif
inline long abs(long x) { return std::labs(x); }
inline short abs(short x) { return short(x < 0 ? -x : x); }
inline char abs(char x) { return char(x < 0 ? -x : x); }
inline uint abs(uint x) { return x; }
inline ulong abs(ulong x) { return x; }
inline ushort abs(ushort x) { return x; }
inline uchar abs(uchar x) { return x; }
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline V abs(const X& x) {
  V v = x, r;
  for (int i = 0; i < V::size; i++) r.s[i] = abs(v.s[i]);
  return r;
}

// ---- predicates ----
#define MSLEMU_PRED(name, expr)                                                        \
  inline bool name(float x) { return (expr); }                                         \
  inline bool name(half h) { return name(float(h)); }                                  \
  inline bool name(bfloat b) { return name(float(b)); }                                \
  template <class X, class V = mslemu::decay_t<X>,                                     \
            std::enable_if_t<mslemu::is_vecish<X>, int> = 0>                           \
  inline vec<bool, V::size> name(const X& x) {                                         \
    V v = x;                                                                           \
    vec<bool, V::size> r;                                                              \
    for (int i = 0; i < V::size; i++) r.s[i] = name(v.s[i]);                           \
    return r;                                                                          \
  }
MSLEMU_PRED(isnan, std::isnan(x))
MSLEMU_PRED(isinf, std::isinf(x))
MSLEMU_PRED(isfinite, std::isfinite(x))
MSLEMU_PRED(isnormal, std::isnormal(x))
MSLEMU_PRED(signbit, std::signbit(x))
#undef MSLEMU_PRED

// ---- binary functions ----
// MSLEMU_BINARY_T defines name(T, T) for one scalar type.
#define MSLEMU_BINARY_FLOAT(name, expr)                                                   \
  inline float name(float x, float y) { return (expr); }                                  \
  inline half name(half a, half b) { return half(name(float(a), float(b))); }             \
  inline bfloat name(bfloat a, bfloat b) { return bfloat(name(float(a), float(b))); }
#define MSLEMU_BINARY_VEC(name)                                                           \
  template <class A, class B, class V = mslemu::binvec_t<A, B>>                           \
  inline V name(const A& a, const B& b) {                                                 \
    V x = mslemu::widen<V>(a), y = mslemu::widen<V>(b), r;                                \
    for (int i = 0; i < V::size; i++) r.s[i] = name(x.s[i], y.s[i]);                      \
    return r;                                                                             \
  }

MSLEMU_BINARY_FLOAT(fmax, std::fmax(x, y))
MSLEMU_BINARY_FLOAT(fmin, std::fmin(x, y))
MSLEMU_BINARY_FLOAT(max, std::fmax(x, y))
MSLEMU_BINARY_FLOAT(min, std::fmin(x, y))
MSLEMU_BINARY_FLOAT(pow, std::pow(x, y))
MSLEMU_BINARY_FLOAT(powr, std::pow(x, y))
MSLEMU_BINARY_FLOAT(fmod, std::fmod(x, y))
MSLEMU_BINARY_FLOAT(atan2, std::atan2(x, y))
MSLEMU_BINARY_FLOAT(copysign, std::copysign(x, y))
MSLEMU_BINARY_FLOAT(fdim, std::fdim(x, y))
MSLEMU_BINARY_FLOAT(step, y < x ? 0.0f : 1.0f)
MSLEMU_BINARY_FLOAT(divide, x / y)

#define MSLEMU_MINMAX_INT(T)                               \
  inline T max(T a, T b) { return a < b ? b : a; }        \
  inline T min(T a, T b) { return b < a ? b : a; }        \
  inline T absdiff(T a, T b) { return a < b ? T(b - a) : T(a - b); }
MSLEMU_MINMAX_INT(int)
MSLEMU_MINMAX_INT(uint)
MSLEMU_MINMAX_INT(long)
MSLEMU_MINMAX_INT(ulong)
MSLEMU_MINMAX_INT(short)
MSLEMU_MINMAX_INT(ushort)
MSLEMU_MINMAX_INT(char)
MSLEMU_MINMAX_INT(uchar)
#undef MSLEMU_MINMAX_INT

MSLEMU_BINARY_VEC(fmax)
MSLEMU_BINARY_VEC(fmin)
MSLEMU_BINARY_VEC(max)
MSLEMU_BINARY_VEC(min)
MSLEMU_BINARY_VEC(pow)
MSLEMU_BINARY_VEC(powr)
MSLEMU_BINARY_VEC(fmod)
MSLEMU_BINARY_VEC(atan2)
MSLEMU_BINARY_VEC(copysign)
MSLEMU_BINARY_VEC(fdim)
MSLEMU_BINARY_VEC(step)
MSLEMU_BINARY_VEC(divide)
MSLEMU_BINARY_VEC(absdiff)

// ---- integer functions ----
inline uint mulhi(uint a, uint b) { return uint((uint64_t(a) * uint64_t(b)) >> 32); }
inline int mulhi(int a, int b) { return int((int64_t(a) * int64_t(b)) >> 32); }
inline ulong mulhi(ulong a, ulong b) { return ulong((unsigned __int128)a * b >> 64); }
inline long mulhi(long a, long b) { return long((__int128)a * b >> 64); }
inline ushort mulhi(ushort a, ushort b) { return ushort((uint(a) * uint(b)) >> 16); }
inline short mulhi(short a, short b) { return short((int(a) * int(b)) >> 16); }
MSLEMU_BINARY_VEC(mulhi)

inline uint rotate(uint v, uint n) {
  n &= 31;
  return n ? (v << n) | (v >> (32 - n)) : v;
}
inline int rotate(int v, int n) { return int(rotate(uint(v), uint(n))); }
MSLEMU_BINARY_VEC(rotate)

#define MSLEMU_BITS(T, bits)                                                            \
  inline T clz(T x) { return x ? T(__builtin_clzll((unsigned long long)(x)) - (64 - bits)) : T(bits); } \
  inline T ctz(T x) { return x ? T(__builtin_ctzll((unsigned long long)(x))) : T(bits); } \
  inline T popcount(T x) { return T(__builtin_popcountll((unsigned long long)(x) & (~0ull >> (64 - bits)))); }
MSLEMU_BITS(uint, 32)
MSLEMU_BITS(int, 32)
MSLEMU_BITS(ushort, 16)
MSLEMU_BITS(short, 16)
MSLEMU_BITS(uchar, 8)
MSLEMU_BITS(char, 8)
MSLEMU_BITS(ulong, 64)
MSLEMU_BITS(long, 64)
#undef MSLEMU_BITS

#undef MSLEMU_BINARY_FLOAT
#undef MSLEMU_BINARY_VEC

// ---- ternary functions ----
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline half fma(half a, half b, half c) { return half(std::fma(float(a), float(b), float(c))); }
inline bfloat fma(bfloat a, bfloat b, bfloat c) {
  return bfloat(std::fma(float(a), float(b), float(c)));
}
inline float mix(float x, float y, float a) { return x + (y - x) * a; }
inline half mix(half x, half y, half a) { return half(mix(float(x), float(y), float(a))); }
inline bfloat mix(bfloat x, bfloat y, bfloat a) { return bfloat(mix(float(x), float(y), float(a))); }

#define MSLEMU_CLAMP(T) \
  inline T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
MSLEMU_CLAMP(float)
MSLEMU_CLAMP(half)
MSLEMU_CLAMP(bfloat)
MSLEMU_CLAMP(int)
MSLEMU_CLAMP(uint)
MSLEMU_CLAMP(long)
MSLEMU_CLAMP(ulong)
MSLEMU_CLAMP(short)
MSLEMU_CLAMP(ushort)
MSLEMU_CLAMP(char)
MSLEMU_CLAMP(uchar)
#undef MSLEMU_CLAMP

#define MSLEMU_TERNARY_VEC(name)                                                         \
  template <class A, class B, class C,                                                   \
            std::enable_if_t<mslemu::any_vec<A, B, C>, int> = 0,                         \
            class V = mslemu::first_vec_t<A, B, C>,                                      \
            std::enable_if_t<mslemu::fits_vec<V, A, B, C>, int> = 0>                     \
  inline V name(const A& a, const B& b, const C& c) {                                    \
    V x = mslemu::widen<V>(a), y = mslemu::widen<V>(b), z = mslemu::widen<V>(c), r;      \
    for (int i = 0; i < V::size; i++) r.s[i] = name(x.s[i], y.s[i], z.s[i]);             \
    return r;                                                                            \
  }
MSLEMU_TERNARY_VEC(fma)
MSLEMU_TERNARY_VEC(mix)
MSLEMU_TERNARY_VEC(clamp)
#undef MSLEMU_TERNARY_VEC

// select(a, b, c): c ? b : a, elementwise for a vector c.
template <class T, std::enable_if_t<!mslemu::is_vecish<T>, int> = 0>
inline T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class A, class B, class C, class V = mslemu::binvec_t<A, B>>
inline V select(const A& a, const B& b, const C& c) {
  V x = mslemu::widen<V>(a), y = mslemu::widen<V>(b), r;
  if constexpr (mslemu::is_vecish<C>) {
    mslemu::decay_t<C> cc = c;
    static_assert(mslemu::decay_t<C>::size == V::size, "select: sizes differ");
    for (int i = 0; i < V::size; i++) r.s[i] = cc.s[i] ? y.s[i] : x.s[i];
  } else {
    for (int i = 0; i < V::size; i++) r.s[i] = c ? y.s[i] : x.s[i];
  }
  return r;
}

// ---- vector reductions ----
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline bool all(const X& x) {
  V v = x;
  for (int i = 0; i < V::size; i++)
    if (!v.s[i]) return false;
  return true;
}
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline bool any(const X& x) {
  V v = x;
  for (int i = 0; i < V::size; i++)
    if (v.s[i]) return true;
  return false;
}
inline bool all(bool b) { return b; }
inline bool any(bool b) { return b; }

template <class A, class B, class V = mslemu::binvec_t<A, B>,
          std::enable_if_t<mslemu::is_vecish<A> && mslemu::is_vecish<B>, int> = 0>
inline typename V::value_type dot(const A& a, const B& b) {
  V x = a, y = b;
  typename V::value_type r = x.s[0] * y.s[0];
  for (int i = 1; i < V::size; i++) r = r + x.s[i] * y.s[i];
  return r;
}
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline typename V::value_type length(const X& x) {
  return sqrt(dot(V(x), V(x)));
}

// The same functions under precise:: and fast::.
#define MSLEMU_ALIASES                                                                   \
  using metal::exp; using metal::exp2; using metal::exp10; using metal::log;             \
  using metal::log2; using metal::log10; using metal::sqrt; using metal::rsqrt;          \
  using metal::tanh; using metal::sinh; using metal::cosh; using metal::sin;             \
  using metal::cos; using metal::tan; using metal::asin; using metal::acos;              \
  using metal::atan; using metal::atan2; using metal::floor; using metal::ceil;          \
  using metal::trunc; using metal::round; using metal::rint; using metal::fabs;          \
  using metal::abs; using metal::fract; using metal::saturate; using metal::sign;        \
  using metal::fmax; using metal::fmin; using metal::max; using metal::min;              \
  using metal::pow; using metal::powr; using metal::fmod; using metal::copysign;         \
  using metal::fdim; using metal::step; using metal::divide; using metal::fma;           \
  using metal::mix; using metal::clamp; using metal::isnan; using metal::isinf;          \
  using metal::isfinite; using metal::length; using metal::dot;
namespace precise {
MSLEMU_ALIASES
}
namespace fast {
MSLEMU_ALIASES
}
#undef MSLEMU_ALIASES

}  // namespace metal

#ifndef MAXFLOAT
#define MAXFLOAT 3.40282347e+38f
#endif
#define MAXHALF ((metal::half)65504.0f)
#define HALF_MAX 65504.0f
#define HALF_MIN 6.103515625e-05f
#define M_E_F 2.71828182845904523536028747135266250f
#define M_LOG2E_F 1.44269504088896340735992468100189214f
#define M_LOG10E_F 0.434294481903251827651128918916605082f
#define M_LN2_F 0.693147180559945309417232121458176568f
#define M_LN10_F 2.30258509299404568401799145468436421f
#define M_PI_F 3.14159265358979323846264338327950288f
#define M_PI_2_F 1.57079632679489661923132169163975144f
#define M_PI_4_F 0.785398163397448309615660845819875721f
#define M_1_PI_F 0.318309886183790671537767526745028724f
#define M_2_PI_F 0.636619772367581343075535053490057448f
#define M_2_SQRTPI_F 1.12837916709551257389615890312154517f
#define M_SQRT2_F 1.41421356237309504880168872420969808f
#define M_SQRT1_2_F 0.707106781186547524400844362104849039f

#endif
