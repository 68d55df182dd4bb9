package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, checks, prints the
// report to stdout and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("darwintypes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	goos := fs.String("goos", "darwin", "target `GOOS`")
	goarch := fs.String("goarch", "arm64", "target `GOARCH`")
	tags := fs.String("tags", "", "comma-separated extra build `tags`")
	verbose := fs.Bool("v", false, "list every package checked")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := Options{GOOS: *goos, GOARCH: *goarch, Patterns: fs.Args()}
	if *tags != "" {
		opts.Tags = strings.Split(*tags, ",")
	}

	report, err := Check(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	printReport(stdout, report, *verbose)
	if report.Failed() {
		return 1
	}
	return 0
}

func printReport(w io.Writer, r Report, verbose bool) {
	wd, _ := os.Getwd()
	var cgoPkgs []string
	seen := map[string]bool{}
	for _, p := range r.Packages {
		// A package and its test variant ("p [p.test]") share their cgo files.
		base, _, _ := strings.Cut(p.ImportPath, " ")
		if len(p.CgoFiles) > 0 && !seen[base] {
			seen[base] = true
			cgoPkgs = append(cgoPkgs, fmt.Sprintf("%s (%s)", base, strings.Join(p.CgoFiles, ", ")))
		}
		if verbose || len(p.Errors) > 0 {
			fmt.Fprintf(w, "%s: %d error(s)\n", p.ImportPath, len(p.Errors))
		}
		for _, e := range p.Errors {
			fmt.Fprintf(w, "\t%s\n", relative(wd, e))
		}
	}
	for _, p := range cgoPkgs {
		fmt.Fprintf(w, "cgo files checked with C names unresolved: %s\n", p)
	}
	for _, p := range r.Excluded {
		fmt.Fprintf(w, "no files for %s: %s\n", r.Target, p)
	}
	fmt.Fprintf(w, "darwintypes: %s with cgo: %d package(s) of this module (%d with cgo files) and %d dependencies type-checked, %d error(s)\n",
		r.Target, len(r.Packages), len(cgoPkgs), r.Deps, r.ErrorCount())
}

// relative shortens an absolute file name at the start of msg to one
// relative to dir, when it lies below dir.
func relative(dir, msg string) string {
	if dir == "" || !strings.HasPrefix(msg, dir+string(filepath.Separator)) {
		return msg
	}
	return msg[len(dir)+1:]
}
