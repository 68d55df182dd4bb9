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

mr_result mr_queue_new(mr_ref ref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		id<MTLCommandQueue> q = [dev newCommandQueue];
		if (q == nil) {
			return mr_fail(MR_ERR_ENCODE, @"newCommandQueue returned nil");
		}
		return mr_ok(q);
	}
}

// ---------------------------------------------------------------- buffers

mr_result mr_buffer_new(mr_ref ref, size_t length, int mode) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		if (length == 0) {
			return mr_fail(MR_ERR_INVALID, @"buffer length is 0");
		}
		if (length > (size_t)[dev maxBufferLength]) {
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"%zu bytes exceed the device's maxBufferLength %lu",
			                                                                length, (unsigned long)[dev maxBufferLength]]);
		}
		MTLResourceOptions opts;
		switch (mode) {
		case MR_SHARED:
			opts = MTLResourceStorageModeShared;
			break;
		case MR_PRIVATE:
			opts = MTLResourceStorageModePrivate;
			break;
		case MR_MANAGED:
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
			opts = MTLResourceStorageModeManaged;
#pragma clang diagnostic pop
			break;
		default:
			return mr_fail(MR_ERR_INVALID, [NSString stringWithFormat:@"unknown storage mode %d", mode]);
		}
		id<MTLBuffer> buf = [dev newBufferWithLength:length options:opts];
		if (buf == nil) {
			return mr_fail(MR_ERR_NO_MEMORY, [NSString stringWithFormat:@"newBufferWithLength:%zu returned nil", length]);
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

// mr_set_math_mode applies a math mode: mathMode where the SDK and the running
// system have it (macOS 15), fastMathEnabled before, where safe and relaxed
// both mean fast math off.
static void mr_set_math_mode(MTLCompileOptions *opts, int mode) {
	if (mode == MR_MATH_DEFAULT) {
		return;
	}
#if defined(__MAC_15_0) && __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_15_0
	if (@available(macOS 15.0, *)) {
		switch (mode) {
		case MR_MATH_SAFE:
			opts.mathMode = MTLMathModeSafe;
			break;
		case MR_MATH_RELAXED:
			opts.mathMode = MTLMathModeRelaxed;
			break;
		default:
			opts.mathMode = MTLMathModeFast;
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
                                 const char *const *macro_values, size_t nmacros) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
		NSString *source = [[NSString alloc] initWithBytes:src length:src_len encoding:NSUTF8StringEncoding];
		if (source == nil) {
			return mr_fail(MR_ERR_INVALID, @"MSL source is not valid UTF-8");
		}
		MTLCompileOptions *opts = [[MTLCompileOptions alloc] init];
		if (language_version != 0) {
			opts.languageVersion = (MTLLanguageVersion)language_version;
		}
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
		NSError *error = nil;
		id<MTLLibrary> lib = nil;
		@try {
			lib = [dev newLibraryWithSource:source options:opts error:&error];
		} @catch (NSException *e) {
			// An option Metal rejects (a language version this system lacks, say)
			// may raise rather than fail: report it instead of aborting.
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

mr_result mr_library_from_data(mr_ref ref, const void *data, size_t len) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)ref;
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

mr_result mr_function_new(mr_ref ref, const char *name) {
	@autoreleasepool {
		id<MTLLibrary> lib = (__bridge id<MTLLibrary>)ref;
		NSString *n = [NSString stringWithUTF8String:name];
		if (n == nil) {
			return mr_fail(MR_ERR_INVALID, @"function name is not valid UTF-8");
		}
		id<MTLFunction> fn = [lib newFunctionWithName:n];
		if (fn == nil) {
			return mr_fail(MR_ERR_FUNCTION, [NSString stringWithFormat:@"no function %@ in the library", n]);
		}
		return mr_ok(fn);
	}
}

mr_result mr_pipeline_new(mr_ref dref, mr_ref fref) {
	@autoreleasepool {
		id<MTLDevice> dev = (__bridge id<MTLDevice>)dref;
		id<MTLFunction> fn = (__bridge id<MTLFunction>)fref;
		NSError *error = nil;
		id<MTLComputePipelineState> p = [dev newComputePipelineStateWithFunction:fn error:&error];
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

mr_result mr_queue_run(mr_ref qref, const mr_command *cmds, size_t ncmds,
                       const mr_buffer_arg *buffers, const mr_bytes_arg *bytes,
                       const uint8_t *arena, const mr_tg_arg *tgs) {
	@autoreleasepool {
		id<MTLCommandQueue> queue = (__bridge id<MTLCommandQueue>)qref;
		id<MTLCommandBuffer> cb = [queue commandBuffer];
		if (cb == nil) {
			return mr_fail(MR_ERR_ENCODE, @"commandBuffer returned nil");
		}
		// Consecutive dispatches share one serial compute encoder (each
		// dispatch sees the writes of the ones before it); copies and
		// synchronizations go through a blit encoder.
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
		[cb commit];
		[cb waitUntilCompleted];
		MTLCommandBufferStatus status = [cb status];
		if (status == MTLCommandBufferStatusCompleted) {
			mr_result r = {NULL, MR_OK, NULL};
			return r;
		}
		NSError *error = [cb error];
		int code = MR_ERR_COMMAND;
		if (error != nil && [[error domain] isEqualToString:MTLCommandBufferErrorDomain] &&
		    [error code] == MTLCommandBufferErrorOutOfMemory) {
			code = MR_ERR_NO_MEMORY;
		}
		return mr_fail(code, mr_describe(error, [NSString stringWithFormat:@"command buffer ended with status %ld", (long)status]));
	}
}
