package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options says what to list and for which target.
type Options struct {
	GOOS     string   // target system, e.g. "darwin"
	GOARCH   string   // target architecture, e.g. "arm64"
	Tags     []string // extra build tags
	Dir      string   // directory to run `go list` in; "" is the current one
	Patterns []string // package patterns; none means "./..."
	GoCmd    string   // go command; "" is "go"
}

// PackageResult is the outcome for one package of the main module.
type PackageResult struct {
	ImportPath string   // as go list names it; test variants carry a " [x.test]" suffix
	CgoFiles   []string // files that import "C" for this target
	Errors     []string // listing, parse and type errors, "file:line:col: message"
}

// Report is the outcome of one run.
type Report struct {
	Target   string          // "goos/goarch"
	Packages []PackageResult // main-module packages, in dependency order
	Excluded []string        // main-module packages with no files for the target
	Deps     int             // packages outside the main module that were checked to get there
}

// Failed reports whether any main-module package has an error.
func (r Report) Failed() bool {
	for _, p := range r.Packages {
		if len(p.Errors) > 0 {
			return true
		}
	}
	return false
}

// ErrorCount is the number of errors over all main-module packages.
func (r Report) ErrorCount() int {
	n := 0
	for _, p := range r.Packages {
		n += len(p.Errors)
	}
	return n
}

// listedPackage holds the fields of `go list -json` that the check uses.
type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	ImportMap  map[string]string
	ForTest    string
	Module     *struct {
		Path      string
		Main      bool
		GoVersion string
	}
	Error *struct {
		Err string
	}
}

func (p *listedPackage) inMainModule() bool { return p.Module != nil && p.Module.Main }

// isTestMain reports whether p is the generated main package of a test binary,
// whose source lives in the build cache and is not worth checking.
func (p *listedPackage) isTestMain() bool {
	return p.Name == "main" && strings.HasSuffix(p.ImportPath, ".test")
}

// Check lists the packages for the target and type-checks them, cgo files
// included, in dependency order.
func Check(opts Options) (Report, error) {
	if opts.GOOS == "" || opts.GOARCH == "" {
		return Report{}, errors.New("darwintypes: GOOS and GOARCH must be set")
	}
	report := Report{Target: opts.GOOS + "/" + opts.GOARCH}
	sizes := types.SizesFor("gc", opts.GOARCH)
	if sizes == nil {
		return report, fmt.Errorf("darwintypes: unknown GOARCH %q", opts.GOARCH)
	}
	pkgs, err := list(opts)
	if err != nil {
		return report, err
	}

	fset := token.NewFileSet()
	checked := map[string]*types.Package{"unsafe": types.Unsafe}
	for _, p := range pkgs {
		if p.ImportPath == "unsafe" || p.isTestMain() {
			continue
		}
		own := p.inMainModule()
		if !own {
			report.Deps++
		}
		result := PackageResult{ImportPath: p.ImportPath, CgoFiles: p.CgoFiles}
		addErr := func(msg string) {
			if own {
				result.Errors = append(result.Errors, msg)
			}
		}
		if p.Error != nil {
			if own && len(p.GoFiles)+len(p.CgoFiles) == 0 && strings.Contains(p.Error.Err, "build constraints exclude all Go files") {
				// Nothing to build for this target: not an error unless something
				// imports it, and then the importer's check fails.
				report.Excluded = append(report.Excluded, p.ImportPath)
				continue
			}
			addErr(strings.TrimSpace(p.Error.Err))
		}

		files := parseFiles(fset, p, addErr)
		conf := types.Config{
			GoVersion: goVersion(p),
			// The point of the tool: `import "C"` gives an empty package and
			// selectors on it are not reported, so cgo files type-check without cgo.
			FakeImportC:      len(p.CgoFiles) > 0,
			IgnoreFuncBodies: !own,
			Importer:         importer{pkg: p, checked: checked},
			Sizes:            sizes,
			Error:            func(err error) { addErr(err.Error()) },
		}
		tpkg, _ := conf.Check(p.ImportPath, fset, files, nil) // errors went to conf.Error
		checked[p.ImportPath] = tpkg
		if own {
			report.Packages = append(report.Packages, result)
		}
	}
	return report, nil
}

// list runs `go list -deps -test` for the target; its output is in dependency
// order, dependencies first.
func list(opts Options) ([]*listedPackage, error) {
	goCmd := opts.GoCmd
	if goCmd == "" {
		goCmd = "go"
	}
	args := []string{"list", "-e", "-deps", "-test",
		"-json=ImportPath,Name,Dir,GoFiles,CgoFiles,ImportMap,ForTest,Module,Error"}
	if len(opts.Tags) > 0 {
		args = append(args, "-tags", strings.Join(opts.Tags, ","))
	}
	patterns := opts.Patterns
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	args = append(args, patterns...)

	cmd := exec.Command(goCmd, args...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), "GOOS="+opts.GOOS, "GOARCH="+opts.GOARCH, "CGO_ENABLED=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("darwintypes: go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}

	var pkgs []*listedPackage
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("darwintypes: decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// parseFiles parses every Go file the target build compiles for p, cgo files
// included. Parse errors are passed to addErr; files that fail to parse are
// still returned in part when the parser recovered something.
func parseFiles(fset *token.FileSet, p *listedPackage, addErr func(string)) []*ast.File {
	mode := parser.ParseComments | parser.SkipObjectResolution
	var files []*ast.File
	for _, name := range append(append([]string(nil), p.GoFiles...), p.CgoFiles...) {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Dir, name)
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			addErr(err.Error())
		}
		if f != nil {
			files = append(files, f)
		}
	}
	return files
}

// goVersion is the language version the package's module asks for, in the
// form go/types wants ("go1.26"); "" (the newest) for the standard library.
func goVersion(p *listedPackage) string {
	if p.Module == nil || p.Module.GoVersion == "" {
		return ""
	}
	return "go" + p.Module.GoVersion
}

// importer resolves the imports of one package to packages checked earlier,
// through that package's import map (vendoring, test variants).
type importer struct {
	pkg     *listedPackage
	checked map[string]*types.Package
}

func (im importer) Import(path string) (*types.Package, error) {
	if id, ok := im.pkg.ImportMap[path]; ok {
		path = id
	}
	if tp, ok := im.checked[path]; ok && tp != nil {
		return tp, nil
	}
	return nil, fmt.Errorf("package %q was not listed before %q", path, im.pkg.ImportPath)
}
