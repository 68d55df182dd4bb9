// Command darwintypes type-checks the module's Go code as it would be built
// for another system, cgo files included, without a C toolchain for that
// system.
//
// It exists for one gap: on Linux, `GOOS=darwin go vet` cannot process the
// darwin cgo files (native/objc, the Metal executor), because cgo runs the
// target's C compiler over a preamble that includes Apple SDK headers. With
// CGO_ENABLED=0 those files are simply left out. darwintypes lists the
// packages with `go list` for the target (CGO_ENABLED=1), parses every Go file
// the target build would compile, tests included, and runs go/types over them
// in dependency order with FakeImportC: references to package "C" are
// accepted without being resolved, and everything else is checked as usual.
//
// What it catches in cgo files: syntax errors, undefined Go identifiers,
// wrong types in Go-only expressions, unused imports and variables, methods
// and interfaces that no longer match, calls into Orchard packages with the
// wrong arguments. What it cannot catch: anything about C names (whether
// C.foo exists, the types of C arguments and results, conversions between Go
// and C types), the Objective-C in .m files, and cgo pointer rules. Those are
// checked only by the macOS workflow, which builds and tests natively.
//
// It is not a package to import: it is a CI helper, run by tools/ci/darwin-vet.
//
// Usage:
//
//	go run ./tools/ci/darwintypes [-goos darwin] [-goarch arm64] [-tags t1,t2] [packages]
//
// Packages default to ./... . The exit status is 1 if any package of the
// main module has a type error or cannot be listed for the target.
package main
