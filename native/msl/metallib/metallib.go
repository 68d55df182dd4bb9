package metallib

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/bazelbuild/rules_go/go/runfiles"
)

// Names of the libraries, as go/attention/mslplan's Library.Name.
const (
	Attention     = "attention"
	AttentionBF16 = "attention_bf16"
)

// ErrNotBuilt is wrapped by Path's error when the program has no metallib of that name:
// it was not built by Bazel on macOS.
var ErrNotBuilt = errors.New("metallib: not built (Bazel builds the metallibs on macOS only)")

// dir is this package's path inside the Orchard repository.
const dir = "native/msl/metallib"

// Path returns the file of the named metallib among the program's Bazel runfiles.
func Path(name string) (string, error) {
	if name != Attention && name != AttentionBF16 {
		return "", fmt.Errorf("metallib: unknown library %q (want %q or %q)", name, Attention, AttentionBF16)
	}
	rel := path.Join(dir, name+".metallib")
	repo := runfiles.CurrentRepository()
	if repo == "" {
		repo = "_main"
	}
	// The module's apparent name first (mapped through the repo mapping), then the
	// canonical directory of the repository holding this file.
	for _, p := range []string{"orchard/" + rel, repo + "/" + rel} {
		loc, err := runfiles.Rlocation(p)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(loc); err == nil && fi.Mode().IsRegular() {
			return loc, nil
		}
	}
	return "", fmt.Errorf("%w: no %s in the runfiles", ErrNotBuilt, rel)
}

// Load returns the bytes of the named metallib (Path, then the file's contents).
func Load(name string) ([]byte, error) {
	p, err := Path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("metallib: %w", err)
	}
	return b, nil
}
