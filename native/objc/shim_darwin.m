//go:build darwin && !ios && cgo

// Objective-C shims over Metal for package metalrt (metal_darwin.go).
//
// Every exported function wraps its body in @autoreleasepool, so objects Metal
// hands back autoreleased (command buffers, encoders, strings) are freed
// before the function returns, whichever goroutine's thread it runs on.
// Objects that outlive a call leave through CFBridgingRetain and come back
// through mr_release. See shim.h for the conventions.

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

// mr_cstring copies s into malloc'd memory that Go frees.
static char *mr_cstring(NSString *s) {
	const char *u = s != nil ? [s UTF8String] : NULL;
	return strdup(u != NULL ? u : "(no description)");
}

static mr_result mr_ok(id obj) {
	mr_result r;
	r.ref = (mr_ref)CFBridgingRetain(obj);
	r.code = MR_OK;
	r.err = NULL;
	return r;
}

static mr_result mr_fail(int code, NSString *msg) {
	mr_result r;
	r.ref = NULL;
	r.code = code;
	r.err = mr_cstring(msg);
	return r;
}

// mr_describe turns an NSError into one line: its description, domain and code.
static NSString *mr_describe(NSError *e, NSString *fallback) {
	if (e == nil) {
		return fallback;
	}
	return [NSString stringWithFormat:@"%@ (%@ code %ld)", [e localizedDescription], [e domain], (long)[e code]];
}

void mr_release(mr_ref ref) {
	@autoreleasepool {
		if (ref != NULL) {
			CFRelease(ref);
		}
	}
}

// ---------------------------------------------------------------- devices

size_t mr_device_count(void) {
	@autoreleasepool {
		NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
		return (size_t)[all count];
	}
}

mr_result mr_device_default(void) {
	@autoreleasepool {
		id<MTLDevice> dev = MTLCreateSystemDefaultDevice();
		if (dev == nil) {
			return mr_fail(MR_ERR_NO_DEVICE, @"MTLCreateSystemDefaultDevice returned nil");
		}
		return mr_ok(dev);
	}
}

mr_result mr_device_at(size_t index) {
	@autoreleasepool {
		NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
		if (index >= (size_t)[all count]) {
			return mr_fail(MR_ERR_NO_DEVICE, [NSString stringWithFormat:@"device %zu of %lu", index, (unsigned long)[all count]]);
		}
		return mr_ok(all[index]);
	}
}

char *mr_device_name(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return mr_cstring([dev name]);
	}
}

int mr_device_supports_family(mr_ref ref, int64_t family) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return [dev supportsFamily:(MTLGPUFamily)family] ? 1 : 0;
	}
}

size_t mr_device_max_threadgroup_memory(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return (size_t)[dev maxThreadgroupMemoryLength];
	}
}

int mr_device_has_unified_memory(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return [dev hasUnifiedMemory] ? 1 : 0;
	}
}

uint64_t mr_device_registry_id(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return (uint64_t)[dev registryID];
	}
}

uint64_t mr_device_max_buffer_length(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return (uint64_t)[dev maxBufferLength];
	}
}

uint64_t mr_device_recommended_working_set(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		return (uint64_t)[dev recommendedMaxWorkingSetSize];
	}
}

void mr_os_version(int *major, int *minor, int *patch) {
	@autoreleasepool {
		NSOperatingSystemVersion v = [[NSProcessInfo processInfo] operatingSystemVersion];
		*major = (int)v.majorVersion;
		*minor = (int)v.minorVersion;
		*patch = (int)v.patchVersion;
	}
}

mr_result mr_queue_new(mr_ref ref, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		id<MTLCommandQueue> q = fault != MR_FAULT_NONE ? nil : [dev newCommandQueue];
		if (q == nil) {
			// Metal gives no reason; the device cannot serve this process.
			return mr_fail(MR_ERR_NO_DEVICE, @"newCommandQueue returned nil");
		}
		return mr_ok(q);
	}
}

// ---------------------------------------------------------------- buffers

// mr_resource_options maps a storage mode; it returns 0 and sets *ok to 0 for
// an unknown one.
static MTLResourceOptions mr_resource_options(int mode, int *ok) {
	*ok = 1;
	switch (mode) {
	case MR_SHARED:
		return MTLResourceStorageModeShared;
	case MR_PRIVATE:
		return MTLResourceStorageModePrivate;
	case MR_MANAGED:
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
		return MTLResourceStorageModeManaged;
#pragma clang diagnostic pop
	}
	*ok = 0;
	return 0;
}

// mr_check_length rejects lengths Metal cannot allocate; NULL when fine.
static NSString *mr_check_length(id<MTLDevice> dev, size_t length) {
	if (length == 0) {
		return @"buffer length is 0";
	}
	if (length > (size_t)[dev maxBufferLength]) {
		return [NSString stringWithFormat:@"%zu bytes exceed the device's maxBufferLength %lu", length,
		                                  (unsigned long)[dev maxBufferLength]];
	}
	return nil;
}

mr_result mr_buffer_new(mr_ref ref, size_t length, int mode, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		NSString *bad = mr_check_length(dev, length);
		if (bad != nil) {
			return mr_fail(length == 0 ? MR_ERR_INVALID : MR_ERR_NO_MEMORY, bad);
		}
		int ok;
		MTLResourceOptions opts = mr_resource_options(mode, &ok);
		if (!ok) {
			return mr_fail(MR_ERR_INVALID, [NSString stringWithFormat:@"unknown storage mode %d", mode]);
		}
		id<MTLBuffer> buf = fault != MR_FAULT_NONE ? nil : [dev newBufferWithLength:length options:opts];
		if (buf == nil) {
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"newBufferWithLength:%zu returned nil", length]);
		}
		return mr_ok(buf);
	}
}

mr_result mr_buffer_new_nocopy(mr_ref ref, size_t length, int mode, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		if (mode == MR_PRIVATE) {
			return mr_fail(MR_ERR_INVALID, @"a no-copy buffer is host memory: shared or managed, not private");
		}
		size_t page = (size_t)getpagesize();
		if (length > SIZE_MAX - page) {
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"%zu bytes cannot be rounded to whole pages", length]);
		}
		size_t rounded = (length + page - 1) / page * page;
		NSString *bad = mr_check_length(dev, rounded);
		if (bad != nil) {
			return mr_fail(length == 0 ? MR_ERR_INVALID : MR_ERR_NO_MEMORY, bad);
		}
		int ok;
		MTLResourceOptions opts = mr_resource_options(mode, &ok);
		if (!ok) {
			return mr_fail(MR_ERR_INVALID, [NSString stringWithFormat:@"unknown storage mode %d", mode]);
		}
		void *mem = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
		if (mem == MAP_FAILED) {
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"mmap of %zu bytes failed", rounded]);
		}
		id<MTLBuffer> buf = nil;
		if (fault == MR_FAULT_NONE) {
			buf = [dev newBufferWithBytesNoCopy:mem
			                             length:rounded
			                            options:opts
			                        deallocator:^(void *p, NSUInteger n) {
				                        munmap(p, (size_t)n);
			                        }];
		}
		if (buf == nil) {
			munmap(mem, rounded); // Metal never took it
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"newBufferWithBytesNoCopy:length:%zu returned nil", rounded]);
		}
		return mr_ok(buf);
	}
}

void *mr_buffer_contents(mr_ref ref) {
	@autoreleasepool {
		id<MTLBuffer> buf = (__bridge id<MTLBuffer>)ref;
		if ([buf storageMode] == MTLStorageModePrivate) {
			return NULL;
		}
		return [buf contents];
	}
}

size_t mr_buffer_length(mr_ref ref) {
	@autoreleasepool {
		id<MTLBuffer> buf = (__bridge id<MTLBuffer>)ref;
		return (size_t)[buf length];
	}
}

void mr_buffer_did_modify(mr_ref ref, size_t offset, size_t length) {
	@autoreleasepool {
		id<MTLBuffer> buf = (__bridge id<MTLBuffer>)ref;
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
		if ([buf storageMode] == MTLStorageModeManaged) {
			[buf didModifyRange:NSMakeRange(offset, length)];
		}
#pragma clang diagnostic pop
	}
}

// ---------------------------------------------------------------- libraries and pipelines

// mr_set_math_mode applies a math mode so that it means the same on every
// macOS version. Before macOS 15 there is only fastMathEnabled, which sets both
// the optimisation mode and the FP32 math functions: NO gives safe math with
// precise functions, YES fast math with fast functions. On macOS 15 the two are
// separate properties, and the functions stay fast unless asked, so safe and
// relaxed also set precise functions (as fastMathEnabled = NO did) and fast
// sets fast ones. Kernels that want a particular variant of a function call
// fast:: or precise:: by name, which no option overrides.
static void mr_set_math_mode(MTLCompileOptions *opts, int mode) {
	if (mode == MR_MATH_DEFAULT) {
		return;
	}
#if defined(__MAC_15_0) && __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_15_0
	if (@available(macOS 15.0, *)) {
		switch (mode) {
		case MR_MATH_SAFE:
			opts.mathMode = MTLMathModeSafe;
			opts.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
			break;
		case MR_MATH_RELAXED:
			opts.mathMode = MTLMathModeRelaxed;
			opts.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
			break;
		default:
			opts.mathMode = MTLMathModeFast;
			opts.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsFast;
			break;
		}
		return;
	}
#endif
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
	opts.fastMathEnabled = (mode == MR_MATH_FAST) ? YES : NO;
#pragma clang diagnostic pop
}

mr_result mr_library_from_source(mr_ref ref, const char *src, size_t src_len,
                                 uint32_t language_version, int math_mode,
                                 const char *const *macro_names,
                                 const char *const *macro_values, size_t nmacros, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		NSString *source = [[NSString alloc] initWithBytes:src length:src_len encoding:NSUTF8StringEncoding];
		if (source == nil) {
			return mr_fail(MR_ERR_INVALID, @"MSL source is not valid UTF-8");
		}
		MTLCompileOptions *opts = [[MTLCompileOptions alloc] init];
		mr_set_math_mode(opts, math_mode);
		if (nmacros > 0) {
			NSMutableDictionary<NSString *, NSObject *> *macros = [NSMutableDictionary dictionaryWithCapacity:nmacros];
			for (size_t i = 0; i < nmacros; i++) {
				NSString *name = [NSString stringWithUTF8String:macro_names[i]];
				NSString *value = [NSString stringWithUTF8String:macro_values[i]];
				if (name == nil || value == nil) {
					return mr_fail(MR_ERR_INVALID, @"a preprocessor macro is not valid UTF-8");
				}
				macros[name] = value;
			}
			opts.preprocessorMacros = macros;
		}
		if (fault != MR_FAULT_NONE) {
			return mr_fail(MR_ERR_COMPILE, @"newLibraryWithSource:options:error: returned nil (injected fault)");
		}
		NSError *error = nil;
		id<MTLLibrary> lib = nil;
		@try {
			// A language version this system lacks raises from the setter or
			// the compile, rather than failing: report it instead of
			// aborting. This guard covers these two calls only; ARC is not
			// exception-safe here (no -fobjc-arc-exceptions), so objects
			// local to this function leak on that path, once.
			if (language_version != 0) {
				opts.languageVersion = (MTLLanguageVersion)language_version;
			}
			lib = [dev newLibraryWithSource:source options:opts error:&error];
		} @catch (NSException *e) {
			return mr_fail(MR_ERR_COMPILE, [NSString stringWithFormat:@"newLibraryWithSource:options:error: raised %@: %@", [e name], [e reason]]);
		}
		if (lib == nil) {
			return mr_fail(MR_ERR_COMPILE, mr_describe(error, @"newLibraryWithSource:options:error: returned nil"));
		}
		mr_result r = mr_ok(lib);
		if (error != nil) {
			r.err = mr_cstring(mr_describe(error, nil)); // warnings; the library is usable
		}
		return r;
	}
}

mr_result mr_library_from_data(mr_ref ref, const void *data, size_t len, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		if (fault != MR_FAULT_NONE) {
			return mr_fail(MR_ERR_COMPILE, @"newLibraryWithData:error: returned nil (injected fault)");
		}
		// The default destructor makes dispatch copy the bytes now, so Go's
		// memory is not referenced after this call.
		dispatch_data_t d = dispatch_data_create(data, len, DISPATCH_TARGET_QUEUE_DEFAULT, DISPATCH_DATA_DESTRUCTOR_DEFAULT);
		if (d == nil) {
			return mr_fail(MR_ERR_NO_MEMORY, @"dispatch_data_create returned nil");
		}
		NSError *error = nil;
		id<MTLLibrary> lib = [dev newLibraryWithData:d error:&error];
		if (lib == nil) {
			return mr_fail(MR_ERR_COMPILE, mr_describe(error, @"newLibraryWithData:error: returned nil"));
		}
		return mr_ok(lib);
	}
}

mr_result mr_function_new(mr_ref ref, const char *name, const uint32_t *const_index,
                          const uint8_t *const_value, size_t nconst, int fault) {
	@autoreleasepool {
		id<MTLLibrary> lib = (__bridge id<MTLLibrary>)ref;
		NSString *n = [NSString stringWithUTF8String:name];
		if (n == nil) {
			return mr_fail(MR_ERR_INVALID, @"function name is not valid UTF-8");
		}
		if (fault != MR_FAULT_NONE) {
			return mr_fail(MR_ERR_FUNCTION, [NSString stringWithFormat:@"no function %@ in the library (injected fault)", n]);
		}
		if (nconst == 0) {
			id<MTLFunction> fn = [lib newFunctionWithName:n];
			if (fn == nil) {
				return mr_fail(MR_ERR_FUNCTION, [NSString stringWithFormat:@"no function %@ in the library", n]);
			}
			return mr_ok(fn);
		}
		MTLFunctionConstantValues *values = [[MTLFunctionConstantValues alloc] init];
		for (size_t i = 0; i < nconst; i++) {
			uint8_t v = const_value[i] != 0 ? 1 : 0; // an MSL bool is one byte
			[values setConstantValue:&v type:MTLDataTypeBool atIndex:(NSUInteger)const_index[i]];
		}
		NSError *error = nil;
		id<MTLFunction> fn = [lib newFunctionWithName:n constantValues:values error:&error];
		if (fn == nil) {
			// A missing name and a constant the function cannot take both
			// land here; Metal's message says which.
			return mr_fail(MR_ERR_FUNCTION, mr_describe(error, [NSString stringWithFormat:@"no function %@ in the library", n]));
		}
		return mr_ok(fn);
	}
}

mr_result mr_pipeline_new(mr_ref dref, mr_ref fref, int fault) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)dref;
		id<MTLFunction> fn = (__bridge id<MTLFunction>)fref;
		NSError *error = nil;
		id<MTLComputePipelineState> p = fault != MR_FAULT_NONE ? nil : [dev newComputePipelineStateWithFunction:fn error:&error];
		if (p == nil) {
			return mr_fail(MR_ERR_PIPELINE, mr_describe(error, @"newComputePipelineStateWithFunction:error: returned nil"));
		}
		return mr_ok(p);
	}
}

size_t mr_pipeline_max_threads(mr_ref ref) {
	@autoreleasepool {
		id<MTLComputePipelineState> p = (__bridge id<MTLComputePipelineState>)ref;
		return (size_t)[p maxTotalThreadsPerThreadgroup];
	}
}

size_t mr_pipeline_execution_width(mr_ref ref) {
	@autoreleasepool {
		id<MTLComputePipelineState> p = (__bridge id<MTLComputePipelineState>)ref;
		return (size_t)[p threadExecutionWidth];
	}
}

size_t mr_pipeline_static_threadgroup_memory(mr_ref ref) {
	@autoreleasepool {
		id<MTLComputePipelineState> p = (__bridge id<MTLComputePipelineState>)ref;
		return (size_t)[p staticThreadgroupMemoryLength];
	}
}

// ---------------------------------------------------------------- command buffers

// mr_command_error_code classifies a command buffer's error: the codes that
// mean this process will not get the GPU back (access revoked, not permitted,
// device removed) are MR_ERR_DEVICE_LOST, running out of memory is
// MR_ERR_NO_MEMORY, the rest (timeout, page fault, invalid resource, ...)
// MR_ERR_COMMAND.
static int mr_command_error_code(NSError *error) {
	if (error == nil || ![[error domain] isEqualToString:MTLCommandBufferErrorDomain]) {
		return MR_ERR_COMMAND;
	}
	switch ([error code]) {
	case MTLCommandBufferErrorAccessRevoked:
	case MTLCommandBufferErrorNotPermitted:
	case MTLCommandBufferErrorDeviceRemoved:
		return MR_ERR_DEVICE_LOST;
	case MTLCommandBufferErrorOutOfMemory:
		return MR_ERR_NO_MEMORY;
	}
	return MR_ERR_COMMAND;
}

// mr_describe_command_error adds, to the error's own description, the label
// and state of every encoder that did not complete (the command buffer is made
// with MTLCommandBufferErrorOptionEncoderExecutionStatus).
static NSString *mr_describe_command_error(NSError *error, MTLCommandBufferStatus status) {
	NSString *s = mr_describe(error, [NSString stringWithFormat:@"command buffer ended with status %ld", (long)status]);
	NSArray *infos = error != nil ? [[error userInfo] objectForKey:MTLCommandBufferEncoderInfoErrorKey] : nil;
	for (id<MTLCommandBufferEncoderInfo> info in infos) {
		if ([info errorState] != MTLCommandEncoderErrorStateCompleted) {
			s = [s stringByAppendingFormat:@"; encoder %@: state %ld", [info label], (long)[info errorState]];
		}
	}
	return s;
}

mr_result mr_queue_run(mr_ref qref, const mr_command *cmds, size_t ncmds,
                       const mr_buffer_arg *buffers, const mr_bytes_arg *bytes,
                       const uint8_t *arena, const mr_tg_arg *tgs,
                       uint64_t wait_ns, int fault) {
	@autoreleasepool {
		id<MTLCommandQueue> queue = (__bridge id<MTLCommandQueue>)qref;
		MTLCommandBufferDescriptor *desc = [[MTLCommandBufferDescriptor alloc] init];
		desc.errorOptions = MTLCommandBufferErrorOptionEncoderExecutionStatus;
		id<MTLCommandBuffer> cb = fault == MR_FAULT_ENCODE ? nil : [queue commandBufferWithDescriptor:desc];
		if (cb == nil) {
			return mr_fail(MR_ERR_ENCODE, @"commandBufferWithDescriptor returned nil");
		}
		cb.label = @"orchard";
		// Consecutive dispatches share one serial compute encoder (each
		// dispatch sees the writes of the ones before it); copies and
		// synchronizations go through a blit encoder. Encoders are labelled
		// with the index of their first command, for error reports and GPU
		// captures.
		id<MTLComputeCommandEncoder> ce = nil;
		id<MTLBlitCommandEncoder> be = nil;
		for (size_t i = 0; i < ncmds; i++) {
			const mr_command *c = &cmds[i];
			if (c->kind == MR_CMD_DISPATCH) {
				if (be != nil) {
					[be endEncoding];
					be = nil;
				}
				if (ce == nil) {
					ce = [cb computeCommandEncoder];
					if (ce == nil) {
						return mr_fail(MR_ERR_ENCODE, @"computeCommandEncoder returned nil");
					}
					ce.label = [NSString stringWithFormat:@"compute from command %zu", i];
				}
				[ce setComputePipelineState:(__bridge id<MTLComputePipelineState>)c->pipeline];
				for (uint32_t k = 0; k < c->nbuffers; k++) {
					const mr_buffer_arg *a = &buffers[c->first_buffer + k];
					[ce setBuffer:(__bridge id<MTLBuffer>)a->buffer offset:a->offset atIndex:a->index];
				}
				for (uint32_t k = 0; k < c->nbytes; k++) {
					const mr_bytes_arg *a = &bytes[c->first_bytes + k];
					[ce setBytes:arena + a->offset length:a->length atIndex:a->index];
				}
				for (uint32_t k = 0; k < c->ntg; k++) {
					const mr_tg_arg *a = &tgs[c->first_tg + k];
					[ce setThreadgroupMemoryLength:a->length atIndex:a->index];
				}
				[ce dispatchThreadgroups:MTLSizeMake(c->grid[0], c->grid[1], c->grid[2])
				   threadsPerThreadgroup:MTLSizeMake(c->group[0], c->group[1], c->group[2])];
				continue;
			}
			if (ce != nil) {
				[ce endEncoding];
				ce = nil;
			}
			if (be == nil) {
				be = [cb blitCommandEncoder];
				if (be == nil) {
					return mr_fail(MR_ERR_ENCODE, @"blitCommandEncoder returned nil");
				}
				be.label = [NSString stringWithFormat:@"blit from command %zu", i];
			}
			if (c->kind == MR_CMD_COPY) {
				[be copyFromBuffer:(__bridge id<MTLBuffer>)c->src
				      sourceOffset:c->src_offset
				          toBuffer:(__bridge id<MTLBuffer>)c->dst
				 destinationOffset:c->dst_offset
				              size:c->size];
			} else {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
				[be synchronizeResource:(__bridge id<MTLBuffer>)c->src];
#pragma clang diagnostic pop
			}
		}
		if (ce != nil) {
			[ce endEncoding];
		}
		if (be != nil) {
			[be endEncoding];
		}
		// A bounded wait: the completion handler signals a semaphore. When the
		// limit passes first, the command buffer keeps running and keeps its
		// resources alive (it retains them); the caller must not reuse them.
		dispatch_semaphore_t done = dispatch_semaphore_create(0);
		[cb addCompletedHandler:^(id<MTLCommandBuffer> b) {
			(void)b;
			dispatch_semaphore_signal(done);
		}];
		[cb commit];
		dispatch_time_t limit = wait_ns == 0 ? DISPATCH_TIME_FOREVER : dispatch_time(DISPATCH_TIME_NOW, (int64_t)(wait_ns > INT64_MAX ? INT64_MAX : wait_ns));
		if (dispatch_semaphore_wait(done, limit) != 0) {
			return mr_fail(MR_ERR_TIMEOUT, [NSString stringWithFormat:@"the command buffer did not complete within %llu ns", (unsigned long long)wait_ns]);
		}
		if (fault == MR_FAULT_TIMEOUT) {
			return mr_fail(MR_ERR_TIMEOUT, @"the command buffer did not complete within the wait limit (injected fault)");
		}
		MTLCommandBufferStatus status = [cb status];
		NSError *error = [cb error];
		if (fault > 0) {
			status = MTLCommandBufferStatusError;
			error = [NSError errorWithDomain:MTLCommandBufferErrorDomain
			                            code:fault
			                        userInfo:@{NSLocalizedDescriptionKey : @"injected fault"}];
		}
		if (status == MTLCommandBufferStatusCompleted) {
			mr_result r = {NULL, MR_OK, NULL};
			return r;
		}
		return mr_fail(mr_command_error_code(error), mr_describe_command_error(error, status));
	}
}
