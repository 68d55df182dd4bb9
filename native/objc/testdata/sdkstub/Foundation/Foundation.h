// Stand-in for part of Apple's SDK, used only by shim_syntax_test.go to run
// clang -fsyntax-only over shim_darwin.m on machines without Xcode. Every
// declaration was written from Apple's documentation for the selector it
// declares; the real check is the macOS build. Deprecations are marked where
// current SDKs deprecate (fastMathEnabled in macOS 15; managed storage,
// didModifyRange: and synchronizeResource: in the macOS 27 SDK), so the test
// fails if the shim uses them outside a pragma.
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef signed long NSInteger;
typedef unsigned long NSUInteger;
typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#define nil ((id)0)
typedef const void *CFTypeRef;
static inline CFTypeRef CFBridgingRetain(id X) { return (__bridge_retained CFTypeRef)X; }
void CFRelease(CFTypeRef cf);
typedef struct _NSRange { NSUInteger location; NSUInteger length; } NSRange;
static inline NSRange NSMakeRange(NSUInteger loc, NSUInteger len) { NSRange r = {loc, len}; return r; }
#ifndef __MAC_OS_X_VERSION_MAX_ALLOWED
#define __MAC_OS_X_VERSION_MAX_ALLOWED 150000
#endif
#define __MAC_15_0 150000
@protocol NSObject
@end
__attribute__((objc_root_class))
@interface NSObject <NSObject>
+ (instancetype)alloc;
- (instancetype)init;
@end
@class NSString;
@interface NSString : NSObject
- (const char *)UTF8String;
+ (instancetype)stringWithFormat:(NSString *)format, ... __attribute__((format(__NSString__, 1, 2)));
+ (instancetype)stringWithUTF8String:(const char *)s;
- (instancetype)initWithBytes:(const void *)bytes length:(NSUInteger)len encoding:(NSUInteger)encoding;
- (BOOL)isEqualToString:(NSString *)s;
@end
#define NSUTF8StringEncoding 4
typedef NSString *NSErrorDomain;
@interface NSError : NSObject
@property(readonly, copy) NSString *localizedDescription;
@property(readonly, copy) NSErrorDomain domain;
@property(readonly) NSInteger code;
@end
@interface NSException : NSObject
@property(readonly, copy) NSString *name;
@property(readonly, copy) NSString *reason;
@end
@interface NSArray<ObjectType> : NSObject
@property(readonly) NSUInteger count;
- (ObjectType)objectAtIndexedSubscript:(NSUInteger)idx;
@end
@interface NSDictionary<KeyType, ObjectType> : NSObject
@end
@interface NSMutableDictionary<KeyType, ObjectType> : NSDictionary<KeyType, ObjectType>
+ (instancetype)dictionaryWithCapacity:(NSUInteger)numItems;
- (void)setObject:(ObjectType)obj forKeyedSubscript:(KeyType)key;
@end
@protocol OS_dispatch_data <NSObject>
@end
@protocol OS_dispatch_queue <NSObject>
@end
typedef NSObject<OS_dispatch_data> *dispatch_data_t;
typedef NSObject<OS_dispatch_queue> *dispatch_queue_t;
typedef void (^dispatch_block_t)(void);
#define DISPATCH_TARGET_QUEUE_DEFAULT NULL
#define DISPATCH_DATA_DESTRUCTOR_DEFAULT NULL
dispatch_data_t dispatch_data_create(const void *buffer, size_t size, dispatch_queue_t queue, dispatch_block_t destructor);
