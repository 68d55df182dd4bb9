// Stand-in for part of Apple's SDK, used only by shim_syntax_test.go to run
// clang -fsyntax-only over shim_darwin.m on machines without Xcode. Every
// declaration was written from Apple's documentation for the selector it
// declares; the real check is the macOS build. Deprecations are marked where
// current SDKs deprecate (fastMathEnabled in macOS 15; managed storage,
// didModifyRange: and synchronizeResource: in the macOS 27 SDK), so the test
// fails if the shim uses them outside a pragma.
#pragma once
#include <stddef.h>
char *strdup(const char *);
