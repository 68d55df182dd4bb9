package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each test writes a small repository: a cgo package //emu whose C++ includes a header of
// its own and a kernel source of //kernels through a cc_library in cdeps, laid out the
// way the fixed Orchard tree is. The good tree has no finding; every other test breaks one
// thing and expects exactly the rule that catches it.

func goodTree() map[string]string {
	return map[string]string{
		"MODULE.bazel": `module(name = "fixture")

bazel_dep(name = "rules_go", version = "0.64.2")
bazel_dep(name = "rules_cc", version = "0.2.14")
bazel_dep(name = "gazelle", version = "0.53.0", repo_name = "bazel_gazelle")

go_deps = use_extension("@bazel_gazelle//:extensions.bzl", "go_deps")
use_repo(go_deps, "com_github_stretchr_testify", renamed = "org_golang_x_sys")
`,
		"BUILD.bazel": "# gazelle:prefix example.com/fixture\n# gazelle:exclude skipped\n",
		"kernels/BUILD.bazel": `load("@rules_cc//cc:cc_library.bzl", "cc_library")

cc_library(
    name = "kernel_sources",
    textual_hdrs = ["kernel.metal", "params.h"],
    visibility = ["//visibility:public"],
)
`,
		"kernels/kernel.metal": "#include <metal_stdlib>\n#include \"params.h\"\n",
		"kernels/params.h":     "struct Params { int n; };\n",
		"emu/BUILD.bazel": `load("@rules_go//go:def.bzl", "go_library")

go_library(
    name = "emu",
    srcs = [
        "emu.cc",
        "emu_cgo.go",
        "plain.go",
    ],
    cdeps = ["//kernels:kernel_sources"],  # keep
    cgo = True,
    cppopts = ["-I. -Iemu"],
    cxxopts = select({
        "@rules_go//go/platform:linux": ["-std=c++14 -Iemu/shim"],
        "//conditions:default": [],
    }),
    embedsrcs = glob(["shim/*"]),
    importpath = "example.com/fixture/emu",
)
`,
		"emu/emu_cgo.go": `package emu

/*
#cgo CPPFLAGS: -I.. -I.
#cgo CXXFLAGS: -std=c++14 -Ishim
#include <stdlib.h>
#include "shim/rt.h"
*/
import "C"
`,
		"emu/plain.go":          "package emu\n",
		"emu/emu.cc":            "// #include \"commented/out.h\"\n#include <metal_stdlib>\n#include \"shim/rt.h\"\n#include \"kernels/kernel.metal\"\n",
		"emu/shim/metal_stdlib": "#include \"rt.h\"\n",
		"emu/shim/rt.h":         "#include <vector>\n",
		"emu/gen/tool.go":       "//go:build ignore\n\npackage main\n",
		"skipped/BUILD.bazel":   "",
		"skipped/x.go":          "package skipped\n",
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return root
}

// check runs Check on the tree and returns the findings as strings.
func check(t *testing.T, files map[string]string) []Finding {
	t.Helper()
	fs, err := Check(writeTree(t, files))
	require.NoError(t, err)
	return fs
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func TestGoodTreeHasNoFinding(t *testing.T) {
	assert.Empty(t, check(t, goodTree()))
}

// The review's #1: a preamble include that only the go tool's -I <package dir> finds.
func TestUndeclaredIncludeOnlyInGoToolLayout(t *testing.T) {
	files := goodTree()
	files["emu/emu_cgo.go"] = strings.Replace(files["emu/emu_cgo.go"], "#cgo CPPFLAGS: -I.. -I.\n", "#cgo CPPFLAGS: -I..\n", 1)
	files["emu/BUILD.bazel"] = strings.Replace(files["emu/BUILD.bazel"], `cppopts = ["-I. -Iemu"],`, `cppopts = ["-I."],`, 1)
	fs := check(t, files)
	require.Equal(t, []string{ruleUndeclared}, rules(fs))
	assert.Contains(t, fs[0].Pos, "emu/emu_cgo.go:7")
	assert.Contains(t, fs[0].Msg, "only in the go tool's layout")
}

// The review's #3: a file of another package that exists but is not an input (here the
// cdeps line is missing), also through __has_include.
func TestUndeclaredIncludeOfAnotherPackage(t *testing.T) {
	files := goodTree()
	files["emu/BUILD.bazel"] = strings.Replace(files["emu/BUILD.bazel"], "    cdeps = [\"//kernels:kernel_sources\"],  # keep\n", "", 1)
	files["emu/emu.cc"] += "#if __has_include(\"kernels/params.h\")\n#endif\n"
	fs := check(t, files)
	require.Equal(t, []string{ruleUndeclared, ruleUndeclared}, rules(fs))
	assert.Contains(t, fs[0].Msg, "found at kernels/kernel.metal, which is not a declared input")
	assert.Contains(t, fs[1].Msg, "found at kernels/params.h")
}

// A header of the package itself that srcs/embedsrcs do not list is not staged either.
func TestUndeclaredIncludeOfOwnPackage(t *testing.T) {
	files := goodTree()
	files["emu/extra.h"] = "int extra;\n"
	files["emu/emu.cc"] += "#include \"extra.h\"\n"
	fs := check(t, files)
	require.Equal(t, []string{ruleUndeclared}, rules(fs))
	assert.Contains(t, fs[0].Msg, "found at emu/extra.h")
}

// The review's #4: a ".." include in a preamble.
func TestIncludeClimbs(t *testing.T) {
	files := goodTree()
	files["emu/emu_cgo.go"] = strings.Replace(files["emu/emu_cgo.go"], `#include "shim/rt.h"`, `#include "../kernels/params.h"`, 1)
	fs := check(t, files)
	assert.Contains(t, rules(fs), ruleClimbs)
	for _, f := range fs {
		if f.Rule == ruleClimbs {
			assert.Contains(t, f.Msg, `"../kernels/params.h"`)
		}
	}
}

// An include directory of another package in a BUILD file or a #cgo line.
func TestIncludeDirClimbs(t *testing.T) {
	files := goodTree()
	files["emu/BUILD.bazel"] = strings.Replace(files["emu/BUILD.bazel"], `cppopts = ["-I. -Iemu"],`, `cppopts = ["-I. -Iemu -Ikernels"],`, 1)
	fs := check(t, files)
	require.Equal(t, []string{ruleClimbs}, rules(fs))
	assert.Contains(t, fs[0].Msg, `"kernels" is outside package //emu`)

	files = goodTree()
	files["emu/emu_cgo.go"] = strings.Replace(files["emu/emu_cgo.go"], "-I.. -I.", "-I.. -I. -I../kernels", 1)
	fs = check(t, files)
	require.Equal(t, []string{ruleClimbs}, rules(fs))
	assert.Contains(t, fs[0].Msg, "-I../kernels is outside the package")
}

// The review's #2: -I${SRCDIR}/shim, which Gazelle turns into emu/emu/shim.
func TestSrcdirFlagAndMissingIncludeDir(t *testing.T) {
	files := goodTree()
	files["emu/emu_cgo.go"] = strings.Replace(files["emu/emu_cgo.go"], "-Ishim", "-I${SRCDIR}/shim", 1)
	files["emu/BUILD.bazel"] = strings.Replace(files["emu/BUILD.bazel"], "-Iemu/shim", "-Iemu/emu/shim", 1)
	fs := check(t, files)
	assert.Subset(t, rules(fs), []string{ruleClimbs, ruleDirMissing, ruleUndeclared})
	for _, f := range fs {
		switch f.Rule {
		case ruleClimbs:
			assert.Contains(t, f.Msg, "${SRCDIR}")
		case ruleDirMissing:
			assert.Contains(t, f.Msg, `"emu/emu/shim" is not a directory`)
		case ruleUndeclared: // <metal_stdlib> is no longer on Bazel's include path
			assert.Contains(t, f.Msg, `"metal_stdlib"`)
		default:
			t.Errorf("unexpected finding %s", f)
		}
	}
}

// The review's #7: deployment target and -Werror in a #cgo line and in copts.
func TestAppleFlags(t *testing.T) {
	files := goodTree()
	files["emu/emu_cgo.go"] = strings.Replace(files["emu/emu_cgo.go"], "#cgo CXXFLAGS: -std=c++14", "#cgo CXXFLAGS: -Werror -mmacosx-version-min=12.0 -std=c++14", 1)
	fs := check(t, files)
	require.Equal(t, []string{ruleAppleFlag, ruleAppleFlag}, rules(fs))
	assert.Contains(t, fs[0].Msg+fs[1].Msg, `"-Werror"`)
	assert.Contains(t, fs[0].Msg+fs[1].Msg, `"-mmacosx-version-min=12.0"`)

	files = goodTree()
	files["emu/BUILD.bazel"] = strings.Replace(files["emu/BUILD.bazel"], `"-std=c++14 -Iemu/shim"`, `"-std=c++14 -Iemu/shim -target arm64-apple-macosx12.0"`, 1)
	fs = check(t, files)
	require.Equal(t, []string{ruleAppleFlag}, rules(fs))
	assert.Contains(t, fs[0].Msg, "cxxopts carries \"-target\"")
}

// The review's #16: a file Gazelle dropped because of a build tag it was not told about.
func TestFileNotInTarget(t *testing.T) {
	files := goodTree()
	files["emu/tsan_on.go"] = "//go:build emu_tsan\n\npackage emu\n"
	fs := check(t, files)
	require.Equal(t, []string{ruleUnlisted}, rules(fs))
	assert.Equal(t, "emu/tsan_on.go:1", fs[0].Pos)
}

// Parsing is real: a BUILD file that is not valid Starlark is an error, not a pass.
func TestBrokenBuildFileIsAnError(t *testing.T) {
	files := goodTree()
	files["emu/BUILD.bazel"] = "go_library(name = \"emu\",\n"
	_, err := Check(writeTree(t, files))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "emu/BUILD.bazel")
}

func TestRepoNotVisible(t *testing.T) {
	tree := goodTree()
	tree["dep/BUILD.bazel"] = `load("@rules_go//go:def.bzl", "go_library")
load("@bazel_gazelle//:def.bzl", "gazelle")

go_library(
    name = "dep",
    srcs = ["dep.go"],
    importpath = "example.com/fixture/dep",
    deps = [
        "@com_github_stretchr_testify//assert",
        "@renamed//unix",
        "@@//emu",
        "@org_uber_go_goleak//:goleak",
    ],
)
`
	tree["dep/dep.go"] = "package dep\n"
	fs := check(t, tree)
	require.Len(t, fs, 1, "%v", fs)
	assert.Equal(t, ruleRepo, fs[0].Rule)
	assert.Contains(t, fs[0].Msg, "@org_uber_go_goleak")

	tree["dep/BUILD.bazel"] = strings.Replace(tree["dep/BUILD.bazel"], "@bazel_gazelle//", "@gazelle//", 1)
	tree["dep/BUILD.bazel"] = strings.Replace(tree["dep/BUILD.bazel"], `        "@org_uber_go_goleak//:goleak",
`, "", 1)
	fs = check(t, tree)
	require.Len(t, fs, 1, "%v", fs)
	assert.Contains(t, fs[0].Msg, "@gazelle//:def.bzl", "a bazel_dep with repo_name is visible only by that name")
}
