package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bazelbuild/buildtools/build"
)

// ruleRepo names a label whose repository the root module cannot see.
const ruleRepo = "repo-not-visible"

// visibleRepos reads the root MODULE.bazel and returns the apparent repository names a
// BUILD file of the root module may use: the module's own name, every bazel_dep (its
// repo_name when given) and every name a use_repo call imports (positional, or the key of
// a keyword argument). A missing MODULE.bazel gives nil: there is nothing to check against.
func visibleRepos(root string) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(root, "MODULE.bazel"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := build.ParseModule("MODULE.bazel", data)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{"": true, "@": true} // @//x and @@//x name the main repository
	for _, r := range f.Rules("") {
		switch r.Kind() {
		case "module", "bazel_dep":
			if name := r.AttrString("repo_name"); name != "" {
				seen[name] = true
			} else if name := r.AttrString("name"); name != "" {
				seen[name] = true
			}
		case "use_repo":
			for i, arg := range r.Call.List {
				switch a := arg.(type) {
				case *build.StringExpr:
					if i > 0 { // the first argument is the extension proxy
						seen[a.Value] = true
					}
				case *build.AssignExpr:
					if id, ok := a.LHS.(*build.Ident); ok {
						seen[id.Name] = true
					}
				}
			}
		}
	}
	return seen, nil
}

// repoOf returns the apparent repository name of an external label ("@name//..." gives
// "name", "@@//..." gives "@"), and false for a label of this repository.
func repoOf(label string) (string, bool) {
	rest, ok := strings.CutPrefix(label, "@")
	if !ok {
		return "", false
	}
	name, _, found := strings.Cut(rest, "//")
	if !found {
		name = rest // "@repo" is short for "@repo//:repo"
	}
	return name, true
}

// repos reports every label in a BUILD file (rule attributes and load statements) whose
// repository the root MODULE.bazel does not make visible: Bazel stops with "no repo
// visible as '@name'" there, which the go tool never notices. A Go module added to go.mod
// needs a use_repo entry in MODULE.bazel before a BUILD file may name it.
func (c *checker) repos() error {
	seen, err := visibleRepos(c.repo.root)
	if err != nil {
		return fmt.Errorf("MODULE.bazel: %w", err)
	}
	if seen == nil {
		return nil
	}
	report := func(pos, where, label string) {
		name, ext := repoOf(label)
		if ext && !seen[name] {
			c.add(pos, ruleRepo, "%s names %s, but MODULE.bazel makes no repository @%s visible (add it to use_repo or bazel_dep)", where, label, name)
		}
	}
	dirs := make([]string, 0, len(c.repo.pkgs))
	for d := range c.repo.pkgs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		p := c.repo.pkgs[d]
		for _, st := range p.file.Stmt {
			if ld, ok := st.(*build.LoadStmt); ok && ld.Module != nil {
				start, _ := ld.Span()
				report(fmt.Sprintf("%s:%d", p.build, start.Line), "load", ld.Module.Value)
			}
		}
		for _, t := range p.rules {
			keys := make([]string, 0, len(t.attrs))
			for k := range t.attrs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				for _, v := range t.attrs[k] {
					report(t.pos(), t.label()+" "+k, v)
				}
			}
		}
	}
	return nil
}
