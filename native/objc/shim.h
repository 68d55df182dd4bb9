// C interface of Orchard's Metal shims (shim_darwin.m), included by the cgo
// preamble of metal_darwin.go. Only C types appear here, so that cgo sees plain
// structs and the Objective-C stays inside the .m file.
//
// Conventions:
//   - Every handle is a retained Objective-C object (CFBridgingRetain) passed as
//     an opaque mr_ref; Go owns it and gives it back with mr_release.
//   - A call that can fail returns an mr_result: the value, an MR_* code and a
//     malloc'd message that Go frees. A successful call may still carry a
//     message (compiler warnings) with code MR_OK.
//   - No function keeps a pointer it was given after it returns: bytes are
//     copied (setBytes, dispatch_data, NSString) before the call ends.

#ifndef ORCHARD_METALRT_SHIM_H
#define ORCHARD_METALRT_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef void *mr_ref;

// Result codes; metal_darwin.go maps each to a sentinel error.
enum {
	MR_OK = 0,
	MR_ERR_NO_DEVICE = 1,  // no Metal device
	MR_ERR_COMPILE = 2,    // library compilation or loading failed
	MR_ERR_FUNCTION = 3,   // no function of that name in the library
	MR_ERR_PIPELINE = 4,   // compute pipeline creation failed
	MR_ERR_NO_MEMORY = 5,  // an allocation failed, or the GPU ran out of memory
	MR_ERR_COMMAND = 6,    // the command buffer finished with an error
	MR_ERR_ENCODE = 7,     // a command buffer or encoder could not be created
	MR_ERR_INVALID = 8,    // an argument the shim itself rejects
	MR_ERR_DEVICE_LOST = 9, // the GPU was removed, or access to it was revoked or not permitted
	MR_ERR_TIMEOUT = 10     // the command buffer did not complete within the wait limit
};

// Fault injection (tests): every call that can fail takes an int fault, 0 in
// normal use. A constructor given a nonzero fault behaves as if Metal had
// returned nil. mr_queue_run given MR_FAULT_ENCODE behaves as if the command
// buffer could not be created, MR_FAULT_TIMEOUT as if the wait limit expired,
// and a positive value as if the command buffer had completed with that
// MTLCommandBufferError code; the command buffer still runs and completes, and
// the error goes through the same classification as a real one.
enum { MR_FAULT_NONE = 0, MR_FAULT_NIL = 1, MR_FAULT_ENCODE = -1, MR_FAULT_TIMEOUT = -2 };

typedef struct {
	mr_ref ref;
	int code;
	char *err;
} mr_result;

// Storage modes (metalrt.StorageMode).
enum { MR_SHARED = 0, MR_PRIVATE = 1, MR_MANAGED = 2 };

// Math modes (metalrt.MathMode).
enum { MR_MATH_DEFAULT = 0, MR_MATH_SAFE = 1, MR_MATH_RELAXED = 2, MR_MATH_FAST = 3 };

// Command kinds (metalrt.Dispatch, Copy, Synchronize).
enum { MR_CMD_DISPATCH = 0, MR_CMD_COPY = 1, MR_CMD_SYNC = 2 };

// A buffer bound at index of the compute argument table.
typedef struct {
	uint32_t index;
	mr_ref buffer;
	size_t offset;
} mr_buffer_arg;

// Bytes copied into the argument table with setBytes; [offset, offset+length)
// of the arena passed to mr_queue_run.
typedef struct {
	uint32_t index;
	size_t offset;
	size_t length;
} mr_bytes_arg;

// Threadgroup memory of length bytes at index.
typedef struct {
	uint32_t index;
	size_t length;
} mr_tg_arg;

// One command. Dispatches use pipeline, grid (threadgroups per grid), group
// (threads per threadgroup) and the argument ranges; copies use src, dst and
// the offsets and size; synchronizations use src.
typedef struct {
	int kind;
	mr_ref pipeline;
	size_t grid[3];
	size_t group[3];
	uint32_t first_buffer, nbuffers;
	uint32_t first_bytes, nbytes;
	uint32_t first_tg, ntg;
	mr_ref src, dst;
	size_t src_offset, dst_offset, size;
} mr_command;

void mr_release(mr_ref ref);

size_t mr_device_count(void);
mr_result mr_device_default(void);
mr_result mr_device_at(size_t index);
char *mr_device_name(mr_ref dev);
int mr_device_supports_family(mr_ref dev, int64_t family);
size_t mr_device_max_threadgroup_memory(mr_ref dev);
int mr_device_has_unified_memory(mr_ref dev);
uint64_t mr_device_registry_id(mr_ref dev);
uint64_t mr_device_max_buffer_length(mr_ref dev);
uint64_t mr_device_recommended_working_set(mr_ref dev);
// The running system's version (NSProcessInfo operatingSystemVersion).
void mr_os_version(int *major, int *minor, int *patch);
mr_result mr_queue_new(mr_ref dev, int fault);

mr_result mr_buffer_new(mr_ref dev, size_t length, int mode, int fault);
// A buffer over memory the shim allocates itself, outside any Go heap: mmap'd,
// page aligned, length rounded up to whole pages, handed to Metal with
// newBufferWithBytesNoCopy and unmapped by the buffer's deallocator, that is
// when Metal destroys the buffer (after the last command buffer using it).
mr_result mr_buffer_new_nocopy(mr_ref dev, size_t length, int mode, int fault);
void *mr_buffer_contents(mr_ref buf);
size_t mr_buffer_length(mr_ref buf);
void mr_buffer_did_modify(mr_ref buf, size_t offset, size_t length);

mr_result mr_library_from_source(mr_ref dev, const char *src, size_t src_len,
                                 uint32_t language_version, int math_mode,
                                 const char *const *macro_names,
                                 const char *const *macro_values, size_t nmacros, int fault);
mr_result mr_library_from_data(mr_ref dev, const void *data, size_t len, int fault);
// A function, specialised on nconst boolean function constants (index, value)
// when nconst > 0 (newFunctionWithName:constantValues:error:).
mr_result mr_function_new(mr_ref lib, const char *name, const uint32_t *const_index,
                          const uint8_t *const_value, size_t nconst, int fault);
mr_result mr_pipeline_new(mr_ref dev, mr_ref fn, int fault);
size_t mr_pipeline_max_threads(mr_ref pipeline);
size_t mr_pipeline_execution_width(mr_ref pipeline);
size_t mr_pipeline_static_threadgroup_memory(mr_ref pipeline);

// Encodes cmds into one command buffer (error option: encoder execution
// status), commits it and waits at most wait_ns nanoseconds (0: no limit).
mr_result mr_queue_run(mr_ref queue, const mr_command *cmds, size_t ncmds,
                       const mr_buffer_arg *buffers, const mr_bytes_arg *bytes,
                       const uint8_t *arena, const mr_tg_arg *tgs,
                       uint64_t wait_ns, int fault);

#endif
