package main

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bazelbuild/buildtools/build"
)

// repo is a source tree with its BUILD files parsed.
type repo struct {
	root     string              // directory on disk
	pkgs     map[string]*pkg     // by package path ("" for the root package)
	excluded map[string]bool     // repository paths set aside by `# gazelle:exclude`
	targets  map[string]*target  // by label "//pkg:name"
	files    map[string]struct{} // every regular file, by repository path
}

// pkg is one directory with a BUILD or BUILD.bazel file.
type pkg struct {
	dir   string // repository path, "" for the root
	build string // repository path of the BUILD file
	file  *build.File
	rules []*target
}

// target is one rule of a BUILD file, with its attributes evaluated (every select branch
// taken at once).
type target struct {
	pkg   *pkg
	kind  string
	name  string
	line  int
	attrs map[string][]string // list and string attributes, labels as written
}

func (t *target) label() string { return "//" + t.pkg.dir + ":" + t.name }

// pos is where the rule starts, for messages.
func (t *target) pos() string { return fmt.Sprintf("%s:%d", t.pkg.build, t.line) }

// loadRepo walks root and parses every BUILD file. Nested Bazel modules (a directory with
// its own MODULE.bazel), .git, node_modules, bazel-* output links and the directories
// listed in .bazelignore are skipped.
func loadRepo(root string) (*repo, error) {
	r := &repo{root: root, pkgs: map[string]*pkg{}, excluded: map[string]bool{},
		targets: map[string]*target{}, files: map[string]struct{}{}}
	ignored := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(root, ".bazelignore")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				ignored[path.Clean(line)] = true
			}
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		if d.IsDir() {
			name := d.Name()
			if rel != "" && (name == ".git" || name == "node_modules" || strings.HasPrefix(name, "bazel-") || ignored[rel]) {
				return filepath.SkipDir
			}
			if rel != "" {
				if _, err := os.Stat(filepath.Join(p, "MODULE.bazel")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		r.files[rel] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for f := range r.files {
		base := path.Base(f)
		if base != "BUILD" && base != "BUILD.bazel" {
			continue
		}
		dir := path.Dir(f)
		if dir == "." {
			dir = ""
		}
		if old, ok := r.pkgs[dir]; ok && path.Base(old.build) == "BUILD.bazel" {
			continue // BUILD.bazel wins over BUILD, as in Bazel
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		bf, err := build.ParseBuild(f, data)
		if err != nil {
			return nil, err
		}
		r.pkgs[dir] = &pkg{dir: dir, build: f, file: bf}
		for _, line := range strings.Split(string(data), "\n") {
			if m := excludeRE.FindStringSubmatch(line); m != nil {
				r.excluded[path.Join(dir, m[1])] = true
			}
		}
	}
	for _, p := range r.pkgs {
		for _, rule := range p.file.Rules("") {
			if rule.Name() == "" {
				continue
			}
			start, _ := rule.Call.Span()
			t := &target{pkg: p, kind: rule.Kind(), name: rule.Name(), line: start.Line, attrs: map[string][]string{}}
			for _, key := range rule.AttrKeys() {
				vals, err := r.eval(p, rule.Attr(key))
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s attribute %s: %w", p.build, start.Line, rule.Name(), key, err)
				}
				t.attrs[key] = vals
			}
			p.rules = append(p.rules, t)
			r.targets[t.label()] = t
		}
	}
	return r, nil
}

var excludeRE = regexp.MustCompile(`^\s*#\s*gazelle:exclude\s+(\S+)`)

// eval returns the strings an attribute expression can hold: list and string literals,
// select() (every branch), + concatenation, and glob() over the package's files.
// Other expressions (booleans, numbers, variables) give no strings.
func (r *repo) eval(p *pkg, e build.Expr) ([]string, error) {
	switch x := e.(type) {
	case *build.StringExpr:
		return []string{x.Value}, nil
	case *build.ListExpr:
		var out []string
		for _, el := range x.List {
			v, err := r.eval(p, el)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	case *build.BinaryExpr:
		if x.Op != "+" {
			return nil, nil
		}
		a, err := r.eval(p, x.X)
		if err != nil {
			return nil, err
		}
		b, err := r.eval(p, x.Y)
		if err != nil {
			return nil, err
		}
		return append(a, b...), nil
	case *build.CallExpr:
		fn, _ := x.X.(*build.Ident)
		if fn == nil {
			return nil, nil
		}
		switch fn.Name {
		case "select":
			if len(x.List) == 0 {
				return nil, fmt.Errorf("select() without a dict")
			}
			d, ok := x.List[0].(*build.DictExpr)
			if !ok {
				return nil, fmt.Errorf("select() argument is not a dict literal")
			}
			var out []string
			for _, kv := range d.List {
				v, err := r.eval(p, kv.Value)
				if err != nil {
					return nil, err
				}
				out = append(out, v...)
			}
			return out, nil
		case "glob":
			return r.glob(p, x)
		}
	}
	return nil, nil
}

// glob evaluates glob(include, exclude = [...]) over the files of package p (not of its
// subpackages), giving package-relative names.
func (r *repo) glob(p *pkg, call *build.CallExpr) ([]string, error) {
	var include, exclude []string
	for i, arg := range call.List {
		if as, ok := arg.(*build.AssignExpr); ok {
			id, _ := as.LHS.(*build.Ident)
			v, err := r.eval(p, as.RHS)
			if err != nil {
				return nil, err
			}
			switch {
			case id != nil && id.Name == "exclude":
				exclude = append(exclude, v...)
			case id != nil && id.Name == "include":
				include = append(include, v...)
			}
			continue
		}
		if i == 0 {
			v, err := r.eval(p, arg)
			if err != nil {
				return nil, err
			}
			include = append(include, v...)
		}
	}
	inc, err := globRegexps(include)
	if err != nil {
		return nil, err
	}
	exc, err := globRegexps(exclude)
	if err != nil {
		return nil, err
	}
	var out []string
	for f := range r.files {
		rel, ok := r.packageRel(p.dir, f)
		if !ok || r.owner(f) != p.dir {
			continue
		}
		if matchAny(inc, rel) && !matchAny(exc, rel) {
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out, nil
}

func globRegexps(patterns []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, pat := range patterns {
		var b strings.Builder
		b.WriteString("^")
		segs := strings.Split(pat, "/")
		for i, seg := range segs {
			last := i == len(segs)-1
			if seg == "**" {
				if last {
					b.WriteString(".*")
				} else {
					b.WriteString("(?:[^/]+/)*")
				}
				continue
			}
			for _, c := range seg {
				switch c {
				case '*':
					b.WriteString("[^/]*")
				case '?':
					b.WriteString("[^/]")
				default:
					b.WriteString(regexp.QuoteMeta(string(c)))
				}
			}
			if !last {
				b.WriteString("/")
			}
		}
		b.WriteString("$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, fmt.Errorf("glob pattern %q: %w", pat, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// packageRel returns f relative to package directory dir, if f is under it.
func (r *repo) packageRel(dir, f string) (string, bool) {
	if dir == "" {
		return f, true
	}
	rest, ok := strings.CutPrefix(f, dir+"/")
	return rest, ok
}

// owner returns the package that a repository path belongs to: the nearest enclosing
// directory with a BUILD file, or "-" if none.
func (r *repo) owner(f string) string {
	dir := path.Dir(f)
	for {
		if dir == "." {
			dir = ""
		}
		if _, ok := r.pkgs[dir]; ok {
			return dir
		}
		if dir == "" {
			return "-"
		}
		dir = path.Dir(dir)
	}
}

// resolveLabel turns a label written in package p into "//pkg:name"; external labels
// (starting with @) give "".
func resolveLabel(p *pkg, l string) string {
	switch {
	case strings.HasPrefix(l, "@"):
		return ""
	case strings.HasPrefix(l, "//"):
		rest := l[2:]
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			return "//" + rest
		}
		return "//" + rest + ":" + path.Base(rest)
	case strings.HasPrefix(l, ":"):
		return "//" + p.dir + l
	default:
		return "//" + p.dir + ":" + l
	}
}

// files returns the repository paths that an attribute of t names: files of the package
// directly, and the srcs of filegroups (and hdrs/textual_hdrs of other rules) it names.
func (r *repo) filesOf(t *target, attr string) []string {
	var out []string
	for _, l := range t.attrs[attr] {
		full := resolveLabel(t.pkg, l)
		if full == "" {
			continue
		}
		pkgDir, name, _ := strings.Cut(strings.TrimPrefix(full, "//"), ":")
		f := path.Join(pkgDir, name)
		if _, ok := r.files[f]; ok {
			out = append(out, f)
			continue
		}
		if dep, ok := r.targets[full]; ok && dep != t {
			for _, a := range []string{"srcs", "hdrs", "textual_hdrs"} {
				out = append(out, r.filesOf(dep, a)...)
			}
		}
	}
	return out
}
