// Barriers, SIMD-group functions and SIMD-group matrices over the emulation runtime.
//
// Every function here that synchronises takes the call site as defaulted trailing
// arguments (__builtin_FILE/__builtin_LINE are evaluated where the kernel calls it), so
// that the runtime can name the line where threads wait, or diverge.
//
// SIMD-group matrices are distributed as on the GPU: each lane holds the two elements it
// owns (Apple's layout, below); loads and stores touch only those, thread_elements() is a
// reference to them, and a multiply gathers the operands from all 32 lanes through one
// SIMD exchange, after which each lane computes its own two results.
#ifndef MSLEMU_SIMD_H
#define MSLEMU_SIMD_H
#pragma GCC system_header

#include "mslemu_math.h"
#include "mslemu_rt.h"

namespace metal {

enum class mem_flags {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(int(a) | int(b)); }
constexpr mem_flags operator&(mem_flags a, mem_flags b) { return mem_flags(int(a) & int(b)); }

inline void threadgroup_barrier(mem_flags flags, const char* file = __builtin_FILE(),
                                int line = __builtin_LINE()) {
  (void)flags;
  mslemu_threadgroup_barrier("threadgroup_barrier", file, line);
}

inline void simdgroup_barrier(mem_flags flags, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  (void)flags;
  mslemu_simd_exchange(nullptr, 0, "simdgroup_barrier", file, line);
}

}  // namespace metal

namespace mslemu {

// Publishes v from this lane and returns every lane's copy; n lanes are active.
template <class T> struct gathered {
  const unsigned char* area;
  int n;
  int lane;
  T at(int i) const {
    T v;
    std::memcpy(static_cast<void*>(&v), area + size_t(i) * MSLEMU_SLOT_BYTES, sizeof(T));
    return v;
  }
};

template <class T>
inline gathered<T> gather(const T& v, const char* op, const char* file, int line) {
  static_assert(sizeof(T) <= MSLEMU_SLOT_BYTES, "SIMD function on a value over 64 bytes");
  const mslemu_thread* t = mslemu_self();
  gathered<T> g;
  g.area = mslemu_simd_exchange(&v, sizeof(T), op, file, line);
  g.n = int(t->active_lanes);
  g.lane = int(t->thread_index_in_simdgroup);
  return g;
}

// A pairwise (tree) reduction over the active lanes, in lane order.
template <class T, class F> inline T reduce(const gathered<T>& g, F f) {
  T v[MSLEMU_SIMD_WIDTH];
  for (int i = 0; i < g.n; i++) v[i] = g.at(i);
  for (int s = 1; s < g.n; s *= 2)
    for (int i = 0; i + s < g.n; i += 2 * s) v[i] = f(v[i], v[i + s]);
  return v[0];
}

template <class T> inline T band(const T& a, const T& b) { return a & b; }

// Owner of element (row, col) of an 8x8 SIMD-group matrix: lane, and index (0 or 1)
// within the lane's two elements. The inverse of mat_coord.
inline int mat_owner(int row, int col) {
  return ((row & 4) << 2) + ((col & 4) << 1) + (row & 3) * 2 + ((col & 3) >> 1);
}
// Apple's layout: lane owns M[row][col] and M[row][col + 1].
inline void mat_coord(int lane, int& row, int& col) {
  int qid = lane / 4;
  row = (qid & 4) + (lane / 2) % 4;
  col = (qid & 2) * 2 + (lane % 2) * 2;
}

}  // namespace mslemu

namespace metal {

#define MSLEMU_SITE const char *file = __builtin_FILE(), int line = __builtin_LINE()

template <class X, class T = mslemu::decay_t<X>> inline T simd_sum(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_sum", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(a + b); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_product(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_product", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(a * b); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_max(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_max", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(max(a, b)); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_min(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_min", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(min(a, b)); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_and(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_and", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(a & b); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_or(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_or", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(a | b); });
}
template <class X, class T = mslemu::decay_t<X>> inline T simd_xor(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_xor", file, line);
  return mslemu::reduce(g, [](const T& a, const T& b) { return T(a ^ b); });
}

template <class X, class T = mslemu::decay_t<X>>
inline T simd_prefix_exclusive_sum(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_prefix_exclusive_sum", file, line);
  T s = T(0);
  for (int i = 0; i < g.lane; i++) s = T(s + g.at(i));
  return s;
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_prefix_inclusive_sum(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_prefix_inclusive_sum", file, line);
  T s = g.at(0);
  for (int i = 1; i <= g.lane; i++) s = T(s + g.at(i));
  return s;
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_prefix_exclusive_product(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_prefix_exclusive_product", file, line);
  T s = T(1);
  for (int i = 0; i < g.lane; i++) s = T(s * g.at(i));
  return s;
}

// Shuffles read another lane's value; a source lane outside the SIMD group (or not active)
// leaves the caller's own value, as simd_shuffle_down/up do on the GPU.
template <class T> inline T mslemu_from(const mslemu::gathered<T>& g, int src) {
  return (src >= 0 && src < g.n) ? g.at(src) : g.at(g.lane);
}

template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle(const X& x, ushort src, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle", file, line);
  return mslemu_from(g, int(src));
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle_xor(const X& x, ushort mask, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle_xor", file, line);
  return mslemu_from(g, g.lane ^ int(mask));
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle_down(const X& x, ushort delta, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle_down", file, line);
  return mslemu_from(g, g.lane + int(delta));
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle_up(const X& x, ushort delta, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle_up", file, line);
  return mslemu_from(g, g.lane - int(delta));
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle_rotate_down(const X& x, ushort delta, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle_rotate_down", file, line);
  return mslemu_from(g, (g.lane + int(delta)) % MSLEMU_SIMD_WIDTH);
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_shuffle_rotate_up(const X& x, ushort delta, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_shuffle_rotate_up", file, line);
  return mslemu_from(g, ((g.lane - int(delta)) % MSLEMU_SIMD_WIDTH + MSLEMU_SIMD_WIDTH) %
                            MSLEMU_SIMD_WIDTH);
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_broadcast(const X& x, ushort src, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_broadcast", file, line);
  return mslemu_from(g, int(src));
}
template <class X, class T = mslemu::decay_t<X>>
inline T simd_broadcast_first(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "simd_broadcast_first", file, line);
  return g.at(0);
}

// Quad-group functions: groups of 4 consecutive lanes.
template <class X, class T = mslemu::decay_t<X>>
inline T quad_shuffle(const X& x, ushort src, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "quad_shuffle", file, line);
  return mslemu_from(g, (g.lane & ~3) | (int(src) & 3));
}
template <class X, class T = mslemu::decay_t<X>>
inline T quad_shuffle_xor(const X& x, ushort mask, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "quad_shuffle_xor", file, line);
  return mslemu_from(g, (g.lane & ~3) | ((g.lane ^ int(mask)) & 3));
}
template <class X, class T = mslemu::decay_t<X>>
inline T quad_broadcast(const X& x, ushort src, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "quad_broadcast", file, line);
  return mslemu_from(g, (g.lane & ~3) | (int(src) & 3));
}
template <class X, class T = mslemu::decay_t<X>> inline T quad_sum(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "quad_sum", file, line);
  int b = g.lane & ~3;
  T s = mslemu_from(g, b);
  for (int i = 1; i < 4; i++) s = T(s + mslemu_from(g, b + i));
  return s;
}
template <class X, class T = mslemu::decay_t<X>> inline T quad_max(const X& x, MSLEMU_SITE) {
  auto g = mslemu::gather<T>(T(x), "quad_max", file, line);
  int b = g.lane & ~3;
  T s = mslemu_from(g, b);
  for (int i = 1; i < 4; i++) s = T(max(s, mslemu_from(g, b + i)));
  return s;
}

// Votes.
struct simd_vote {
  typedef ulong vote_t;
  vote_t v;
  explicit simd_vote(vote_t x = 0) : v(x) {}
  explicit operator vote_t() const { return v; }
  bool all() const;
  bool any() const { return v != 0; }
};

inline bool simd_all(bool b, MSLEMU_SITE) {
  auto g = mslemu::gather<bool>(b, "simd_all", file, line);
  for (int i = 0; i < g.n; i++)
    if (!g.at(i)) return false;
  return true;
}
inline bool simd_any(bool b, MSLEMU_SITE) {
  auto g = mslemu::gather<bool>(b, "simd_any", file, line);
  for (int i = 0; i < g.n; i++)
    if (g.at(i)) return true;
  return false;
}
inline simd_vote simd_ballot(bool b, MSLEMU_SITE) {
  auto g = mslemu::gather<bool>(b, "simd_ballot", file, line);
  ulong v = 0;
  for (int i = 0; i < g.n; i++)
    if (g.at(i)) v |= ulong(1) << i;
  return simd_vote(v);
}
inline simd_vote simd_active_threads_mask() {
  uint n = mslemu_self()->active_lanes;
  return simd_vote(n >= 64 ? ~ulong(0) : (ulong(1) << n) - 1);
}
inline bool simd_vote::all() const { return v == ulong(simd_active_threads_mask()); }
inline bool simd_is_first() { return mslemu_self()->thread_index_in_simdgroup == 0; }
inline bool simd_is_helper_thread() { return false; }

// ---- SIMD-group matrices ----

template <class T, int Cols, int Rows> struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "mslemu: only 8x8 SIMD-group matrices");
  typedef T value_type;
  vec<T, 2> e;  // this lane's elements: M[row][col], M[row][col + 1]

  simdgroup_matrix() = default;
  // A diagonal matrix with d on the diagonal.
  explicit simdgroup_matrix(T d) {
    int r, c;
    mslemu::mat_coord(int(mslemu_self()->thread_index_in_simdgroup), r, c);
    e.s[0] = r == c ? d : T(0);
    e.s[1] = r == c + 1 ? d : T(0);
  }
  vec<T, 2>& thread_elements() { return e; }
  const vec<T, 2>& thread_elements() const { return e; }
};

typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <class T, int Cols, int Rows>
inline simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(const T v) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.e.s[0] = v;
  m.e.s[1] = v;
  return m;
}

// Loads element (r, c) from src[(origin.y + r) * elements_per_row + origin.x + c], or with
// transpose_matrix from src[(origin.y + c) * elements_per_row + origin.x + r]. Each lane
// reads only its own two elements.
// As in MSL, the source's element type is the matrix's: loading a half buffer into a
// simdgroup_float8x8 does not compile (T cannot be deduced).
template <class T>
inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, const T* src, ulong elements_per_row = 8,
                           ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  int r, c;
  mslemu::mat_coord(int(mslemu_self()->thread_index_in_simdgroup), r, c);
  for (int j = 0; j < 2; j++) {
    ulong rr = ulong(r), cc = ulong(c + j);
    ulong i = transpose_matrix
                  ? (matrix_origin.y + cc) * elements_per_row + matrix_origin.x + rr
                  : (matrix_origin.y + rr) * elements_per_row + matrix_origin.x + cc;
    d.e.s[j] = src[i];
  }
}

// Stores this lane's two elements (the inverse of simdgroup_load).
template <class T>
inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, T* dst, ulong elements_per_row = 8,
                            ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {
  int r, c;
  mslemu::mat_coord(int(mslemu_self()->thread_index_in_simdgroup), r, c);
  for (int j = 0; j < 2; j++) {
    ulong rr = ulong(r), cc = ulong(c + j);
    ulong i = transpose_matrix
                  ? (matrix_origin.y + cc) * elements_per_row + matrix_origin.x + rr
                  : (matrix_origin.y + rr) * elements_per_row + matrix_origin.x + cc;
    dst[i] = m.e.s[j];
  }
}

#if defined(MSLEMU_ADDRESS_SPACES)
// Under the address-space check: the overloads MSL declares for device and threadgroup
// memory (the check only compiles, it never runs).
#define MSLEMU_AS_LOAD_STORE(AS)                                                                   \
  template <class T>                                                                               \
  inline void simdgroup_load(simdgroup_matrix<T, 8, 8>& d, const AS T* src, ulong elements_per_row = 8, \
                             ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {    \
    simdgroup_load(d, (const T*)src, elements_per_row, matrix_origin, transpose_matrix);          \
  }                                                                                                \
  template <class T>                                                                               \
  inline void simdgroup_store(const simdgroup_matrix<T, 8, 8>& m, AS T* dst, ulong elements_per_row = 8, \
                              ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false) {   \
    simdgroup_store(m, (T*)dst, elements_per_row, matrix_origin, transpose_matrix);               \
  }
MSLEMU_AS_LOAD_STORE(__attribute__((address_space(1))))
MSLEMU_AS_LOAD_STORE(__attribute__((address_space(3))))
#undef MSLEMU_AS_LOAD_STORE
#endif

// d = a * b + c. The operands are gathered from all 32 lanes (as float: exact for half and
// bfloat); each lane computes its two elements of d with a float accumulator, rounded to
// d's type at the end.
template <class TD, class TA, class TB, class TC>
inline void simdgroup_multiply_accumulate(simdgroup_matrix<TD, 8, 8>& d,
                                          const simdgroup_matrix<TA, 8, 8>& a,
                                          const simdgroup_matrix<TB, 8, 8>& b,
                                          const simdgroup_matrix<TC, 8, 8>& c, MSLEMU_SITE) {
  struct operands {
    float a[2], b[2];
  } mine = {{float(a.e.s[0]), float(a.e.s[1])}, {float(b.e.s[0]), float(b.e.s[1])}};
  float c0 = float(c.e.s[0]), c1 = float(c.e.s[1]);
  auto g = mslemu::gather<operands>(mine, "simdgroup_multiply_accumulate", file, line);
  if (g.n != MSLEMU_SIMD_WIDTH)
    mslemu_fail("SIMD-group matrix multiply in a SIMD group with inactive lanes", file, line);
  int r, col;
  mslemu::mat_coord(g.lane, r, col);
  // Lane l's operands start at area + l * MSLEMU_SLOT_BYTES: a[0], a[1], b[0], b[1].
  auto at = [&](int lane, int i) {
    float v;
    std::memcpy(&v, g.area + size_t(lane) * MSLEMU_SLOT_BYTES + size_t(i) * sizeof(float), sizeof v);
    return v;
  };
  float acc[2] = {0.0f, 0.0f};
  for (int k = 0; k < 8; k++) {
    const float av = at(mslemu::mat_owner(r, k), k & 1);
    // B[k][col] and B[k][col + 1] are the two elements of one lane (col is even).
    const int ob = mslemu::mat_owner(k, col);
    acc[0] += av * at(ob, 2);
    acc[1] += av * at(ob, 3);
  }
  d.e.s[0] = TD(acc[0] + c0);
  d.e.s[1] = TD(acc[1] + c1);
}

template <class TD, class TA, class TB>
inline void simdgroup_multiply(simdgroup_matrix<TD, 8, 8>& d, const simdgroup_matrix<TA, 8, 8>& a,
                               const simdgroup_matrix<TB, 8, 8>& b, MSLEMU_SITE) {
  simdgroup_matrix<float, 8, 8> zero;
  zero.e.s[0] = zero.e.s[1] = 0.0f;
  simdgroup_multiply_accumulate(d, a, b, zero, file, line);
}

#undef MSLEMU_SITE

}  // namespace metal

#endif
