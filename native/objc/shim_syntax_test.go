//go:build !darwin

package metalrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// findClang returns the first clang on PATH: clang, then versioned names
// (Debian installs clang-19, clang-16, ... without a plain clang).
func findClang(t *testing.T) string {
	for _, name := range []string{"clang", "clang-21", "clang-20", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("clang not installed")
	return ""
}

// TestShimSyntax runs clang -fsyntax-only over the Objective-C shims against the
// stand-in SDK headers in testdata/sdkstub, with ARC and -Werror, for both
// sides of the macOS 15 mathMode switch. It catches syntax, typing, ARC
// bridging and unguarded-deprecation mistakes on machines without Xcode; it
// cannot catch a selector the stand-in declares wrongly: TestShimAgainstSDK
// does, when a real SDK is at hand. Skipped when clang is not installed. On
// darwin the real build checks more.
func TestShimSyntax(t *testing.T) {
	clang := findClang(t)
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

// TestShimAgainstSDK compiles the shims against Apple's real SDK headers when
// ORCHARD_MACOS_SDK names a directory holding them in the layout of the public
// copy in github.com/hexops/xcode-frameworks (Frameworks/, include/), e.g. its
// MacOSX 14.2 headers: for arm64 and x86_64, deployment targets 12, 15 and 27,
// with -Werror -Wall -Wextra. Never commit the SDK's files. Skipped when the
// variable is unset or clang is missing.
func TestShimAgainstSDK(t *testing.T) {
	sdk := os.Getenv("ORCHARD_MACOS_SDK")
	if sdk == "" {
		t.Skip("ORCHARD_MACOS_SDK is not set")
	}
	clang := findClang(t)
	res, err := exec.Command(clang, "-print-resource-dir").Output()
	if err != nil {
		t.Fatalf("%s -print-resource-dir: %v", clang, err)
	}
	builtin := filepath.Join(string(res[:len(res)-1]), "include") // stdarg.h and friends
	for _, target := range []string{"arm64-apple-macos12", "x86_64-apple-macos12", "arm64-apple-macos15", "arm64-apple-macos27"} {
		t.Run(target, func(t *testing.T) {
			cmd := exec.Command(clang, "-target", target,
				"-fsyntax-only", "-x", "objective-c", "-fobjc-arc", "-fblocks",
				"-Werror", "-Wall", "-Wextra", "-Wno-unused-parameter",
				"-nostdinc", "-isystem", builtin,
				"-isystem", filepath.Join(sdk, "include"),
				"-iframework", filepath.Join(sdk, "Frameworks"),
				"-I.", "shim_darwin.m")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("clang against %s: %v\n%s", sdk, err, out)
			}
		})
	}
}
