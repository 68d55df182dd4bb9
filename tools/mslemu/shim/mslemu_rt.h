/* The C interface between the emulated kernels (compiled with the shim) and the runtime
 * (runtime.cc, which never sees the shim's macros), and between the runtime and Go.
 * Plain C: no MSL keyword is used or defined here. */
#ifndef MSLEMU_RT_H
#define MSLEMU_RT_H
#pragma GCC system_header

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lanes in a SIMD group, and the bytes each lane may contribute to one SIMD exchange. */
#define MSLEMU_SIMD_WIDTH 32
#define MSLEMU_SLOT_BYTES 64
/* Most threads in a threadgroup (Metal's limit on Apple GPUs). */
#define MSLEMU_MAX_THREADS 1024

/* Where one emulated GPU thread is: every position attribute a kernel can ask for. */
typedef struct mslemu_thread {
	uint32_t thread_position_in_threadgroup[3];
	uint32_t threadgroup_position_in_grid[3];
	uint32_t threads_per_threadgroup[3];
	uint32_t threadgroups_per_grid[3];
	uint32_t thread_position_in_grid[3];
	uint32_t threads_per_grid[3];
	uint32_t thread_index_in_threadgroup;
	uint32_t thread_index_in_simdgroup;
	uint32_t simdgroup_index_in_threadgroup;
	uint32_t simdgroups_per_threadgroup;
	uint32_t threads_per_simdgroup;
	uint32_t active_lanes; /* threads in this thread's SIMD group (< 32 only in a partial last one) */
} mslemu_thread;

/* One generated adapter: runs the kernel for the calling emulated thread. */
typedef void (*mslemu_kernel_fn)(const mslemu_thread *t, void *const *buffers);

/* The value of one function constant ([[function_constant(index)]]) for a launch. kind:
 * 'b' bool, 'i' signed integer, 'u' unsigned integer, 'f' float, 'h' half; size in bytes;
 * the value in bytes[0..size), little-endian. */
typedef struct mslemu_const {
	int32_t index;
	char kind;
	uint8_t size;
	uint8_t bytes[8];
} mslemu_const;

/* Most function constants one source may declare. */
#define MSLEMU_MAX_CONSTANTS 64

/* Launch preparation, generated per kernel: sets the function constants of the kernel's
 * translation unit from consts (every one its source declares must be given, unless the
 * source tests it with is_function_constant_defined), lists the defined ones, and gives
 * the kernel's [[max_total_threads_per_threadgroup]] (0: none). Returns 0, or -1 with a
 * message in err. */
typedef struct mslemu_prep {
	const mslemu_const *consts; /* in */
	int nconsts;                /* in */
	uint32_t max_threads;       /* out */
	const void *defined[MSLEMU_MAX_CONSTANTS]; /* out: addresses of the defined constants */
	int ndefined;                              /* out */
	char err[512];                             /* out */
} mslemu_prep;
typedef int (*mslemu_prep_fn)(mslemu_prep *p);

typedef struct mslemu_kernel {
	const char *name;     /* the [[host_name]] */
	mslemu_kernel_fn fn;  /* NULL when its source was removed without regenerating */
	mslemu_prep_fn prep;  /* likewise */
	const char *source;   /* the .metal file that instantiates it */
	uint64_t buffers;     /* bit i set: the kernel binds [[buffer(i)]] */
	uint64_t writes;      /* bit i set: the kernel may write [[buffer(i)]] (non-const device pointer) */
} mslemu_kernel;

/* In kernels_gen.cc, written by the generator. */
extern const mslemu_kernel mslemu_kernels[];
extern const int mslemu_nkernels;
extern const char mslemu_sources[]; /* the .metal files it was generated from, one per line */

/* The lane layout of an 8x8 SIMD-group matrix: lane holds (row, col) and (row, col + 1). */
void mslemu_lane_layout(int lane, int *row, int *col);

/* Accessors for Go (cgo cannot size the arrays above). */
int mslemu_kernel_count(void);
const mslemu_kernel *mslemu_kernel_at(int i);
const char *mslemu_source_list(void);

/* ---- called by the shim, from inside an emulated thread ---- */

/* The calling emulated thread. */
const mslemu_thread *mslemu_self(void);

/* threadgroup_barrier: waits until every thread of the threadgroup arrives at the same
 * call site. */
void mslemu_threadgroup_barrier(const char *op, const char *file, int line);

/* A SIMD-group collective: copies n (<= MSLEMU_SLOT_BYTES) bytes from mine into this lane's
 * slot, waits until every active lane of the SIMD group arrives at the same call site, and
 * returns the exchange area, where lane i's bytes start at i * MSLEMU_SLOT_BYTES. The area
 * stays valid until this lane's next collective call returns. */
const unsigned char *mslemu_simd_exchange(const void *mine, size_t n, const char *op,
                                          const char *file, int line);

/* is_function_constant_defined: whether the constant at addr was given for this launch. */
int mslemu_fc_defined(const void *addr);

/* Ends the launch with an error that names the call site and the calling thread. */
void mslemu_fail(const char *msg, const char *file, int line) __attribute__((noreturn));

/* ---- called by Go ---- */

enum { MSLEMU_ORDER_FORWARD = 0, MSLEMU_ORDER_REVERSE = 1, MSLEMU_ORDER_SHUFFLE = 2 };

typedef struct mslemu_options {
	int order;              /* how ready threads are scheduled: MSLEMU_ORDER_* */
	uint64_t seed;          /* for MSLEMU_ORDER_SHUFFLE */
	double timeout_seconds; /* a launch running longer fails; <= 0: no limit */
} mslemu_options;

typedef struct mslemu_buffer {
	void *data;  /* from mslemu_buffer_alloc, or NULL when the slot is unbound */
	size_t size; /* bytes the caller asked for */
} mslemu_buffer;

/* Memory for one buffer, ending right before an inaccessible page, so that an access past
 * its end faults and is reported. Zero-filled. Returns NULL when out of memory. */
void *mslemu_buffer_alloc(size_t size);
void mslemu_buffer_free(void *data, size_t size);

/* Runs kernel k (an index into mslemu_kernels) over groups[0]*groups[1]*groups[2]
 * threadgroups of tptg[0]*tptg[1]*tptg[2] threads. Returns 0, or -1 and a message in *err
 * that stays valid until the next launch. Dispatches are serialised process-wide. */
int mslemu_launch(int k, const uint32_t groups[3], const uint32_t tptg[3],
                  const mslemu_buffer *buffers, int nbuffers, const mslemu_const *consts,
                  int nconsts, const mslemu_options *opts, const char **err);

#ifdef __cplusplus
}
#endif

#endif
