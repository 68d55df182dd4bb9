// Stand-in for part of Apple's SDK, used only by shim_syntax_test.go to run
// clang -fsyntax-only over shim_darwin.m on machines without Xcode. Every
// declaration was written from Apple's documentation for the selector it
// declares; the real check is the macOS build. Deprecations are marked where
// current SDKs deprecate (fastMathEnabled in macOS 15; managed storage,
// didModifyRange: and synchronizeResource: in the macOS 27 SDK), so the test
// fails if the shim uses them outside a pragma.
#pragma once
#include <Foundation/Foundation.h>
typedef struct { NSUInteger width, height, depth; } MTLSize;
static inline MTLSize MTLSizeMake(NSUInteger w, NSUInteger h, NSUInteger d) { MTLSize s = {w, h, d}; return s; }
typedef enum : NSInteger { MTLGPUFamilyApple7 = 1007, MTLGPUFamilyApple9 = 1009, MTLGPUFamilyMac2 = 2002 } MTLGPUFamily;
typedef enum : NSUInteger { MTLResourceStorageModeShared = 0, MTLResourceStorageModeManaged __attribute__((deprecated)) = 1 << 4, MTLResourceStorageModePrivate = 2 << 4 } MTLResourceOptions;
typedef enum : NSUInteger { MTLStorageModeShared = 0, MTLStorageModeManaged = 1, MTLStorageModePrivate = 2 } MTLStorageMode;
typedef enum : NSUInteger { MTLLanguageVersion3_1 = 196609 } MTLLanguageVersion;
typedef enum : NSInteger { MTLMathModeSafe = 0, MTLMathModeRelaxed = 1, MTLMathModeFast = 2 } MTLMathMode;
typedef enum : NSInteger { MTLMathFloatingPointFunctionsFast = 0, MTLMathFloatingPointFunctionsPrecise = 1 } MTLMathFloatingPointFunctions;
typedef enum : NSUInteger { MTLDataTypeBool = 53 } MTLDataType;
typedef enum : NSUInteger { MTLCommandBufferErrorOptionNone = 0, MTLCommandBufferErrorOptionEncoderExecutionStatus = 1 } MTLCommandBufferErrorOption;
typedef enum : NSInteger { MTLCommandEncoderErrorStateUnknown = 0, MTLCommandEncoderErrorStateCompleted = 1, MTLCommandEncoderErrorStateAffected = 2, MTLCommandEncoderErrorStatePending = 3, MTLCommandEncoderErrorStateFaulted = 4 } MTLCommandEncoderErrorState;
typedef enum : NSUInteger { MTLCommandBufferStatusNotEnqueued = 0, MTLCommandBufferStatusCompleted = 4, MTLCommandBufferStatusError = 5 } MTLCommandBufferStatus;
typedef enum : NSUInteger { MTLCommandBufferErrorAccessRevoked = 4, MTLCommandBufferErrorNotPermitted = 7, MTLCommandBufferErrorOutOfMemory = 8, MTLCommandBufferErrorDeviceRemoved = 11 } MTLCommandBufferError;
extern NSErrorDomain const MTLCommandBufferErrorDomain;
extern NSString *const MTLCommandBufferEncoderInfoErrorKey;
@protocol MTLCommandBufferEncoderInfo <NSObject>
@property(readonly, nonatomic) NSString *label;
@property(readonly, nonatomic) MTLCommandEncoderErrorState errorState;
@end
@interface MTLFunctionConstantValues : NSObject
- (void)setConstantValue:(const void *)value type:(MTLDataType)type atIndex:(NSUInteger)index;
@end
@interface MTLCommandBufferDescriptor : NSObject
@property(readwrite, nonatomic) MTLCommandBufferErrorOption errorOptions;
@end
@protocol MTLResource <NSObject>
@property(readonly) MTLStorageMode storageMode;
@end
@protocol MTLBuffer <MTLResource>
@property(readonly) NSUInteger length;
- (void *)contents;
- (void)didModifyRange:(NSRange)range __attribute__((deprecated));
@end
@protocol MTLFunction <NSObject>
@end
@protocol MTLLibrary <NSObject>
- (id<MTLFunction>)newFunctionWithName:(NSString *)functionName;
- (id<MTLFunction>)newFunctionWithName:(NSString *)name constantValues:(MTLFunctionConstantValues *)constantValues error:(NSError **)error;
@end
@protocol MTLComputePipelineState <NSObject>
@property(readonly) NSUInteger maxTotalThreadsPerThreadgroup;
@property(readonly) NSUInteger threadExecutionWidth;
@property(readonly) NSUInteger staticThreadgroupMemoryLength;
@end
@protocol MTLCommandEncoder <NSObject>
- (void)endEncoding;
@property(copy, atomic) NSString *label;
@end
@protocol MTLComputeCommandEncoder <MTLCommandEncoder>
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state;
- (void)setBuffer:(id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index;
- (void)setBytes:(const void *)bytes length:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)setThreadgroupMemoryLength:(NSUInteger)length atIndex:(NSUInteger)index;
- (void)dispatchThreadgroups:(MTLSize)threadgroupsPerGrid threadsPerThreadgroup:(MTLSize)threadsPerThreadgroup;
@end
@protocol MTLBlitCommandEncoder <MTLCommandEncoder>
- (void)copyFromBuffer:(id<MTLBuffer>)sourceBuffer sourceOffset:(NSUInteger)sourceOffset toBuffer:(id<MTLBuffer>)destinationBuffer destinationOffset:(NSUInteger)destinationOffset size:(NSUInteger)size;
- (void)synchronizeResource:(id<MTLResource>)resource __attribute__((deprecated));
@end
@protocol MTLCommandBuffer;
typedef void (^MTLCommandBufferHandler)(id<MTLCommandBuffer>);
@protocol MTLCommandBuffer <NSObject>
@property(copy, atomic) NSString *label;
- (void)addCompletedHandler:(MTLCommandBufferHandler)block;
- (id<MTLComputeCommandEncoder>)computeCommandEncoder;
- (id<MTLBlitCommandEncoder>)blitCommandEncoder;
- (void)commit;
- (void)waitUntilCompleted;
@property(readonly) MTLCommandBufferStatus status;
@property(readonly) NSError *error;
@end
@protocol MTLCommandQueue <NSObject>
- (id<MTLCommandBuffer>)commandBuffer;
- (id<MTLCommandBuffer>)commandBufferWithDescriptor:(MTLCommandBufferDescriptor *)descriptor;
@end
@interface MTLCompileOptions : NSObject
@property(readwrite, nonatomic) MTLLanguageVersion languageVersion;
@property(readwrite, nonatomic) BOOL fastMathEnabled __attribute__((deprecated));
@property(readwrite, nonatomic) MTLMathMode mathMode __attribute__((availability(macos, introduced=15.0)));
@property(readwrite, nonatomic) MTLMathFloatingPointFunctions mathFloatingPointFunctions __attribute__((availability(macos, introduced=15.0)));
@property(readwrite, copy, nonatomic) NSDictionary<NSString *, NSObject *> *preprocessorMacros;
@end
@protocol MTLDevice <NSObject>
@property(readonly) NSString *name;
@property(readonly) NSUInteger maxThreadgroupMemoryLength;
@property(readonly) NSUInteger maxBufferLength;
@property(readonly) BOOL hasUnifiedMemory;
@property(readonly) uint64_t registryID;
@property(readonly) uint64_t recommendedMaxWorkingSetSize;
- (BOOL)supportsFamily:(MTLGPUFamily)gpuFamily;
- (id<MTLCommandQueue>)newCommandQueue;
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options;
- (id<MTLBuffer>)newBufferWithBytesNoCopy:(void *)pointer length:(NSUInteger)length options:(MTLResourceOptions)options deallocator:(void (^)(void *pointer, NSUInteger length))deallocator;
- (id<MTLLibrary>)newLibraryWithSource:(NSString *)source options:(MTLCompileOptions *)options error:(NSError **)error;
- (id<MTLLibrary>)newLibraryWithData:(dispatch_data_t)data error:(NSError **)error;
- (id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)computeFunction error:(NSError **)error;
@end
id<MTLDevice> MTLCreateSystemDefaultDevice(void) __attribute__((ns_returns_retained));
NSArray<id<MTLDevice>> *MTLCopyAllDevices(void) __attribute__((ns_returns_retained));
