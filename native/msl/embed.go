package msl

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Sources holds every .metal file and every header they include, at the top level.
//
//go:embed *.metal *.h
var Sources embed.FS

// Files returns the names of the .metal files, sorted.
func Files() []string {
	names, _ := fs.Glob(Sources, "*.metal")
	sort.Strings(names)
	return names
}

// Source returns the named file ready to compile on its own (newLibraryWithSource): every
// line `#include "x.h"` naming a header of this package is replaced by that header's
// text, recursively, each header at most once (they all have include guards). System
// includes such as <metal_stdlib> stay as they are.
func Source(name string) (string, error) {
	var b strings.Builder
	if err := inline(&b, name, map[string]bool{}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func inline(b *strings.Builder, name string, done map[string]bool) error {
	if done[name] {
		return nil
	}
	done[name] = true
	text, err := fs.ReadFile(Sources, name)
	if err != nil {
		return fmt.Errorf("msl: %w", err)
	}
	for _, line := range strings.SplitAfter(string(text), "\n") {
		inc, ok := localInclude(line)
		if !ok {
			b.WriteString(line)
			continue
		}
		if _, err := fs.Stat(Sources, inc); err != nil {
			return fmt.Errorf("msl: %s includes %q, which is not in this package", name, inc)
		}
		fmt.Fprintf(b, "// begin %s (inlined)\n", inc)
		if err := inline(b, inc, done); err != nil {
			return err
		}
		fmt.Fprintf(b, "\n// end %s\n", inc)
	}
	return nil
}

// localInclude returns x for a line `#include "x"` (quotes, not angle brackets).
func localInclude(line string) (string, bool) {
	s := strings.TrimSpace(line)
	if !strings.HasPrefix(s, "#") {
		return "", false
	}
	s = strings.TrimSpace(strings.TrimPrefix(s, "#"))
	if !strings.HasPrefix(s, "include") {
		return "", false
	}
	s = strings.TrimSpace(strings.TrimPrefix(s, "include"))
	if len(s) < 2 || s[0] != '"' {
		return "", false
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return "", false
	}
	return path.Clean(s[1 : 1+end]), true
}
