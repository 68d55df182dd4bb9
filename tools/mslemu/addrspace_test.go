package mslemu_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The address-space check compiles the kernels with clang++ (17 or later: bfloat is its
// __bf16 there) and -DMSLEMU_ADDRESS_SPACES, under which the shim gives device, constant
// and threadgroup memory clang's distinct address spaces. A pointer or reference then
// converts only within its own space, as in MSL, and everything else compiles as with g++.
// It never runs the result.
//
// What clang's C++ cannot model: MSL lets a whole struct or vector be copied out of, or
// assigned into, device, constant or threadgroup memory; with address-space attributes
// C++ has no copy constructor or assignment for that. Those diagnostics are not counted
// (they are about objects, not about pointer or reference conversions), nor is clang's
// refusal of MSL's `template [[host_name(...)]] [[kernel]]` instantiation syntax.
var clangModelLimits = []string{
	"no matching constructor for initialization of",
	"no viable overloaded '='",
	"cannot initialize object parameter of type",
	"an attribute list cannot appear here",
}

var clangError = regexp.MustCompile(`(?m)^(.*?:\d+:\d+): error: (.*)$`)

// findClang returns a clang++ of major version 17 or later: $MSLEMU_CLANG, or the first
// found of clang++-19, -18, -17 and clang++. Outside CI a missing clang skips the test; in
// CI (CI set) it fails it, since .ci/run installs clang-19.
func findClang(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the emulator is for Linux")
	}
	cands := []string{"clang++-19", "clang++-18", "clang++-17", "clang++"}
	if c := os.Getenv("MSLEMU_CLANG"); c != "" {
		cands = []string{c}
	}
	for _, c := range cands {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		out, err := exec.Command(p, "-dumpversion").Output()
		if err != nil {
			continue
		}
		major, _ := strconv.Atoi(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0])
		if major >= 17 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the address-space check needs clang++ 17 or later (.ci/run installs clang-19)")
	}
	t.Skip("the address-space check needs clang++ 17 or later (apt-get install clang-19)")
	return ""
}

// clangCheck compiles unit with the address-space model and returns the errors that are
// address-space (or other) violations, leaving out clangModelLimits.
func clangCheck(t *testing.T, clang, unit string) []string {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	cmd := exec.Command(clang, "-std=c++14", "-fsyntax-only", "-ferror-limit=0", "-DMSLEMU_ADDRESS_SPACES",
		"-Wno-unknown-attributes", "-Wno-c++17-extensions", "-I"+filepath.Join(dir, "shim"), "-I"+dir,
		"-I"+filepath.Join(dir, "..", ".."), unit) // units include other packages' sources by repository path
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var errs []string
	for _, m := range clangError.FindAllStringSubmatch(out.String(), -1) {
		limit := false
		for _, l := range clangModelLimits {
			limit = limit || strings.HasPrefix(m[2], l)
		}
		if !limit {
			errs = append(errs, m[1]+": "+m[2])
		}
	}
	if runErr != nil && len(errs) == 0 && !strings.Contains(out.String(), "error:") {
		t.Fatalf("%s %s: %v\n%s", clang, unit, runErr, out.String())
	}
	return errs
}

// Every translation unit the emulator compiles (every kernel, every instantiation) passes
// the address-space check.
func TestAddressSpaces(t *testing.T) {
	skipUnderBazel(t)
	skipUnderRace(t)
	clang := findClang(t)
	units, err := filepath.Glob("kgen_*_gen.cc")
	require.NoError(t, err)
	require.NotEmpty(t, units)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, min(runtime.NumCPU(), 4)))
	found := map[string][]string{}
	for _, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs := clangCheck(t, clang, u)
			mu.Lock()
			found[u] = errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, u := range units {
		assert.Empty(t, found[u], "%s: address-space violations:\n%s", u, strings.Join(found[u], "\n"))
	}
	t.Logf("%d translation units checked with %s", len(units), clang)
}

// clangRejects compiles one .metal file with the address-space model and returns the
// counted errors.
func clangRejects(t *testing.T, clang, path string) []string {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	unit := filepath.Join(t.TempDir(), "unit.cc")
	require.NoError(t, os.WriteFile(unit, []byte(fmt.Sprintf("#include <metal_stdlib>\n#include %q\n", abs)), 0o644))
	return clangCheck(t, clang, unit)
}
