// Command mslemu-gen writes the emulator's kernel adapters (tools/mslemu/kgen_*_gen.cc
// and kernels_gen.cc) from the .metal files in native/msl and tools/mslemu/testkernels.
//
// Run it after adding, removing or changing a kernel or any .metal or .h file there:
//
//	go generate ./tools/mslemu
//
// (which runs `go run ./cmd/mslemu-gen` in tools/mslemu). It needs a C++ compiler ($CXX or
// g++) as the preprocessor. With -check it writes nothing and fails if the files on disk
// differ from what it would write.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/orchard-ml/orchard/tools/mslemu/internal/kgen"
)

func main() {
	root := flag.String("root", "", "repository root (default: the folder holding go.mod above the working directory)")
	check := flag.Bool("check", false, "write nothing; fail if the generated files are stale")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "mslemu-gen:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	if root == "" {
		r, err := findRoot()
		if err != nil {
			return err
		}
		root = r
	}
	files, err := kgen.Generate(kgen.Options{Root: root})
	if err != nil {
		return err
	}
	stale, err := kgen.Diff(root, files)
	if err != nil {
		return err
	}
	if check {
		if len(stale) > 0 {
			return fmt.Errorf("stale generated files %v: run go generate ./tools/mslemu", stale)
		}
		return nil
	}
	out := filepath.Join(root, filepath.FromSlash(kgen.OutDir))
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(out, n)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[n]) {
			continue
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if kgen.GeneratedName(e.Name()) && files[e.Name()] == nil {
			if err := os.Remove(filepath.Join(out, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; use -root")
		}
		dir = parent
	}
}
