//go:build !darwin

package metalrt

import (
	"os"
	"os/exec"
	"testing"
)

// TestShimSyntax runs clang -fsyntax-only over the Objective-C shims against the
// stand-in SDK headers in testdata/sdkstub, with ARC and -Werror as the real
// build uses, for both sides of the macOS 15 mathMode switch. It catches
// syntax, typing, ARC bridging and unguarded-deprecation mistakes on machines
// without Xcode; it cannot catch a selector the stand-in declares wrongly.
// Skipped when clang is not installed. On darwin the real build checks more.
func TestShimSyntax(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not installed")
	}
	if _, err := os.Stat("shim_darwin.m"); err != nil {
		t.Skipf("shim source not beside the test: %v", err)
	}
	for _, sdk := range []string{"140000", "150000"} {
		t.Run("sdk"+sdk, func(t *testing.T) {
			cmd := exec.Command(clang,
				"-target", "x86_64-apple-macos12", "-ffreestanding", "-nostdlibinc",
				"-fsyntax-only", "-x", "objective-c", "-fobjc-arc", "-fblocks",
				"-Werror", "-Wall", "-Wextra", "-Wno-unused-parameter",
				"-D__MAC_OS_X_VERSION_MAX_ALLOWED="+sdk,
				"-isystem", "testdata/sdkstub", "-I.", "shim_darwin.m")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("clang -fsyntax-only shim_darwin.m: %v\n%s", err, out)
			}
		})
	}
}
