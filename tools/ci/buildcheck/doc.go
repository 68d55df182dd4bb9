// Command buildcheck checks, without Bazel, that Orchard's BUILD files declare what its
// C, C++, Objective-C and cgo sources need, so that `bazel build` sees the same inputs
// and flags the go tool does.
//
// Bazel cannot run on the Linux CI machines, and the go tool forgives what Bazel does not:
// it compiles cgo in the package directory with -I <package dir>, while rules_go compiles
// from the execution root, adds -I <package dir> only when a header is in srcs, and stages
// only the declared inputs in its sandbox. buildcheck reads every BUILD file with
// github.com/bazelbuild/buildtools/build (the parser buildifier uses), models the include
// search rules_go and a C compiler perform in that sandbox, and reports:
//
//   - undeclared-include: an #include, #import or __has_include that resolves to a file of
//     the repository that is not a declared input of the target (srcs, hdrs, textual_hdrs,
//     embedsrcs, or the headers of a cdeps/deps cc_library or objc_library), or that
//     resolves only in the go tool's layout (relative to the package directory).
//   - include-climbs: an include written with a ".." segment, or an -I/-iquote/-isystem
//     directory (in a BUILD file or a #cgo line) outside the target's package other than
//     the repository root, or a #cgo include flag using ${SRCDIR}, which Gazelle expands to
//     the package path and then joins with the package path again.
//   - include-dir-missing: an include directory in a BUILD file that does not exist.
//   - apple-flag: a flag that Apple's toolchain sets itself and that conflicts with it
//     (-target, -arch, -isysroot, -mmacosx-version-min and the other deployment-target
//     flags) or that turns its override warnings into errors (-Werror), in a #cgo line or
//     a BUILD file's compile or link options. The minimum macOS lives in .bazelrc
//     (--macos_minimum_os) and in the go build's environment (MACOSX_DEPLOYMENT_TARGET).
//   - file-not-in-target: a Go, C, C++ or Objective-C file of a package that no rule of its
//     BUILD file lists (for example a file whose build tag Gazelle was not told about), and
//     that no `# gazelle:exclude` directive or `//go:build ignore` line sets aside.
//   - repo-not-visible: a label in a BUILD file (a rule attribute, select branches
//     included, or a load) whose repository MODULE.bazel does not make visible: not the
//     module itself, not a bazel_dep (by its repo_name when it has one), not a use_repo
//     import. Bazel stops there with "no repo visible"; a Go module added to go.mod needs
//     its use_repo entry (named as Gazelle names it) before Gazelle's BUILD files can use it.
//
// What it does not model: preprocessor conditionals (every include in a file is checked,
// whichever branch holds it), include_prefix/strip_include_prefix, generated files, the
// labels in select() keys, and the contents of external repositories (a label starting
// with @ is checked for visibility only, not followed). Angle-bracket includes that
// resolve nowhere in the repository are taken to be system headers.
//
// Usage: buildcheck [-root dir]; it prints one line per finding and exits 1 if there is any.
package main
