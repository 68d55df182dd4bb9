package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixtures include <Metal/Metal.h>, which no Linux machine has: if the
// check ran a C compiler these tests would fail before reaching go/types.

// needGoTool skips tests that run `go list` on the fixtures: they need the go
// command and the module's source tree, which a Bazel test sandbox has neither
// of (the fixtures are excluded from Gazelle for that reason).
func needGoTool(t *testing.T) {
	t.Helper()
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Skip("runs `go list` on the source tree; use `go test`, not Bazel")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
}

func TestCheckAcceptsCorrectDarwinCgoFile(t *testing.T) {
	needGoTool(t)
	report, err := Check(Options{GOOS: "darwin", GOARCH: "arm64", Patterns: []string{"./testdata/good"}})
	require.NoError(t, err)
	require.Len(t, report.Packages, 1)

	p := report.Packages[0]
	assert.Equal(t, []string{"good_darwin.go"}, p.CgoFiles, "the darwin cgo file is part of the check")
	assert.Empty(t, p.Errors)
	assert.False(t, report.Failed())
}

func TestCheckReportsGoErrorsInDarwinCgoFile(t *testing.T) {
	needGoTool(t)
	report, err := Check(Options{GOOS: "darwin", GOARCH: "arm64", Patterns: []string{"./testdata/bad"}})
	require.NoError(t, err)
	require.Len(t, report.Packages, 1)

	errs := strings.Join(report.Packages[0].Errors, "\n")
	assert.Contains(t, errs, `bad_darwin.go:9:14: cannot use "three"`)
	assert.Contains(t, errs, "undefined: notDeclared")
	assert.NotContains(t, errs, "MTLCount", "C names are not resolved, so not reported")
	assert.True(t, report.Failed())
	assert.Equal(t, 2, report.ErrorCount())
}

func TestCheckFollowsBuildConstraintsOfTarget(t *testing.T) {
	needGoTool(t)
	// For linux the darwin file is not compiled, so the bad fixture is fine.
	report, err := Check(Options{GOOS: "linux", GOARCH: "amd64", Patterns: []string{"./testdata/bad"}})
	require.NoError(t, err)
	require.Len(t, report.Packages, 1)
	assert.Empty(t, report.Packages[0].CgoFiles)
	assert.False(t, report.Failed())
}

func TestCheckNeedsTarget(t *testing.T) {
	_, err := Check(Options{GOARCH: "arm64"})
	assert.Error(t, err)
	_, err = Check(Options{GOOS: "darwin", GOARCH: "no-such-arch"})
	assert.Error(t, err)
}

func TestRunExitStatusAndSummary(t *testing.T) {
	needGoTool(t)
	var out, errOut bytes.Buffer
	assert.Equal(t, 1, run([]string{"./testdata/bad"}, &out, &errOut))
	assert.Contains(t, out.String(), "darwintypes: darwin/arm64 with cgo: 1 package(s) of this module (1 with cgo files)")
	assert.Contains(t, out.String(), "2 error(s)")

	out.Reset()
	assert.Equal(t, 0, run([]string{"./testdata/good"}, &out, &errOut))
	assert.Contains(t, out.String(), "0 error(s)")
}
