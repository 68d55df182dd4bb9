//go:build linux && cgo

package metalrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDarwinGoAgainstShimHeader compiles the Go half of the darwin build
// (metal_darwin.go) with real cgo against the real shim.h, on Linux: the build
// tag is swapped and the Objective-C flags dropped, and shim.h is pure C, so cgo
// checks every C name, argument and result type, struct field and conversion the
// darwin build uses (tools/ci/darwintypes leaves C names unresolved). Nothing is
// linked: the shim's Objective-C is checked by TestShimSyntax and
// TestShimAgainstSDK, and on macOS.
func TestDarwinGoAgainstShimHeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a copy of the package")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	dir := t.TempDir()
	for _, f := range []string{"metal_darwin.go", "encode.go", "errors.go", "types.go", "faults.go", "doc.go", "shim.h"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := f
		if f == "metal_darwin.go" {
			s := string(b)
			for _, r := range [][2]string{
				{"//go:build darwin && !ios && cgo", "//go:build linux && cgo"},
				{"#cgo CFLAGS: -x objective-c -fobjc-arc", "#cgo CFLAGS: -Wall -Werror"},
				{"#cgo LDFLAGS: -framework Metal -framework Foundation -framework CoreGraphics", ""},
			} {
				if !strings.Contains(s, r[0]) {
					t.Fatalf("metal_darwin.go no longer has %q; update this test", r[0])
				}
				s = strings.Replace(s, r[0], r[1], 1)
			}
			b, name = []byte(s), "metal_cgo.go"
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module cgocheck\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"build", "./"}, {"vet", "./"}} {
		cmd := exec.Command(gocmd, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s of metal_darwin.go against shim.h: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
