package mslemu_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/tools/mslemu/internal/kgen"
)

// cxxFlags returns the flags the go tool compiles the kernels with: the unconditional
// `#cgo CXXFLAGS:` line of launch_cgo.go, with ${SRCDIR} resolved.
func cxxFlags(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("launch_cgo.go")
	require.NoError(t, err)
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "#cgo CXXFLAGS:"); ok {
			return strings.Fields(strings.ReplaceAll(rest, "${SRCDIR}", dir))
		}
	}
	t.Fatal("launch_cgo.go has no #cgo CXXFLAGS line")
	return nil
}

// compileKernel compiles one .metal file as the emulator does (g++, the cgo flags,
// -fsyntax-only) and returns the compiler's output and whether it succeeded.
func compileKernel(t *testing.T, flags []string, path string) (string, bool) {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	unit := filepath.Join(t.TempDir(), "unit.cc")
	require.NoError(t, os.WriteFile(unit, []byte("#include <metal_stdlib>\n#include \""+abs+"\"\n"), 0o644))
	cmd := exec.Command("g++", append(append([]string{}, flags...), "-fsyntax-only", unit)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C") // ASCII quotes in the messages
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err == nil
}

// rejectRule reads the first line of a rejected kernel: "// REJECT <stage>: <message>".
func rejectRule(t *testing.T, path string) (stage, want string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	s := bufio.NewScanner(f)
	require.True(t, s.Scan())
	rest, ok := strings.CutPrefix(s.Text(), "// REJECT ")
	require.True(t, ok, "%s: the first line must be // REJECT <stage>: <message>", path)
	stage, want, ok = strings.Cut(rest, ": ")
	require.True(t, ok, "%s: the first line must be // REJECT <stage>: <message>", path)
	return stage, want
}

// Each file in testkernels/rejected breaks one rule that Metal's compiler enforces and
// plain C++17 would not: the emulator's build (g++ with the cgo flags: -std=c++14
// -pedantic-errors, the shim as a system header), its generator (kgen) or the
// address-space check (clang, see addrspace_test.go) must refuse it, with the message the
// file names. The same build accepts the valid test kernels.
func TestRejectedKernels(t *testing.T) {
	skipUnderBazel(t)
	skipUnderRace(t)
	if runtime.GOOS != "linux" {
		t.Skip("the emulator is for Linux")
	}
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("needs g++")
	}
	flags := cxxFlags(t)
	for _, ok := range []string{"testkernels/features.metal", "testkernels/matmul.metal", "testkernels/simd.metal"} {
		out, compiled := compileKernel(t, flags, ok)
		require.True(t, compiled, "%s must compile:\n%s", ok, out)
	}
	files, err := filepath.Glob("testkernels/rejected/*.metal")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	stages := map[string]int{}
	for _, f := range files {
		stage, want := rejectRule(t, f)
		stages[stage]++
		switch stage {
		case "g++":
			out, compiled := compileKernel(t, flags, f)
			if assert.False(t, compiled, "%s must not compile", f) {
				assert.Contains(t, out, want, "%s", f)
			}
		case "kgen":
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			problems := kgen.Lint(f, src)
			if _, err := kgen.ParseFile(f, string(src)); err != nil {
				problems = append(problems, err.Error())
			}
			if assert.NotEmpty(t, problems, "%s must be refused by the generator", f) {
				assert.Contains(t, strings.Join(problems, "\n"), want, "%s", f)
			}
			// The C++ compiler alone would have accepted it: the generator's rule is needed.
			out, compiled := compileKernel(t, flags, f)
			assert.True(t, compiled, "%s: g++ accepts it, so only kgen catches it:\n%s", f, out)
		case "clang":
			clang := findClang(t)
			errs := clangRejects(t, clang, f)
			if assert.NotEmpty(t, errs, "%s must fail the address-space check", f) {
				assert.Contains(t, strings.Join(errs, "\n"), want, "%s", f)
			}
			out, compiled := compileKernel(t, flags, f)
			assert.True(t, compiled, "%s: g++ accepts it, so only the address-space check catches it:\n%s", f, out)
		default:
			t.Errorf("%s: unknown stage %q", f, stage)
		}
	}
	t.Logf("rejected kernels by stage: %v", stages)
}
