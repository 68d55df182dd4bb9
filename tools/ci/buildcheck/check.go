package main

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bazelbuild/buildtools/build"
)

// Rule names, as printed in findings.
const (
	ruleUndeclared = "undeclared-include"
	ruleClimbs     = "include-climbs"
	ruleDirMissing = "include-dir-missing"
	ruleAppleFlag  = "apple-flag"
	ruleUnlisted   = "file-not-in-target"
)

// Finding is one violation: where, which rule, and what to do.
type Finding struct {
	Pos  string // file:line
	Rule string
	Msg  string
}

func (f Finding) String() string { return fmt.Sprintf("%s: %s: %s", f.Pos, f.Rule, f.Msg) }

// Check loads the repository at root and returns every finding, sorted.
func Check(root string) ([]Finding, error) {
	r, err := loadRepo(root)
	if err != nil {
		return nil, err
	}
	c := &checker{repo: r, seen: map[string]bool{}}
	labels := make([]string, 0, len(r.targets))
	for l := range r.targets {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		if err := c.target(r.targets[l]); err != nil {
			return nil, err
		}
	}
	if err := c.unlisted(); err != nil {
		return nil, err
	}
	if err := c.repos(); err != nil {
		return nil, err
	}
	sort.Slice(c.out, func(i, j int) bool {
		if c.out[i].Pos != c.out[j].Pos {
			return c.out[i].Pos < c.out[j].Pos
		}
		return c.out[i].Msg < c.out[j].Msg
	})
	return c.out, nil
}

type checker struct {
	repo *repo
	out  []Finding
	seen map[string]bool // de-duplicates findings
}

func (c *checker) add(pos, rule, format string, args ...any) {
	f := Finding{Pos: pos, Rule: rule, Msg: fmt.Sprintf(format, args...)}
	if key := f.String(); !c.seen[key] {
		c.seen[key] = true
		c.out = append(c.out, f)
	}
}

// Source extensions: compiled C-family files and headers.
var (
	compiledExts = map[string]bool{".c": true, ".cc": true, ".cpp": true, ".cxx": true, ".m": true, ".mm": true, ".S": true}
	headerExts   = map[string]bool{".h": true, ".hh": true, ".hpp": true, ".hxx": true, ".inc": true, ".inl": true}
	goRules      = map[string]bool{"go_library": true, "go_test": true, "go_binary": true}
	ccRules      = map[string]bool{"cc_library": true, "cc_binary": true, "cc_test": true, "objc_library": true}
	optAttrs     = []string{"copts", "cppopts", "cxxopts", "objcopts", "conlyopts"}
	linkAttrs    = []string{"clinkopts", "linkopts"}
)

// target checks one rule: its flags and, for a cgo Go rule or a C-family rule, every
// include of its sources.
func (c *checker) target(t *target) error {
	isGo := goRules[t.kind]
	isCC := ccRules[t.kind]
	if !isGo && !isCC {
		return nil
	}
	for _, a := range append(append([]string{}, optAttrs...), linkAttrs...) {
		for _, tok := range fieldsOf(t.attrs[a]) {
			if why := appleFlag(tok); why != "" {
				c.add(t.pos(), ruleAppleFlag, "%s %s carries %q: %s", t.label(), a, tok, why)
			}
		}
	}
	inc := c.includeDirs(t)
	for _, d := range inc.dirs {
		if d.dir == "." || strings.HasPrefix(d.dir, "bazel-out/") || strings.HasPrefix(d.dir, "external/") || strings.HasPrefix(d.dir, "$(") {
			continue
		}
		if strings.HasPrefix(d.dir, "/") {
			c.add(t.pos(), ruleClimbs, "%s %s %q is an absolute path: not an input Bazel can stage", t.label(), d.flag, d.dir)
			continue
		}
		if !c.isDir(d.dir) {
			c.add(t.pos(), ruleDirMissing, "%s %s %q is not a directory of the repository (a #cgo path that Gazelle joined twice?)", t.label(), d.flag, d.dir)
		}
		if !within(d.dir, t.pkg.dir) {
			c.add(t.pos(), ruleClimbs, "%s %s %q is outside package //%s: declare the headers in a cc_library there and put it in cdeps/deps", t.label(), d.flag, d.dir, t.pkg.dir)
		}
	}
	if isGo && !hasValue(t, "cgo", "True") {
		return nil
	}
	declared := c.declared(t)
	srcs := c.repo.filesOf(t, "srcs")
	if isCC {
		srcs = append(srcs, c.repo.filesOf(t, "hdrs")...)
		srcs = append(srcs, c.repo.filesOf(t, "non_arc_srcs")...)
	}
	goDirs := []string{t.pkg.dir}
	for _, f := range srcs {
		ext := path.Ext(f)
		switch {
		case ext == ".go":
			pre, err := c.preamble(f)
			if err != nil {
				return err
			}
			if pre == nil {
				continue
			}
			goDirs = append(goDirs, c.cgoFlags(t, f, pre)...)
		case compiledExts[ext] || headerExts[ext]:
		default:
			continue
		}
	}
	for _, f := range srcs {
		ext := path.Ext(f)
		if ext == ".go" {
			pre, err := c.preamble(f)
			if err != nil {
				return err
			}
			if pre != nil {
				c.includes(t, f, pre.startLine, pre.text, true, declared, inc, goDirs, map[string]bool{})
			}
			continue
		}
		if !compiledExts[ext] && !headerExts[ext] {
			continue
		}
		text, err := os.ReadFile(filepath.Join(c.repo.root, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		c.includes(t, f, 1, string(text), false, declared, inc, goDirs, map[string]bool{})
	}
	return nil
}

func hasValue(t *target, attr, want string) bool {
	for _, v := range t.attrs[attr] {
		if v == want {
			return true
		}
	}
	// cgo = True is an identifier, not a string: look at the raw attribute.
	for _, r := range t.pkg.file.Rules("") {
		if r.Name() == t.name {
			id, ok := r.Attr(attr).(*build.Ident)
			return ok && id.Name == want
		}
	}
	return false
}

// fieldsOf splits option strings on spaces, as rules_go splits copts.
func fieldsOf(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// appleFlag says why a compile or link flag conflicts with Apple's toolchain, or "".
func appleFlag(tok string) string {
	switch {
	case tok == "-Werror" || strings.HasPrefix(tok, "-Werror="):
		return "turns the driver's warnings about the flags Apple's toolchain adds (-Woverriding-option) into errors; put -Werror in CI's CGO_CFLAGS or a --copt instead"
	case strings.HasPrefix(tok, "-mmacosx-version-min") || strings.HasPrefix(tok, "-mmacos-version-min") ||
		strings.HasPrefix(tok, "-mios-version-min") || strings.HasPrefix(tok, "-miphoneos-version-min"):
		return "the deployment target conflicts with the versioned -target apple_support passes; set --macos_minimum_os in .bazelrc and MACOSX_DEPLOYMENT_TARGET for the go tool"
	case tok == "-target" || strings.HasPrefix(tok, "--target=") || tok == "-arch" || tok == "-isysroot":
		return "apple_support sets the target, architecture and SDK itself; a second value conflicts with it"
	}
	return ""
}

type incDir struct {
	flag string // -I, -iquote, -isystem, includes
	dir  string // repository path
}

// includeSet is the search path of one target in Bazel's layout.
type includeSet struct {
	dirs   []incDir
	quote  []string // searched for "x" after the including file's directory
	angled []string // searched for <x> and then for "x"
}

// includeDirs gathers the include directories Bazel would pass: the target's -I, -iquote
// and -isystem options (repository paths, as Gazelle writes them), rules_go's -iquote .,
// rules_go's -I <dir> of each source when a header is in srcs, and the `includes` of every
// cc_library reached through cdeps/deps.
func (c *checker) includeDirs(t *target) includeSet {
	var s includeSet
	s.quote = []string{"."}
	addDir := func(flag, dir string) {
		dir = path.Clean(dir)
		s.dirs = append(s.dirs, incDir{flag, dir})
		if flag == "-iquote" {
			s.quote = append(s.quote, dir)
		} else {
			s.angled = append(s.angled, dir)
		}
	}
	for _, a := range optAttrs {
		toks := fieldsOf(t.attrs[a])
		for i := 0; i < len(toks); i++ {
			for _, flag := range []string{"-I", "-iquote", "-isystem", "-idirafter"} {
				if !strings.HasPrefix(toks[i], flag) {
					continue
				}
				dir := strings.TrimPrefix(toks[i], flag)
				if dir == "" && i+1 < len(toks) {
					i++
					dir = toks[i]
				}
				if dir != "" {
					addDir(flag, dir)
				}
				break
			}
		}
	}
	if goRules[t.kind] {
		hasHdr := false
		srcs := c.repo.filesOf(t, "srcs")
		for _, f := range srcs {
			if headerExts[path.Ext(f)] {
				hasHdr = true
			}
		}
		if hasHdr {
			for _, f := range srcs {
				s.angled = append(s.angled, dirOf(f))
			}
		}
	}
	for _, dep := range c.ccDeps(t) {
		for _, inc := range dep.attrs["includes"] {
			addDir("includes", path.Join(dep.pkg.dir, inc))
		}
	}
	return s
}

// ccDeps returns the C-family targets reachable through cdeps (Go rules) or deps
// (C-family rules), transitively.
func (c *checker) ccDeps(t *target) []*target {
	var out []*target
	seen := map[string]bool{}
	var walk func(t *target, attr string)
	walk = func(t *target, attr string) {
		for _, l := range t.attrs[attr] {
			full := resolveLabel(t.pkg, l)
			dep, ok := c.repo.targets[full]
			if !ok || seen[full] || !ccRules[dep.kind] {
				continue
			}
			seen[full] = true
			out = append(out, dep)
			walk(dep, "deps")
		}
	}
	if goRules[t.kind] {
		walk(t, "cdeps")
	} else {
		walk(t, "deps")
	}
	return out
}

// declared is the set of files Bazel stages for the target's compile actions.
func (c *checker) declared(t *target) map[string]bool {
	d := map[string]bool{}
	for _, a := range []string{"srcs", "hdrs", "textual_hdrs", "embedsrcs", "non_arc_srcs"} {
		for _, f := range c.repo.filesOf(t, a) {
			d[f] = true
		}
	}
	for _, dep := range c.ccDeps(t) {
		for _, a := range []string{"hdrs", "textual_hdrs"} {
			for _, f := range c.repo.filesOf(dep, a) {
				d[f] = true
			}
		}
	}
	return d
}

type preamble struct {
	text      string
	startLine int
}

// preamble returns the cgo preamble of a Go file (the comment above `import "C"`), or nil.
func (c *checker) preamble(f string) (*preamble, error) {
	src, err := os.ReadFile(filepath.Join(c.repo.root, filepath.FromSlash(f)))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, f, src, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		return nil, err
	}
	for _, imp := range file.Imports {
		if imp.Path.Value != `"C"` {
			continue
		}
		cg := imp.Doc
		if cg == nil {
			// import "C" on its own: the comment group right above the declaration.
			for _, g := range file.Comments {
				if g.End() < imp.Pos() && fset.Position(g.End()).Line >= fset.Position(imp.Pos()).Line-1 {
					cg = g
				}
			}
		}
		if cg == nil {
			return &preamble{startLine: fset.Position(imp.Pos()).Line}, nil
		}
		start := fset.Position(cg.Pos())
		raw := string(src[start.Offset:fset.Position(cg.End()).Offset])
		var b strings.Builder
		for _, line := range strings.SplitAfter(raw, "\n") {
			t := strings.TrimLeft(line, " \t")
			switch {
			case strings.HasPrefix(t, "//"):
				b.WriteString(strings.TrimPrefix(t, "//"))
			default:
				b.WriteString(line)
			}
		}
		text := strings.Replace(b.String(), "/*", "  ", 1)
		if i := strings.LastIndex(text, "*/"); i >= 0 {
			text = text[:i] + "  " + text[i+2:]
		}
		return &preamble{text: text, startLine: start.Line}, nil
	}
	return nil, nil
}

var cgoLineRE = regexp.MustCompile(`^\s*#cgo\s+([^:]*?)\s*([A-Z]+):(.*)$`)

// cgoFlags checks the #cgo lines of a preamble and returns the include directories the
// go tool would search for them (repository paths).
func (c *checker) cgoFlags(t *target, f string, pre *preamble) []string {
	var dirs []string
	for i, line := range strings.Split(pre.text, "\n") {
		m := cgoLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pos := fmt.Sprintf("%s:%d", f, pre.startLine+i)
		toks := strings.Fields(m[3])
		for j := 0; j < len(toks); j++ {
			tok := toks[j]
			if why := appleFlag(tok); why != "" {
				c.add(pos, ruleAppleFlag, "#cgo %s carries %q: %s", m[2], tok, why)
			}
			for _, flag := range []string{"-I", "-iquote", "-isystem", "-idirafter"} {
				if !strings.HasPrefix(tok, flag) {
					continue
				}
				dir := strings.TrimPrefix(tok, flag)
				if dir == "" && j+1 < len(toks) {
					j++
					dir = toks[j]
				}
				switch {
				case dir == "":
				case strings.Contains(dir, "${SRCDIR}"):
					c.add(pos, ruleClimbs, "#cgo %s%s: Gazelle expands ${SRCDIR} to the package path and joins the package path again; write the directory relative to the package", flag, dir)
					dirs = append(dirs, path.Clean(strings.ReplaceAll(dir, "${SRCDIR}", t.pkg.dir)))
				case strings.HasPrefix(dir, "/"):
					c.add(pos, ruleClimbs, "#cgo %s%s is an absolute path: not an input Bazel can stage", flag, dir)
				default:
					full := path.Join(t.pkg.dir, dir)
					if strings.HasPrefix(full, "../") || full == ".." {
						c.add(pos, ruleClimbs, "#cgo %s%s leaves the repository", flag, dir)
						continue
					}
					if full != "." && !within(full, t.pkg.dir) {
						c.add(pos, ruleClimbs, "#cgo %s%s is outside the package and is not the repository root: declare the headers in a cc_library and put it in cdeps", flag, dir)
					}
					dirs = append(dirs, full)
				}
				break
			}
		}
	}
	return dirs
}

var (
	includeRE    = regexp.MustCompile(`^\s*#\s*(?:include|import|include_next)\s*([<"])([^>"]+)[>"]`)
	hasIncludeRE = regexp.MustCompile(`__has_include(?:_next)?\s*\(\s*([<"])([^>"]+)[>"]\s*\)`)
)

// includes checks every include of one file (a source, a header reached from it, or a
// cgo preamble) and follows the ones that resolve to declared files of the repository.
func (c *checker) includes(t *target, f string, firstLine int, text string, isPreamble bool,
	declared map[string]bool, inc includeSet, goDirs []string, visited map[string]bool) {
	if visited[f] && !isPreamble {
		return
	}
	visited[f] = true
	for i, line := range strings.Split(stripComments(text), "\n") {
		var found [][]string
		if m := includeRE.FindStringSubmatch(line); m != nil {
			found = append(found, m)
		}
		found = append(found, hasIncludeRE.FindAllStringSubmatch(line, -1)...)
		for _, m := range found {
			quoted, name := m[1] == `"`, m[2]
			pos := fmt.Sprintf("%s:%d", f, firstLine+i)
			c.one(t, f, pos, quoted, name, isPreamble, declared, inc, goDirs, visited)
		}
	}
}

func (c *checker) one(t *target, f, pos string, quoted bool, name string, isPreamble bool,
	declared map[string]bool, inc includeSet, goDirs []string, visited map[string]bool) {
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			c.add(pos, ruleClimbs, "%s includes %q: a \"..\" path reaches outside the package; include it by its repository path from a cc_library in cdeps/deps", t.label(), name)
			break
		}
	}
	if strings.HasPrefix(name, "/") {
		c.add(pos, ruleUndeclared, "%s includes the absolute path %q, which Bazel does not stage", t.label(), name)
		return
	}
	var search []string
	if quoted {
		if !isPreamble {
			search = append(search, dirOf(f)) // the including file's directory
		}
		search = append(search, inc.quote...) // rules_go runs cgo from the execution root
	}
	search = append(search, inc.angled...)
	var undeclared string
	for _, d := range search {
		cand := path.Join(d, name)
		if strings.HasPrefix(cand, "../") || cand == ".." {
			continue // outside the execution root
		}
		if declared[cand] {
			c.follow(t, cand, declared, inc, goDirs, visited)
			return
		}
		if _, ok := c.repo.files[cand]; ok && undeclared == "" {
			undeclared = cand
		}
	}
	if undeclared != "" {
		c.add(pos, ruleUndeclared, "%s includes %q, found at %s, which is not a declared input of the target (srcs, hdrs, embedsrcs or a cdeps/deps cc_library's hdrs/textual_hdrs)", t.label(), name, undeclared)
		return
	}
	// Not found in Bazel's layout: does the go tool find it (the file's or package's
	// directory, or a #cgo -I directory)?
	var goSearch []string
	if quoted && !isPreamble {
		goSearch = append(goSearch, dirOf(f))
	}
	goSearch = append(goSearch, goDirs...)
	for _, d := range goSearch {
		cand := path.Join(d, name)
		if _, ok := c.repo.files[cand]; ok {
			c.add(pos, ruleUndeclared, "%s includes %q, which resolves to %s only in the go tool's layout (the package directory or a #cgo -I directory); under Bazel it is not on the include path or not an input", t.label(), name, cand)
			return
		}
	}
	// Otherwise a system or toolchain header.
}

func (c *checker) follow(t *target, f string, declared map[string]bool, inc includeSet, goDirs []string, visited map[string]bool) {
	if visited[f] {
		return
	}
	text, err := os.ReadFile(filepath.Join(c.repo.root, filepath.FromSlash(f)))
	if err != nil {
		return
	}
	c.includes(t, f, 1, string(text), false, declared, inc, goDirs, visited)
}

// stripComments blanks C comments, keeping line breaks so that line numbers hold.
func stripComments(s string) string {
	var b strings.Builder
	inBlock, inLine, inStr := false, false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inBlock:
			if ch == '*' && i+1 < len(s) && s[i+1] == '/' {
				inBlock = false
				i++
				b.WriteString("  ")
				continue
			}
			if ch == '\n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case inLine:
			if ch == '\n' {
				inLine = false
				b.WriteByte('\n')
			}
		case inStr != 0:
			b.WriteByte(ch)
			if ch == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			} else if ch == inStr || ch == '\n' {
				inStr = 0
			}
		default:
			if ch == '/' && i+1 < len(s) && s[i+1] == '*' {
				inBlock = true
				i++
				b.WriteString("  ")
				continue
			}
			if ch == '/' && i+1 < len(s) && s[i+1] == '/' {
				inLine = true
				i++
				continue
			}
			if ch == '"' {
				inStr = ch
			}
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// unlisted reports Go and C-family files of a package that no rule lists.
func (c *checker) unlisted() error {
	listed := map[string]bool{}
	for _, t := range c.repo.targets {
		for a := range t.attrs {
			for _, f := range c.repo.filesOf(t, a) {
				listed[f] = true
			}
		}
	}
	var files []string
	for f := range c.repo.files {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		ext := path.Ext(f)
		if ext != ".go" && !compiledExts[ext] {
			continue
		}
		dir := dirOf(f)
		if _, ok := c.repo.pkgs[dir]; !ok || listed[f] || c.excludedPath(f) {
			continue
		}
		if ext == ".go" {
			ignored, err := c.ignoredGo(f)
			if err != nil {
				return err
			}
			if ignored {
				continue
			}
		}
		c.add(f+":1", ruleUnlisted, "no rule of %s lists %s; if a build tag hides it from Gazelle, add `# gazelle:build_tags <tag>` to the root BUILD.bazel", c.repo.pkgs[dir].build, path.Base(f))
	}
	return nil
}

func (c *checker) excludedPath(f string) bool {
	for p := f; p != "." && p != ""; p = path.Dir(p) {
		if c.repo.excluded[p] {
			return true
		}
	}
	for _, seg := range strings.Split(f, "/") {
		if seg == "testdata" {
			return true
		}
	}
	return false
}

var ignoreTagRE = regexp.MustCompile(`^//go:build\s+.*\bignore\b`)

func (c *checker) ignoredGo(f string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.repo.root, filepath.FromSlash(f)))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "package ") {
			break
		}
		if ignoreTagRE.MatchString(line) {
			return true, nil
		}
	}
	return false, nil
}

func (c *checker) isDir(d string) bool {
	fi, err := os.Stat(filepath.Join(c.repo.root, filepath.FromSlash(d)))
	return err == nil && fi.IsDir()
}

// within reports whether repository path p is dir or below it.
func within(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

func dirOf(f string) string {
	d := path.Dir(f)
	if d == "." {
		return ""
	}
	return d
}
