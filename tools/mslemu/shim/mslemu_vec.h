// MSL vector types: vec<T, N> for N = 2, 3, 4, with .x .y .z .w, subscripts, swizzles
// (every swizzle of length 2 and 3, and of length 4 on 4-vectors), elementwise arithmetic
// and comparisons. A 3-vector takes the room and alignment of a 4-vector, as in MSL.
//
// A swizzle is a member of the vector's anonymous union with the vector's storage and no
// data of its own; it reads as a vec<T, M> and assigns only its own components.
#ifndef MSLEMU_VEC_H
#define MSLEMU_VEC_H
#pragma GCC system_header

#include "mslemu_scalar.h"

namespace metal {

template <class T, int N> struct vec;
template <class V, class T, int S, int... I> struct swz;

}  // namespace metal

namespace mslemu {

template <int N> constexpr int storage_n = (N == 3 ? 4 : N);

// vec_traits<X>: is X a vector or swizzle, and which vector does it read as.
template <class X> struct vec_traits {
  static constexpr bool is_vec = false;
  static constexpr int n = 1;
  typedef X elem;
  typedef X type;
};
template <class T, int N> struct vec_traits<metal::vec<T, N>> {
  static constexpr bool is_vec = true;
  static constexpr int n = N;
  typedef T elem;
  typedef metal::vec<T, N> type;
};
template <class V, class T, int S, int... I> struct vec_traits<metal::swz<V, T, S, I...>> {
  static constexpr bool is_vec = true;
  static constexpr int n = sizeof...(I);
  typedef T elem;
  typedef V type;
};
template <class X> using vt = vec_traits<std::remove_cv_t<std::remove_reference_t<X>>>;
template <class X> constexpr bool is_vecish = vt<X>::is_vec;
template <class X> using decay_t = typename vt<X>::type;  // vec for vec/swizzle, else X

// Component i of a scalar (the scalar) or of a vector.
template <class X> inline auto comp(const X& x, int i) {
  if constexpr (is_vecish<X>) {
    return decay_t<X>(x).s[i];
  } else {
    (void)i;
    return x;
  }
}

// Number of scalar components in a constructor argument.
template <class X> constexpr int ncomp = vt<X>::n;

}  // namespace mslemu

namespace metal {

// An order on swizzle types, so that of two swizzles reading as the same vector type
// exactly one converts to the other: `cond ? v.xy : v.zw` then has a type.
template <int S, int... I> constexpr long swz_key() {
  long k = S;
  ((k = k * 5 + I + 1), ...);
  return k;
}

template <class V, class T, int S, int... I> struct swz {
  T s[mslemu::storage_n<S>];

  swz() = default;
  template <int S2, int... J,
            std::enable_if_t<sizeof...(J) == sizeof...(I) && (swz_key<S2, J...>() > swz_key<S, I...>()),
                             int> = 0>
  swz(const swz<V, T, S2, J...>& o) {
    V v = o;
    int k = 0;
    ((s[I] = v.s[k++]), ...);
  }

  operator V() const {
    V r;
    int k = 0;
    ((r.s[k++] = s[I]), ...);
    return r;
  }
  swz& operator=(const V& v) {
    int k = 0;
    ((s[I] = v.s[k++]), ...);
    return *this;
  }
  swz& operator=(const swz& o) { return *this = V(o); }
  // a.xy = a.yx: read the whole source before writing.
  template <int S2, int... J> swz& operator=(const swz<V, T, S2, J...>& o) { return *this = V(o); }
  template <class X, std::enable_if_t<mslemu::is_scalar_num_v<X>, int> = 0>
  swz& operator=(const X& x) {
    ((s[I] = T(x)), ...);
    return *this;
  }
  T operator[](int i) const { return V(*this).s[i]; }

  template <class X> swz& operator+=(const X& x) { return *this = V(*this) + x; }
  template <class X> swz& operator-=(const X& x) { return *this = V(*this) - x; }
  template <class X> swz& operator*=(const X& x) { return *this = V(*this) * x; }
  template <class X> swz& operator/=(const X& x) { return *this = V(*this) / x; }
};

#define MSLEMU_SWZ2(name, a, b) swz<vec<T, 2>, T, MSLEMU_SWZ_N, a, b> name;
#define MSLEMU_SWZ3(name, a, b, c) swz<vec<T, 3>, T, MSLEMU_SWZ_N, a, b, c> name;
#define MSLEMU_SWZ4(name, a, b, c, d) swz<vec<T, 4>, T, MSLEMU_SWZ_N, a, b, c, d> name;

template <class T, int N> struct vec_data;

template <class T> struct alignas(2 * sizeof(T)) vec_data<T, 2> {
  union {
    T s[2];
    struct {
      T x, y;
    };
#define MSLEMU_SWZ_N 2
#include "mslemu_swizzles.inc"
#undef MSLEMU_SWZ_N
  };
};

template <class T> struct alignas(4 * sizeof(T)) vec_data<T, 3> {
  union {
    T s[4];
    struct {
      T x, y, z;
    };
#define MSLEMU_SWZ_N 3
#include "mslemu_swizzles.inc"
#undef MSLEMU_SWZ_N
  };
};

template <class T> struct alignas(4 * sizeof(T)) vec_data<T, 4> {
  union {
    T s[4];
    struct {
      T x, y, z, w;
    };
#define MSLEMU_SWZ_N 4
#include "mslemu_swizzles.inc"
#undef MSLEMU_SWZ_N
  };
};

#undef MSLEMU_SWZ2
#undef MSLEMU_SWZ3
#undef MSLEMU_SWZ4

template <class T, int N> struct vec : vec_data<T, N> {
  typedef T value_type;
  static constexpr int size = N;

  vec() = default;
  vec(const vec& o) = default;
  vec& operator=(const vec& o) {
    for (int i = 0; i < N; i++) this->s[i] = o.s[i];
    return *this;
  }

  // Broadcast of a scalar (implicit, so that v * 2.0f works).
  template <class U, std::enable_if_t<mslemu::is_scalar_num_v<U>, int> = 0>
  vec(U v) {
    for (int i = 0; i < N; i++) this->s[i] = T(v);
  }

  // Conversion from a vector of another element type (explicit, as in MSL).
  template <class U, std::enable_if_t<!std::is_same<U, T>::value, int> = 0>
  explicit vec(const vec<U, N>& o) {
    for (int i = 0; i < N; i++) this->s[i] = T(o.s[i]);
  }
  template <class V2, class U, int S, int... I,
            std::enable_if_t<!std::is_same<U, T>::value && sizeof...(I) == N, int> = 0>
  explicit vec(const swz<V2, U, S, I...>& o) : vec(V2(o)) {}

  // Concatenation of scalars and vectors: float4(a.xy, 0, 1).
  template <class A, class B, class... R>
  vec(const A& a, const B& b, const R&... r) {
    static_assert(mslemu::ncomp<A> + mslemu::ncomp<B> + (0 + ... + mslemu::ncomp<R>) == N,
                  "vector constructor: wrong number of components");
    int k = 0;
    put(k, a);
    put(k, b);
    (put(k, r), ...);
  }

  T& operator[](int i) { return this->s[i]; }
  const T& operator[](int i) const { return this->s[i]; }

  template <class X> vec& operator+=(const X& x) { return *this = *this + x; }
  template <class X> vec& operator-=(const X& x) { return *this = *this - x; }
  template <class X> vec& operator*=(const X& x) { return *this = *this * x; }
  template <class X> vec& operator/=(const X& x) { return *this = *this / x; }
  template <class X> vec& operator%=(const X& x) { return *this = *this % x; }
  template <class X> vec& operator&=(const X& x) { return *this = *this & x; }
  template <class X> vec& operator|=(const X& x) { return *this = *this | x; }
  template <class X> vec& operator^=(const X& x) { return *this = *this ^ x; }
  template <class X> vec& operator<<=(const X& x) { return *this = *this << x; }
  template <class X> vec& operator>>=(const X& x) { return *this = *this >> x; }

 private:
  template <class X> void put(int& k, const X& x) {
    if constexpr (mslemu::is_vecish<X>) {
      mslemu::decay_t<X> v = x;
      for (int i = 0; i < mslemu::ncomp<X>; i++) this->s[k++] = T(v.s[i]);
    } else {
      this->s[k++] = T(x);
    }
  }
};

}  // namespace metal

namespace mslemu {

template <class A, class B, class = void> struct binvec {};
template <class A, class B>
struct binvec<A, B,
              std::enable_if_t<is_vecish<A> && is_vecish<B> &&
                               std::is_same<decay_t<A>, decay_t<B>>::value>> {
  typedef decay_t<A> type;
};
template <class A, class B>
struct binvec<A, B, std::enable_if_t<is_vecish<A> && !is_vecish<B> && is_scalar_num_v<B>>> {
  typedef decay_t<A> type;
};
template <class A, class B>
struct binvec<A, B, std::enable_if_t<!is_vecish<A> && is_scalar_num_v<A> && is_vecish<B>>> {
  typedef decay_t<B> type;
};
template <class A, class B>
using binvec_t = typename binvec<std::remove_cv_t<std::remove_reference_t<A>>,
                                 std::remove_cv_t<std::remove_reference_t<B>>>::type;

// One argument of a vector operation, widened to the operation's vector type.
template <class V, class X> inline V widen(const X& x) {
  if constexpr (is_vecish<X>) {
    return V(x);
  } else {
    return V(typename V::value_type(x));
  }
}

}  // namespace mslemu

namespace metal {

#define MSLEMU_VEC_BINOP(op)                                                          \
  template <class A, class B, class V = mslemu::binvec_t<A, B>>                       \
  inline V operator op(const A& a, const B& b) {                                      \
    V x = mslemu::widen<V>(a), y = mslemu::widen<V>(b), r;                            \
    for (int i = 0; i < V::size; i++) r.s[i] = typename V::value_type(x.s[i] op y.s[i]); \
    return r;                                                                         \
  }
MSLEMU_VEC_BINOP(+)
MSLEMU_VEC_BINOP(-)
MSLEMU_VEC_BINOP(*)
MSLEMU_VEC_BINOP(/)
MSLEMU_VEC_BINOP(%)
MSLEMU_VEC_BINOP(&)
MSLEMU_VEC_BINOP(|)
MSLEMU_VEC_BINOP(^)
MSLEMU_VEC_BINOP(<<)
MSLEMU_VEC_BINOP(>>)
#undef MSLEMU_VEC_BINOP

#define MSLEMU_VEC_CMP(op)                                                    \
  template <class A, class B, class V = mslemu::binvec_t<A, B>>               \
  inline vec<bool, V::size> operator op(const A& a, const B& b) {             \
    V x = mslemu::widen<V>(a), y = mslemu::widen<V>(b);                       \
    vec<bool, V::size> r;                                                     \
    for (int i = 0; i < V::size; i++) r.s[i] = x.s[i] op y.s[i];              \
    return r;                                                                 \
  }
MSLEMU_VEC_CMP(==)
MSLEMU_VEC_CMP(!=)
MSLEMU_VEC_CMP(<)
MSLEMU_VEC_CMP(<=)
MSLEMU_VEC_CMP(>)
MSLEMU_VEC_CMP(>=)
MSLEMU_VEC_CMP(&&)
MSLEMU_VEC_CMP(||)
#undef MSLEMU_VEC_CMP

template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline V operator-(const X& a) {
  V x = a, r;
  for (int i = 0; i < V::size; i++) r.s[i] = -x.s[i];
  return r;
}
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline V operator+(const X& a) {
  return V(a);
}
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline V operator~(const X& a) {
  V x = a, r;
  for (int i = 0; i < V::size; i++) r.s[i] = ~x.s[i];
  return r;
}
template <class X, class V = mslemu::decay_t<X>, std::enable_if_t<mslemu::is_vecish<X>, int> = 0>
inline vec<bool, V::size> operator!(const X& a) {
  V x = a;
  vec<bool, V::size> r;
  for (int i = 0; i < V::size; i++) r.s[i] = !x.s[i];
  return r;
}

// Packed vectors: N elements with no padding and the element's alignment (packed_float3 is
// 12 bytes), for loads from buffers laid out that way. They convert to and from vec<T, N>,
// take part in vector arithmetic as vec<T, N>, and have .x .y .z .w and subscripts (no
// swizzles, as in MSL).
template <class T, int N> struct packed_data;
template <class T> struct packed_data<T, 2> {
  union {
    T s[2];
    struct {
      T x, y;
    };
  };
};
template <class T> struct packed_data<T, 3> {
  union {
    T s[3];
    struct {
      T x, y, z;
    };
  };
};
template <class T> struct packed_data<T, 4> {
  union {
    T s[4];
    struct {
      T x, y, z, w;
    };
  };
};

template <class T, int N> struct packed_vec : packed_data<T, N> {
  typedef T value_type;
  static constexpr int size = N;
  packed_vec() = default;
  packed_vec(const packed_vec& o) = default;
  packed_vec& operator=(const packed_vec& o) {
    for (int i = 0; i < N; i++) this->s[i] = o.s[i];
    return *this;
  }
  packed_vec(const vec<T, N>& v) {
    for (int i = 0; i < N; i++) this->s[i] = v.s[i];
  }
  template <class A, class B, class... R>
  packed_vec(const A& a, const B& b, const R&... r) : packed_vec(vec<T, N>(a, b, r...)) {}
  operator vec<T, N>() const {
    vec<T, N> v;
    for (int i = 0; i < N; i++) v.s[i] = this->s[i];
    return v;
  }
  T& operator[](int i) { return this->s[i]; }
  const T& operator[](int i) const { return this->s[i]; }
  template <class X> packed_vec& operator+=(const X& x) { return *this = vec<T, N>(*this) + x; }
  template <class X> packed_vec& operator-=(const X& x) { return *this = vec<T, N>(*this) - x; }
  template <class X> packed_vec& operator*=(const X& x) { return *this = vec<T, N>(*this) * x; }
  template <class X> packed_vec& operator/=(const X& x) { return *this = vec<T, N>(*this) / x; }
};

}  // namespace metal

namespace mslemu {
template <class T, int N> struct vec_traits<metal::packed_vec<T, N>> {
  static constexpr bool is_vec = true;
  static constexpr int n = N;
  typedef T elem;
  typedef metal::vec<T, N> type;
};
}  // namespace mslemu

namespace metal {

// The vector type names of MSL.
#define MSLEMU_VEC_NAMES(T, name)            \
  typedef vec<T, 2> name##2;                 \
  typedef vec<T, 3> name##3;                 \
  typedef vec<T, 4> name##4;                 \
  typedef packed_vec<T, 2> packed_##name##2; \
  typedef packed_vec<T, 3> packed_##name##3; \
  typedef packed_vec<T, 4> packed_##name##4;
MSLEMU_VEC_NAMES(float, float)
MSLEMU_VEC_NAMES(half, half)
MSLEMU_VEC_NAMES(bfloat, bfloat)
MSLEMU_VEC_NAMES(int, int)
MSLEMU_VEC_NAMES(uint, uint)
MSLEMU_VEC_NAMES(short, short)
MSLEMU_VEC_NAMES(ushort, ushort)
MSLEMU_VEC_NAMES(char, char)
MSLEMU_VEC_NAMES(uchar, uchar)
MSLEMU_VEC_NAMES(long, long)
MSLEMU_VEC_NAMES(ulong, ulong)
MSLEMU_VEC_NAMES(bool, bool)
#undef MSLEMU_VEC_NAMES

}  // namespace metal

#endif
