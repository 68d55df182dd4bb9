package mslemu_test

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/tools/mslemu/internal/kgen"
)

// The committed adapters must be what the generator writes from the current sources:
// after changing a kernel or a .metal file, run `go generate ./tools/mslemu`.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	skipUnderBazel(t)
	if runtime.GOOS != "linux" {
		t.Skip("the emulator, and so its generated files, are for Linux")
	}
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("the generator needs g++ as the preprocessor")
	}
	files, err := kgen.Generate(kgen.Options{Root: "../.."})
	require.NoError(t, err)
	stale, err := kgen.Diff("../..", files)
	require.NoError(t, err)
	assert.Empty(t, stale, "stale generated files: run go generate ./tools/mslemu")
}

// skipUnderBazel skips tests that read the source tree (the .metal sources, the shim, the
// generated units) and run host compilers: under `bazel test` the working directory is a
// runfiles tree without them. `go test` runs them; CI runs go test.
func skipUnderBazel(t *testing.T) {
	t.Helper()
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Skip("reads the source tree and runs host compilers: go test only")
	}
}

// skipUnderRace skips compile-time checks under -race: they run host compilers on the
// sources and check nothing -race could add to, and CI runs the tests with and without it.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("a compile-time check: run without -race")
	}
}
