// Package kgen writes the emulator's kernel adapters from the MSL sources.
//
// For every .metal file in native/msl and tools/mslemu/testkernels it runs the C
// preprocessor (so that instantiation macros are expanded), finds each kernel — an explicit
// template instantiation `template [[host_name("x")]] [[kernel]] void f<...>(params);` or a
// non-template `[[kernel]] void f(params) {...}` / `kernel void f(params) {...}` — and reads
// each parameter's [[buffer(i)]] or position attribute. It writes one C++ file per source
// (kgen_<dir>_<name>_gen.cc: the source included inside its own namespace, then an
// extern "C" adapter per kernel that binds buffer slots and positions to the parameters)
// and kernels_gen.cc (the table of kernels and the digest of the sources).
//
// It also lints the sources: a `threadgroup` pointer or reference (variable, parameter or
// cast) is rejected with its line, because the emulator's `threadgroup` is `static`.
package kgen

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// NativeDir holds the project's kernels; its Go package embeds them.
const NativeDir = "native/msl"

// NativeImport is the import path of NativeDir's Go package.
const NativeImport = "github.com/orchard-ml/orchard/native/msl"

// SourceDirs are the folders, relative to the repository root, whose .metal files are
// compiled into the emulator.
var SourceDirs = []string{NativeDir, "tools/mslemu/testkernels"}

// OutDir is where the generated files go, relative to the repository root.
const OutDir = "tools/mslemu"

// Positions maps each position attribute a kernel may use to the mslemu_thread field that
// holds it (a 3-element array or a scalar).
var Positions = map[string]string{
	"thread_position_in_threadgroup":   "t->thread_position_in_threadgroup",
	"threadgroup_position_in_grid":     "t->threadgroup_position_in_grid",
	"threads_per_threadgroup":          "t->threads_per_threadgroup",
	"dispatch_threads_per_threadgroup": "t->threads_per_threadgroup",
	"threadgroups_per_grid":            "t->threadgroups_per_grid",
	"thread_position_in_grid":          "t->thread_position_in_grid",
	"threads_per_grid":                 "t->threads_per_grid",
	"thread_index_in_threadgroup":      "t->thread_index_in_threadgroup",
	"thread_index_in_simdgroup":        "t->thread_index_in_simdgroup",
	"simdgroup_index_in_threadgroup":   "t->simdgroup_index_in_threadgroup",
	"simdgroups_per_threadgroup":       "t->simdgroups_per_threadgroup",
	"threads_per_simdgroup":            "t->threads_per_simdgroup",
	"thread_execution_width":           "t->threads_per_simdgroup",
	"thread_index_in_quadgroup":        "t->thread_index_in_simdgroup % 4",
	"quadgroup_index_in_threadgroup":   "t->thread_index_in_threadgroup / 4",
}

// Param is one kernel parameter.
type Param struct {
	Type     string // as written, e.g. "device const float *"
	Name     string
	Buffer   int    // the [[buffer(i)]] index, or -1
	Position string // the position attribute, or ""
}

// Writable reports whether a buffer parameter may be written: a pointer or reference
// without const and not in the constant address space.
func (p Param) Writable() bool {
	toks := strings.Fields(p.Type)
	for _, t := range toks {
		if t == "const" || t == "constant" {
			return false
		}
	}
	return true
}

// Kernel is one kernel the emulator can launch.
type Kernel struct {
	HostName string
	Call     string // the function to call: "f" or "f < float , 32 >"
	Params   []Param
	Source   string // repository path of the .metal file it comes from
	Line     string // file:line of the instantiation or definition
	// MaxThreads is the expression of [[max_total_threads_per_threadgroup(N)]] from the
	// instantiation or, failing that, the kernel's (template) definition; "" when absent.
	MaxThreads string
	// Template is the kernel template's name and TemplateArgs its arguments when the kernel
	// is an explicit instantiation; MaxThreads then may use the template's parameters.
	Template     string
	TemplateArgs string
	// Shardable: the instantiation disappears when MSLEMU_KGEN_SHARD is defined, so the
	// adapter may instantiate it implicitly in a translation unit of its own.
	Shardable bool
}

// FConst is a function constant: `constant T name [[function_constant(i)]];` at namespace
// scope.
type FConst struct {
	Name     string // qualified within the source, e.g. "attn::has_mask"
	Index    int
	Type     string
	Line     string
	Optional bool // the source tests it with is_function_constant_defined
}

// Template is a kernel template definition: its parameter list and launch hint.
type Template struct {
	Params     string // "typename T , int BQ"
	MaxThreads string
}

// File is what Parse finds in one preprocessed source.
type File struct {
	Kernels   []Kernel
	Constants []FConst
	Templates map[string]Template
}

// Options configures Generate.
type Options struct {
	Root string // repository root
	CXX  string // C++ compiler used as the preprocessor; "" means $CXX or g++
}

// Generate returns the generated files (name within OutDir -> contents).
func Generate(o Options) (map[string][]byte, error) {
	cxx := o.CXX
	if cxx == "" {
		cxx = os.Getenv("CXX")
	}
	if cxx == "" {
		cxx = "g++"
	}
	nativeVar, err := EmbedVar(filepath.Join(o.Root, filepath.FromSlash(NativeDir)))
	if err != nil {
		return nil, err
	}
	var sources []string // repository paths of .metal files
	var lintFiles []string
	for _, d := range SourceDirs {
		abs := filepath.Join(o.Root, filepath.FromSlash(d))
		entries, err := os.ReadDir(abs)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("kgen: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || !Included(e.Name()) {
				continue
			}
			rel := d + "/" + e.Name()
			lintFiles = append(lintFiles, rel)
			if strings.HasSuffix(e.Name(), ".metal") {
				sources = append(sources, rel)
			}
		}
	}
	sort.Strings(sources)
	sort.Strings(lintFiles)

	var problems []string
	for _, f := range lintFiles {
		b, err := os.ReadFile(filepath.Join(o.Root, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("kgen: %w", err)
		}
		problems = append(problems, Lint(f, b)...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("kgen: the sources break the emulator's rules (see tools/mslemu/doc.go):\n%s",
			strings.Join(problems, "\n"))
	}

	stub, err := os.MkdirTemp("", "mslemu-gen")
	if err != nil {
		return nil, fmt.Errorf("kgen: %w", err)
	}
	defer os.RemoveAll(stub)
	if err := writeStubs(filepath.Join(o.Root, OutDir, "shim"), stub); err != nil {
		return nil, err
	}

	out := map[string][]byte{}
	var all []Kernel
	seen := map[string]string{}
	for _, src := range sources {
		text, err := preprocess(cxx, stub, o.Root, src, false)
		if err != nil {
			return nil, fmt.Errorf("kgen: preprocessing %s: %w", src, err)
		}
		f, err := ParseFile(src, text)
		if err != nil {
			return nil, err
		}
		for _, k := range f.Kernels {
			if prev, ok := seen[k.HostName]; ok {
				return nil, fmt.Errorf("kgen: %s: kernel %q already defined at %s", k.Line, k.HostName, prev)
			}
			seen[k.HostName] = k.Line
		}
		if len(f.Kernels) == 0 {
			continue
		}
		// The instantiations that vanish under MSLEMU_KGEN_SHARD can be spread over
		// several translation units, each instantiating its share implicitly.
		sharded, err := preprocess(cxx, stub, o.Root, src, true)
		if err != nil {
			return nil, fmt.Errorf("kgen: preprocessing %s: %w", src, err)
		}
		g, err := ParseFile(src, sharded)
		if err != nil {
			return nil, err
		}
		stays := map[string]bool{}
		for _, k := range g.Kernels {
			stays[k.HostName] = true
		}
		for i := range f.Kernels {
			k := &f.Kernels[i]
			k.Shardable = !stays[k.HostName] && k.Template != ""
		}
		files, err := sourceFiles(src, f)
		if err != nil {
			return nil, err
		}
		for n, b := range files {
			out[n] = b
		}
		all = append(all, f.Kernels...)
	}
	out["kernels_gen.cc"] = tableFile(all, sources)
	out["sources_gen.go"] = sourcesFile(nativeVar)
	return out, nil
}

// Included reports whether a file in a source folder is an MSL source: a .metal file or
// a header.
func Included(name string) bool {
	return strings.HasSuffix(name, ".metal") || strings.HasSuffix(name, ".h")
}

// GeneratedName reports whether a file in OutDir is one Generate writes (so that stale
// ones can be found and removed).
func GeneratedName(name string) bool {
	return name == "kernels_gen.cc" || name == "sources_gen.go" || (strings.HasPrefix(name, "kgen_") && strings.HasSuffix(name, "_gen.cc"))
}

// writeStubs gives the preprocessor empty MSL headers, so that `kernel`, `device` and the
// other keywords survive preprocessing; it defines the same predefined macros as the shim.
func writeStubs(shim, dir string) error {
	entries, err := os.ReadDir(shim)
	if err != nil {
		return fmt.Errorf("kgen: %w", err)
	}
	const predefined = "#pragma once\n#ifndef __METAL_VERSION__\n#define __METAL_VERSION__ 310\n#endif\n#define __HAVE_BFLOAT__ 1\n#define MSLEMU 1\n"
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "metal_") {
			if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(predefined), 0o644); err != nil {
				return fmt.Errorf("kgen: %w", err)
			}
		}
	}
	return nil
}

// preprocess runs the preprocessor from the repository root on src (a repository path), so
// that line markers name files by repository path.
func preprocess(cxx, stub, root, src string, shard bool) (string, error) {
	args := []string{"-E", "-x", "c++", "-std=c++14", "-DMSLEMU_GEN=1", "-I", stub, src}
	if shard {
		args = append(args, "-DMSLEMU_KGEN_SHARD=0")
	}
	cmd := exec.Command(cxx, args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s -E: %v\n%s", cxx, err, stderr.String())
	}
	return stdout.String(), nil
}

// stem turns "native/msl/attention_fwd.metal" into "native_msl_attention_fwd".
func stem(src string) string {
	s := strings.TrimSuffix(src, ".metal")
	s = strings.TrimPrefix(s, "tools/mslemu/")
	return ident(s)
}

func ident(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// adapterName is the extern "C" name of a kernel's adapter.
func adapterName(host string) string { return "mslemu_k_" + ident(host) }

const header = "//go:build cgo && linux\n\n// Code generated by mslemu-gen (go generate ./tools/mslemu). DO NOT EDIT.\n"

// PerShard is how many shardable instantiations one translation unit compiles. Measured on
// the attention kernels with g++ 12 -O2 (AMD EPYC Zen 5): about 1.2 s per unit to parse and
// 0.16 s per kernel; 153 kernels in 7 units build in 11.6 s on 2 cores, 13 units of 12 took
// 15.8 s.
const PerShard = 24

// sourceFiles writes the translation units of one source: one, or several shards when it
// has shardable instantiations. Each includes the source in a namespace of its own (so
// that shards do not share definitions) and holds the adapters of its kernels.
func sourceFiles(src string, f *File) (map[string][]byte, error) {
	rel, err := filepath.Rel(filepath.FromSlash(OutDir), filepath.FromSlash(src))
	if err != nil {
		return nil, fmt.Errorf("kgen: %w", err)
	}
	if rel == ".." || strings.HasPrefix(filepath.ToSlash(rel), "../") {
		// A source of another package is included by its repository path: Bazel finds it
		// through the cc_library that declares it (//native/msl:kernel_sources in cdeps)
		// and -iquote ., the go tool through launch_cgo.go's -I../..; a "../" path would
		// reach a file that is not an input of the target (tools/ci/buildcheck).
		rel = src
	}
	var fixed, shardable []Kernel
	for _, k := range f.Kernels {
		if k.Shardable {
			shardable = append(shardable, k)
		} else {
			fixed = append(fixed, k)
		}
	}
	out := map[string][]byte{}
	if len(shardable) == 0 {
		out["kgen_"+stem(src)+"_gen.cc"] = unitFile(src, rel, stem(src), -1, f, fixed)
		return out, nil
	}
	n := (len(shardable) + PerShard - 1) / PerShard
	shards := make([][]Kernel, n)
	shards[0] = append(shards[0], fixed...)
	// Round robin in file order: neighbours (often the same kernel at other sizes) land
	// in different shards, which evens out the compile times.
	for i, k := range shardable {
		shards[i%n] = append(shards[i%n], k)
	}
	for i, ks := range shards {
		ns := fmt.Sprintf("%s_s%02d", stem(src), i)
		out["kgen_"+ns+"_gen.cc"] = unitFile(src, rel, ns, i, f, ks)
	}
	return out, nil
}

// unitFile writes one translation unit: shard < 0 for an unsharded source.
func unitFile(src, rel, ns string, shard int, f *File, ks []Kernel) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s// The kernels of %s and their adapters", header, src)
	if shard >= 0 {
		fmt.Fprintf(&b, " (shard %d: the adapters instantiate their kernels)", shard)
	}
	b.WriteString(".\n\n")
	if shard >= 0 {
		fmt.Fprintf(&b, "#define MSLEMU_KGEN_SHARD %d\n", shard)
	}
	b.WriteString("#include <metal_stdlib>\n\n")
	fmt.Fprintf(&b, "namespace mslemu_src_%s {\n\n", ns)
	fmt.Fprintf(&b, "#include %q\n\n", filepath.ToSlash(rel))

	// Function constants: set before every launch of a kernel of this unit.
	if len(f.Constants) == 0 {
		b.WriteString("static const ::mslemu::fconst* const mslemu_fcs = nullptr;\n\n")
	} else {
		b.WriteString("static const ::mslemu::fconst mslemu_fcs[] = {\n")
		for _, c := range f.Constants {
			fmt.Fprintf(&b, "    {%d, %q, ::mslemu::fc_kind<decltype(%s)>(), sizeof(%s), ::mslemu::fc_addr(&%s), %v},  // %s\n",
				c.Index, c.Name, c.Name, c.Name, c.Name, c.Optional, c.Line)
		}
		b.WriteString("};\n\n")
	}
	// Launch hints that depend on template parameters.
	hinted := map[string]bool{}
	for _, k := range ks {
		if k.Template == "" || hinted[k.Template] {
			continue
		}
		t, ok := f.Templates[k.Template]
		if !ok || t.MaxThreads == "" || k.MaxThreads != t.MaxThreads {
			continue
		}
		hinted[k.Template] = true
		fmt.Fprintf(&b, "template <%s> constexpr unsigned mslemu_mt_%s() { return unsigned(%s); }\n\n", t.Params, k.Template, t.MaxThreads)
	}
	for _, k := range ks {
		fmt.Fprintf(&b, "// %s\n", k.Line)
		fmt.Fprintf(&b, "extern \"C\" void %s(const mslemu_thread* t, void* const* b) {\n", adapterName(k.HostName))
		b.WriteString("  (void)b;\n")
		fmt.Fprintf(&b, "  %s(", k.Call)
		for i, p := range k.Params {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n      ")
			if p.Buffer >= 0 {
				fmt.Fprintf(&b, "::mslemu::bind<%s>(b[%d])", p.Type, p.Buffer)
			} else {
				fmt.Fprintf(&b, "::mslemu::pos<%s>(%s)", p.Type, Positions[p.Position])
			}
		}
		b.WriteString(");\n}\n")
		mt := "0u"
		switch {
		case k.MaxThreads == "":
		case hinted[k.Template] && k.MaxThreads == f.Templates[k.Template].MaxThreads:
			mt = fmt.Sprintf("mslemu_mt_%s<%s>()", k.Template, k.TemplateArgs)
		default:
			mt = fmt.Sprintf("unsigned(%s)", k.MaxThreads)
		}
		fmt.Fprintf(&b, "extern \"C\" int %s(mslemu_prep* p) {\n", prepName(k.HostName))
		fmt.Fprintf(&b, "  return ::mslemu::prepare(p, %s, mslemu_fcs, %d);\n}\n\n", mt, len(f.Constants))
	}
	fmt.Fprintf(&b, "}  // namespace mslemu_src_%s\n", ns)
	return b.Bytes()
}

// prepName is the extern "C" name of a kernel's launch preparation (function constants,
// launch hint).
func prepName(host string) string { return "mslemu_p_" + ident(host) }

func tableFile(ks []Kernel, sources []string) []byte {
	sorted := append([]Kernel(nil), ks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].HostName < sorted[j].HostName })
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s// The table of kernels the emulator can launch.\n\n", header)
	b.WriteString("#include \"shim/mslemu_rt.h\"\n\n")
	b.WriteString("extern \"C\" {\n\n")
	for _, k := range sorted {
		fmt.Fprintf(&b, "__attribute__((weak)) void %s(const mslemu_thread* t, void* const* b);\n", adapterName(k.HostName))
		fmt.Fprintf(&b, "__attribute__((weak)) int %s(mslemu_prep* p);\n", prepName(k.HostName))
	}
	b.WriteString("\n// Adapters are weak: NULL when their source was removed without regenerating.\n")
	b.WriteString("const mslemu_kernel mslemu_kernels[] = {\n")
	for _, k := range sorted {
		var bufs, writes uint64
		for _, p := range k.Params {
			if p.Buffer >= 0 {
				bufs |= 1 << uint(p.Buffer)
				if p.Writable() {
					writes |= 1 << uint(p.Buffer)
				}
			}
		}
		fmt.Fprintf(&b, "    {%q, %s, %s, %q, 0x%xull, 0x%xull},\n", k.HostName, adapterName(k.HostName), prepName(k.HostName), k.Source, bufs, writes)
	}
	b.WriteString("};\n\n")
	fmt.Fprintf(&b, "const int mslemu_nkernels = %d;\n\n", len(sorted))
	b.WriteString("// The .metal files the adapters were generated from, one per line.\n")
	b.WriteString("const char mslemu_sources[] =")
	if len(sources) == 0 {
		b.WriteString(" \"\"")
	}
	for _, src := range sources {
		fmt.Fprintf(&b, "\n    %q", src+"\n")
	}
	b.WriteString(";\n\n")
	b.WriteString("}  // extern \"C\"\n")
	return b.Bytes()
}

// ---------------------------------------------------------------------------------
// Tokens.

type ctok struct {
	text string
	file string
	line int
}

func (t ctok) pos() string { return fmt.Sprintf("%s:%d", t.file, t.line) }

// tokenize splits C++ into tokens. With markers, text is preprocessor output: lines
// starting with # are line markers (followed) or pragmas (skipped).
func tokenize(src, text string, markers bool) []ctok {
	var toks []ctok
	file, line := src, 1
	i := 0
	bol := true
	for i < len(text) {
		c := text[i]
		switch {
		case c == '\n':
			line++
			i++
			bol = true
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '#' && bol && markers:
			// "# 12 "file" flags" or a stray directive: read the line.
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				j = len(text) - i
			}
			fields := strings.Fields(text[i+1 : i+j])
			if len(fields) >= 2 {
				if n, err := strconv.Atoi(fields[0]); err == nil {
					if f, err := strconv.Unquote(fields[1]); err == nil {
						file = f
					}
					line = n - 1 // the newline below moves to n
				}
			}
			i += j
			continue
		}
		bol = false
		start := i
		switch {
		case isIdentStart(c):
			for i < len(text) && isIdentChar(text[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9':
			for i < len(text) {
				d := text[i]
				if isIdentChar(d) || d == '.' {
					i++
				} else if (d == '+' || d == '-') && strings.ContainsRune("eEpP", rune(text[i-1])) {
					i++
				} else {
					break
				}
			}
		case c == '"' || c == '\'':
			i++
			for i < len(text) && text[i] != c {
				if text[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == ':' && i+1 < len(text) && text[i+1] == ':':
			i += 2
		case c == '-' && i+1 < len(text) && text[i+1] == '>':
			i += 2
		default:
			i++
		}
		if i > len(text) {
			i = len(text)
		}
		toks = append(toks, ctok{text: text[start:i], file: file, line: line})
	}
	return toks
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

// ---------------------------------------------------------------------------------
// Parsing.

type kparser struct {
	toks []ctok
	i    int
	src  string
}

func (p *kparser) peek(k int) string {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k].text
	}
	return ""
}

func (p *kparser) errf(at ctok, format string, args ...any) error {
	return fmt.Errorf("kgen: %s: %s", at.pos(), fmt.Sprintf(format, args...))
}

// skipBalanced moves past a bracketed group starting at p.i (which holds open).
func (p *kparser) skipBalanced(open, close string) bool {
	depth := 0
	for ; p.i < len(p.toks); p.i++ {
		switch p.toks[p.i].text {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				p.i++
				return true
			}
		}
	}
	return false
}

// attrs is what a declaration's [[...]] groups and `kernel` keywords say.
type attrs struct {
	isKernel   bool
	host       string
	maxThreads string // the expression of max_total_threads_per_threadgroup, or ""
}

// splitTop splits tokens at commas outside brackets.
func splitTop(toks []ctok) [][]ctok {
	var groups [][]ctok
	depth := 0
	cur := []ctok{}
	for _, t := range toks {
		switch t.text {
		case "(", "<", "{", "[":
			depth++
		case ")", ">", "}", "]":
			depth--
		case ",":
			if depth == 0 {
				groups = append(groups, cur)
				cur = []ctok{}
				continue
			}
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// parenArg returns the tokens inside the parentheses that follow entry[0], or nil.
func parenArg(entry []ctok) []ctok {
	if len(entry) < 3 || entry[1].text != "(" || entry[len(entry)-1].text != ")" {
		return nil
	}
	return entry[2 : len(entry)-1]
}

// attributes reads [[...]] groups and bare `kernel` keywords at p.i.
func (p *kparser) attributes() (attrs, error) {
	var a attrs
	for {
		switch {
		case p.peek(0) == "kernel":
			a.isKernel = true
			p.i++
		case p.peek(0) == "[" && p.peek(1) == "[":
			at := p.toks[p.i]
			p.i += 2
			start := p.i
			for p.i < len(p.toks) && !(p.peek(0) == "]" && p.peek(1) == "]") {
				p.i++
			}
			if p.i >= len(p.toks) {
				return a, p.errf(at, "unterminated attribute")
			}
			list := p.toks[start:p.i]
			p.i += 2
			for _, entry := range splitTop(list) {
				if len(entry) == 0 {
					continue
				}
				switch entry[0].text {
				case "kernel":
					a.isKernel = true
				case "host_name":
					var s strings.Builder
					for _, t := range parenArg(entry) {
						if strings.HasPrefix(t.text, "\"") {
							u, err := strconv.Unquote(t.text)
							if err != nil {
								return a, p.errf(t, "host_name: %v", err)
							}
							s.WriteString(u)
						}
					}
					a.host = s.String()
				case "max_total_threads_per_threadgroup":
					arg := parenArg(entry)
					if len(arg) == 0 {
						return a, p.errf(entry[0], "max_total_threads_per_threadgroup needs an argument")
					}
					a.maxThreads = join(arg)
				}
			}
		default:
			return a, nil
		}
	}
}

// Parse finds the kernels in the preprocessed text of one source.
func Parse(src, text string) ([]Kernel, error) {
	f, err := ParseFile(src, text)
	if err != nil {
		return nil, err
	}
	return f.Kernels, nil
}

// scope is one open brace: a namespace (with its name) or anything else.
type scope struct {
	namespace bool
	name      string
}

// ParseFile finds the kernels, kernel templates and function constants in the preprocessed
// text of one source, and rejects program-scope constants derived from function constants.
func ParseFile(src, text string) (*File, error) {
	p := &kparser{toks: tokenize(src, text, true), src: src}
	f := &File{Templates: map[string]Template{}}
	var scopes []scope
	atNamespaceScope := func() bool {
		for _, s := range scopes {
			if !s.namespace {
				return false
			}
		}
		return true
	}
	qualify := func(name string) string {
		var parts []string
		for _, s := range scopes {
			if s.name != "" {
				parts = append(parts, s.name)
			}
		}
		return strings.Join(append(parts, name), "::")
	}
	fcNames := map[string]bool{}
	optional := map[string]bool{}
	stmtStart := 0 // index of the first token of the current namespace-scope declaration
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch {
		case t.text == "namespace":
			j := p.i + 1
			var name []string
			for j < len(p.toks) && p.toks[j].text != "{" && p.toks[j].text != ";" && p.toks[j].text != "=" {
				name = append(name, p.toks[j].text)
				j++
			}
			if j < len(p.toks) && p.toks[j].text == "{" {
				scopes = append(scopes, scope{namespace: true, name: strings.Join(name, "")})
				p.i = j + 1
				stmtStart = p.i
				continue
			}
			p.i++
		case t.text == "{":
			scopes = append(scopes, scope{})
			p.i++
		case t.text == "}":
			if len(scopes) > 0 {
				scopes = scopes[:len(scopes)-1]
			}
			p.i++
			if atNamespaceScope() {
				stmtStart = p.i
			}
		case t.text == ";":
			p.i++
			if atNamespaceScope() {
				if err := p.checkDerived(stmtStart, p.i, fcNames); err != nil {
					return nil, err
				}
				stmtStart = p.i
			}
		case t.text == "is_function_constant_defined" && p.peek(1) == "(":
			// The argument's last identifier: `feat::x` names x.
			for j := p.i + 2; j < len(p.toks) && p.toks[j].text != ")"; j++ {
				if isIdentStart(p.toks[j].text[0]) {
					optional[p.toks[j].text] = true
				}
			}
			p.i++
		case t.text == "[" && p.peek(1) == "[" && p.peek(2) == "function_constant" && atNamespaceScope():
			fc, err := p.functionConstant(stmtStart, qualify)
			if err != nil {
				return nil, err
			}
			if fc != nil {
				for _, prev := range f.Constants {
					if prev.Index == fc.Index {
						return nil, p.errf(t, "function constants %s and %s both use index %d", prev.Name, fc.Name, fc.Index)
					}
				}
				fcNames[fc.Name[strings.LastIndex(fc.Name, ":")+1:]] = true
				f.Constants = append(f.Constants, *fc)
			}
		case t.text == "template" && p.peek(1) == "<":
			// A template declaration: skip its parameter list and head, so that a kernel
			// template's definition is not taken for a kernel; remember kernel templates.
			p.i++
			start := p.i
			if !p.skipBalanced("<", ">") {
				return nil, p.errf(t, "unbalanced template parameter list")
			}
			params := join(p.toks[start+1 : p.i-1])
			a, err := p.attributes()
			if err != nil {
				return nil, err
			}
			if a.isKernel && p.peek(0) == "void" && p.peek(2) == "(" {
				f.Templates[p.peek(1)] = Template{Params: params, MaxThreads: a.maxThreads}
			}
		case t.text == "template":
			p.i++
			a, err := p.attributes()
			if err != nil {
				return nil, err
			}
			if !a.isKernel {
				continue
			}
			k, err := p.kernel(t, a, true)
			if err != nil {
				return nil, err
			}
			f.Kernels = append(f.Kernels, k)
		case t.text == "kernel" || t.text == "[" && p.peek(1) == "[":
			a, err := p.attributes()
			if err != nil {
				return nil, err
			}
			if !a.isKernel {
				continue
			}
			k, err := p.kernel(t, a, false)
			if err != nil {
				return nil, err
			}
			f.Kernels = append(f.Kernels, k)
		default:
			p.i++
		}
	}
	for i := range f.Constants {
		c := &f.Constants[i]
		c.Optional = optional[c.Name[strings.LastIndex(c.Name, ":")+1:]]
	}
	for i := range f.Kernels {
		k := &f.Kernels[i]
		if k.MaxThreads == "" && k.Template != "" {
			k.MaxThreads = f.Templates[k.Template].MaxThreads
		}
	}
	return f, nil
}

// functionConstant reads `constant T name [[function_constant(i)]];` whose attribute
// starts at p.i and whose declaration starts at stmt. It returns nil (and moves on) for an
// attribute that is not such a declaration.
func (p *kparser) functionConstant(stmt int, qualify func(string) string) (*FConst, error) {
	at := p.toks[p.i]
	// [ [ function_constant ( i ) ] ] ;
	if p.peek(3) != "(" || p.peek(5) != ")" || p.peek(6) != "]" || p.peek(7) != "]" || p.peek(8) != ";" {
		p.i++
		return nil, nil
	}
	decl := p.toks[stmt:p.i]
	if len(decl) < 3 || decl[0].text != "constant" {
		return nil, p.errf(at, "a function constant is declared `constant T name [[function_constant(i)]];`")
	}
	n, err := strconv.ParseInt(strings.TrimRight(p.peek(4), "uUlL"), 0, 32)
	if err != nil || n < 0 || n > 65535 {
		return nil, p.errf(at, "function constant index %q is not an integer in 0..65535", p.peek(4))
	}
	name := decl[len(decl)-1].text
	if !isIdentStart(name[0]) {
		return nil, p.errf(at, "cannot read the function constant's name")
	}
	fc := &FConst{Name: qualify(name), Index: int(n), Type: join(decl[1 : len(decl)-1]), Line: at.pos()}
	p.i += 8
	return fc, nil
}

// checkDerived rejects a namespace-scope `constant` declaration (not constexpr, not a
// function constant) whose initializer reads a function constant: the emulator evaluates
// it once when the program loads, Metal when it specialises the function.
func (p *kparser) checkDerived(start, end int, fcNames map[string]bool) error {
	decl := p.toks[start:end]
	if len(decl) == 0 || decl[0].text != "constant" {
		return nil
	}
	eq := -1
	for i, t := range decl {
		if t.text == "constexpr" || t.text == "function_constant" {
			return nil
		}
		if t.text == "=" && eq < 0 {
			eq = i
		}
	}
	if eq < 0 {
		return nil
	}
	for _, t := range decl[eq+1:] {
		if fcNames[t.text] || t.text == "is_function_constant_defined" {
			return p.errf(decl[0], "program-scope constant initialised from function constant %s: the emulator would evaluate it once at load; compute it in an inline function or inside the kernel", t.text)
		}
	}
	return nil
}

// kernel reads `void name[<args>](params)` after a kernel's attributes.
func (p *kparser) kernel(at ctok, a attrs, instantiation bool) (Kernel, error) {
	host := a.host
	if p.peek(0) != "void" {
		return Kernel{}, p.errf(at, "kernel must return void")
	}
	p.i++
	var call []string
	for p.i < len(p.toks) && p.peek(0) != "(" && p.peek(0) != "<" {
		call = append(call, p.peek(0))
		p.i++
	}
	if len(call) == 0 {
		return Kernel{}, p.errf(at, "kernel without a name")
	}
	name := call[len(call)-1]
	var targs string
	if p.peek(0) == "<" {
		start := p.i
		if !p.skipBalanced("<", ">") {
			return Kernel{}, p.errf(at, "unbalanced template arguments")
		}
		for _, t := range p.toks[start:p.i] {
			call = append(call, t.text)
		}
		targs = join(p.toks[start+1 : p.i-1])
	}
	if p.peek(0) != "(" {
		return Kernel{}, p.errf(at, "kernel %s: expected a parameter list", name)
	}
	open := p.i
	if !p.skipBalanced("(", ")") {
		return Kernel{}, p.errf(at, "kernel %s: unbalanced parameter list", name)
	}
	inner := p.toks[open+1 : p.i-1]
	k := Kernel{Line: at.pos(), Source: p.src, MaxThreads: a.maxThreads}
	if instantiation {
		if host == "" {
			return Kernel{}, p.errf(at, "explicit instantiation of kernel %s without [[host_name(\"...\")]]", name)
		}
		if p.peek(0) != ";" {
			return Kernel{}, p.errf(at, "kernel %s: expected ; after the instantiation", name)
		}
		if targs != "" {
			k.Template, k.TemplateArgs = name, targs
		}
	} else {
		if len(call) > 1 && call[len(call)-1] == ">" {
			return Kernel{}, p.errf(at, "kernel %s: explicit specialisations are not supported", name)
		}
		if p.peek(0) != "{" {
			// A declaration; the definition follows elsewhere.
			return Kernel{}, p.errf(at, "kernel %s: declared without a body; define kernels once", name)
		}
		if host == "" {
			host = name
		}
	}
	params, err := p.params(name, inner)
	if err != nil {
		return Kernel{}, err
	}
	k.HostName = host
	k.Call = strings.Join(call, " ")
	k.Params = params
	return k, nil
}

// params splits a parameter list at top-level commas and reads each attribute.
func (p *kparser) params(kernel string, toks []ctok) ([]Param, error) {
	groups := splitTop(toks)
	var out []Param
	buffers := map[int]string{}
	for _, g := range groups {
		if len(g) == 1 && g[0].text == "void" {
			continue
		}
		// Split off the trailing [[...]].
		attrStart := -1
		for j := 0; j+1 < len(g); j++ {
			if g[j].text == "[" && g[j+1].text == "[" {
				attrStart = j
				break
			}
		}
		if attrStart < 0 {
			return nil, p.errf(g[0], "kernel %s: parameter %q has no [[buffer(i)]] or position attribute", kernel, join(g))
		}
		decl := g[:attrStart]
		attr := g[attrStart+2:]
		for len(attr) > 0 && attr[len(attr)-1].text == "]" {
			attr = attr[:len(attr)-1]
		}
		if len(decl) < 2 || !isIdentStart(decl[len(decl)-1].text[0]) {
			return nil, p.errf(g[0], "kernel %s: cannot read parameter %q", kernel, join(g))
		}
		prm := Param{Type: join(decl[:len(decl)-1]), Name: decl[len(decl)-1].text, Buffer: -1}
		found := false
		for _, entry := range splitTop(attr) {
			if len(entry) == 0 {
				continue
			}
			a := entry[0].text
			switch {
			case a == "function_constant":
				// The parameter exists only when the constant is true; the emulator always
				// passes the slot (unbound when the launch gives no buffer).
				continue
			case found:
				return nil, p.errf(g[0], "kernel %s: parameter %s: more than one binding attribute", kernel, prm.Name)
			case a == "buffer":
				arg := parenArg(entry)
				if len(arg) != 1 {
					return nil, p.errf(g[0], "kernel %s: parameter %s: [[buffer(i)]] needs an integer literal", kernel, prm.Name)
				}
				n, err := strconv.ParseInt(strings.TrimRight(arg[0].text, "uUlL"), 0, 32)
				if err != nil || n < 0 || n > 63 {
					return nil, p.errf(g[0], "kernel %s: parameter %s: buffer index %q is not an integer in 0..63", kernel, prm.Name, arg[0].text)
				}
				if prev, ok := buffers[int(n)]; ok {
					return nil, p.errf(g[0], "kernel %s: parameters %s and %s both use buffer %d", kernel, prev, prm.Name, n)
				}
				buffers[int(n)] = prm.Name
				prm.Buffer = int(n)
				if !strings.Contains(prm.Type, "*") && !strings.Contains(prm.Type, "&") {
					return nil, p.errf(g[0], "kernel %s: buffer parameter %s must be a pointer or reference", kernel, prm.Name)
				}
			case Positions[a] != "" && len(entry) == 1:
				prm.Position = a
			default:
				return nil, p.errf(g[0], "kernel %s: parameter %s: attribute [[%s]] is not supported by the emulator", kernel, prm.Name, join(entry))
			}
			found = true
		}
		if !found {
			return nil, p.errf(g[0], "kernel %s: parameter %q has no [[buffer(i)]] or position attribute", kernel, join(g))
		}
		out = append(out, prm)
	}
	return out, nil
}

func join(ts []ctok) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.text
	}
	return strings.Join(s, " ")
}

// ---------------------------------------------------------------------------------
// Lint.

// Lint reports what the emulator cannot compile faithfully, with its line:
//   - a `threadgroup` pointer or reference: after the keyword, a `*` or `&` before the
//     declared name (or before the end of a cast);
//   - a floating literal without the f suffix (0.5 is a double in C++, and cgo does not
//     allow -fsingle-precision-constant), or with MSL's h suffix (not C++);
//   - a loop pragma that clang (and so Metal's compiler) rejects but g++ ignores: an unknown
//     `#pragma clang loop` option or argument, a malformed `#pragma unroll`/`nounroll`, or one
//     not followed by a for, while or do loop.
//
// Comments are ignored.
func Lint(name string, src []byte) []string {
	stripped := stripComments(string(src))
	toks := tokenize(name, stripped, false)
	out := lintPragmas(name, stripped, toks)
	for i, t := range toks {
		if msg := floatLiteral(t.text); msg != "" {
			out = append(out, fmt.Sprintf("%s: %s", t.pos(), msg))
			continue
		}
		if t.text != "threadgroup" {
			continue
		}
		for j := i + 1; j < len(toks); j++ {
			s := toks[j].text
			if s == "*" || s == "&" {
				out = append(out, fmt.Sprintf("%s: threadgroup pointer or reference: declare threadgroup arrays inside the kernel with constexpr sizes and index them with offsets", t.pos()))
				break
			}
			if s == "[" || s == ";" || s == "=" || s == ")" || s == "," || s == "{" || s == "}" {
				break
			}
		}
	}
	return out
}

// loopOptions are the `#pragma clang loop` options clang knows, with the arguments each takes
// ("N" for a positive integer).
var loopOptions = map[string][]string{
	"unroll":                       {"full", "enable", "disable"},
	"unroll_count":                 {"N"},
	"vectorize":                    {"enable", "disable", "assume_safety"},
	"vectorize_width":              {"N", "scalable", "fixed"},
	"interleave":                   {"enable", "disable", "assume_safety"},
	"interleave_count":             {"N"},
	"distribute":                   {"enable", "disable"},
	"pipeline":                     {"disable"},
	"pipeline_initiation_interval": {"N"},
}

// loopPragma checks the text after `pragma` of a loop pragma; ok is false for pragmas that
// are not loop pragmas.
func loopPragma(body string) (msg string, ok bool) {
	f := strings.Fields(body)
	if len(f) == 0 {
		return "", false
	}
	switch {
	case f[0] == "nounroll":
		if len(f) > 1 {
			return "#pragma nounroll takes no argument", true
		}
		return "", true
	case f[0] == "unroll" || strings.HasPrefix(f[0], "unroll("):
		arg := strings.TrimSpace(strings.TrimPrefix(body[strings.Index(body, "unroll"):], "unroll"))
		arg = strings.TrimSuffix(strings.TrimPrefix(arg, "("), ")")
		if arg == "" {
			return "", true
		}
		if n, err := strconv.Atoi(strings.TrimSpace(arg)); err != nil || n < 1 {
			return fmt.Sprintf("#pragma unroll %s: the count must be a positive integer literal", arg), true
		}
		return "", true
	case f[0] == "clang" && len(f) > 1 && f[1] == "loop":
		opts := strings.Join(f[2:], "")
		if opts == "" {
			return "#pragma clang loop without an option", true
		}
		for opts != "" {
			open := strings.IndexByte(opts, '(')
			close := strings.IndexByte(opts, ')')
			if open <= 0 || close < open {
				return fmt.Sprintf("#pragma clang loop %s: expected option(argument)", opts), true
			}
			name, arg := opts[:open], opts[open+1:close]
			args, known := loopOptions[name]
			if !known {
				return fmt.Sprintf("#pragma clang loop: unknown option %q", name), true
			}
			valid := false
			for _, a := range args {
				if a == arg {
					valid = true
				}
				if n, err := strconv.Atoi(arg); a == "N" && err == nil && n >= 1 {
					valid = true
				}
			}
			if !valid {
				return fmt.Sprintf("#pragma clang loop %s(%s): the argument must be one of %v", name, arg, args), true
			}
			opts = opts[close+1:]
		}
		return "", true
	}
	return "", false
}

// lintPragmas checks loop pragmas: their form, and that a loop follows each #pragma (a
// _Pragma in a macro is checked for its form only).
func lintPragmas(name, stripped string, toks []ctok) []string {
	var out []string
	lines := strings.Split(stripped, "\n")
	directive := func(l string) (string, bool) {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			return "", false
		}
		l = strings.TrimSpace(l[1:])
		if !strings.HasPrefix(l, "pragma") {
			return "", false
		}
		return strings.TrimSpace(strings.TrimPrefix(l, "pragma")), true
	}
	for i, l := range lines {
		body, ok := directive(l)
		if !ok {
			continue
		}
		msg, isLoop := loopPragma(body)
		if !isLoop {
			continue
		}
		if msg != "" {
			out = append(out, fmt.Sprintf("%s:%d: %s", name, i+1, msg))
			continue
		}
		// The next line that is not blank and not another loop pragma must start a loop.
		next := ""
		for j := i + 1; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if t == "" {
				continue
			}
			if b, ok := directive(t); ok {
				if _, loop := loopPragma(b); loop {
					continue
				}
			}
			next = t
			break
		}
		word := next
		if k := strings.IndexFunc(next, func(r rune) bool { return !(r >= 'a' && r <= 'z') }); k >= 0 {
			word = next[:k]
		}
		if word != "for" && word != "while" && word != "do" {
			out = append(out, fmt.Sprintf("%s:%d: #pragma %s must be followed by a for, while or do loop (clang rejects it otherwise)", name, i+1, body))
		}
	}
	for i, t := range toks {
		if t.text != "_Pragma" || i+2 >= len(toks) || toks[i+1].text != "(" {
			continue
		}
		body, err := strconv.Unquote(toks[i+2].text)
		if err != nil {
			continue
		}
		if msg, isLoop := loopPragma(body); isLoop && msg != "" {
			out = append(out, fmt.Sprintf("%s: %s", t.pos(), msg))
		}
	}
	return out
}

// stripComments blanks out // and /* */ comments, keeping newlines, and keeps string
// literals. Directive lines stay (tokenize reads "#" at the start of a line as a line
// marker only when followed by a number).
func stripComments(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '"' || b[i] == '\'':
			q := b[i]
			for i++; i < len(b) && b[i] != q && b[i] != '\n'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '/':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			for ; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				if b[i] != '\n' {
					b[i] = ' '
				}
			}
			if i+1 < len(b) {
				b[i], b[i+1] = ' ', ' '
				i++
			}
		}
	}
	return string(b)
}

// Diff lists the generated files that differ from those in OutDir under root: changed,
// missing, or on disk but no longer generated.
func Diff(root string, files map[string][]byte) ([]string, error) {
	out := filepath.Join(root, filepath.FromSlash(OutDir))
	var stale []string
	for n, want := range files {
		got, err := os.ReadFile(filepath.Join(out, n))
		if err != nil || !bytes.Equal(got, want) {
			stale = append(stale, n)
		}
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return nil, fmt.Errorf("kgen: %w", err)
	}
	for _, e := range entries {
		if GeneratedName(e.Name()) && files[e.Name()] == nil {
			stale = append(stale, e.Name())
		}
	}
	sort.Strings(stale)
	return stale, nil
}

// EmbedVar returns the name of the exported package-level embed.FS variable of the Go
// package in dir, or "" when there is none (no package yet).
func EmbedVar(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("kgen: %w", err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, 0)
		if err != nil {
			return "", fmt.Errorf("kgen: %w", err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				sel, ok := vs.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "FS" {
					continue
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "embed" {
					continue
				}
				for _, name := range vs.Names {
					if name.IsExported() {
						return name.Name, nil
					}
				}
			}
		}
	}
	return "", nil
}

// sourcesFile names the embedded kernel sources, so that the go tool rebuilds the
// emulator when they change and the emulator can check that it was generated from them.
func sourcesFile(nativeVar string) []byte {
	var b bytes.Buffer
	b.WriteString("// Code generated by mslemu-gen (go generate ./tools/mslemu). DO NOT EDIT.\n\n")
	b.WriteString("package mslemu\n\n")
	if nativeVar == "" {
		fmt.Fprintf(&b, "import \"io/fs\"\n\n// %s has no Go package embedding its sources yet: its files are compiled but\n// not checked against the generated adapters.\nvar nativeSources fs.FS\n", NativeDir)
		return b.Bytes()
	}
	fmt.Fprintf(&b, "import (\n\t\"io/fs\"\n\n\tmsl %q\n)\n\n", NativeImport)
	fmt.Fprintf(&b, "// The project's kernels, embedded by their own package (%s).\nvar nativeSources fs.FS = msl.%s\n", NativeDir, nativeVar)
	return b.Bytes()
}

// floatLiteral explains what is wrong with a floating literal token, or returns "".
func floatLiteral(t string) string {
	if t == "" || !(t[0] >= '0' && t[0] <= '9' || t[0] == '.' && len(t) > 1 && t[1] >= '0' && t[1] <= '9') {
		return ""
	}
	lower := strings.ToLower(t)
	hex := strings.HasPrefix(lower, "0x")
	isFloat := strings.Contains(lower, ".") || (!hex && strings.Contains(lower, "e")) || (hex && strings.Contains(lower, "p"))
	if !isFloat {
		return ""
	}
	switch {
	case strings.HasSuffix(lower, "f"):
		return ""
	case strings.HasSuffix(lower, "h"):
		return fmt.Sprintf("half literal %s: the h suffix is not C++; write half(%sf)", t, t[:len(t)-1])
	case hex && !strings.HasSuffix(lower, "f"):
		return fmt.Sprintf("floating literal %s without the f suffix: write %sf (a double in C++, a float in MSL)", t, t)
	default:
		return fmt.Sprintf("floating literal %s without the f suffix: write %sf (a double in C++, a float in MSL)", t, strings.TrimRight(t, "lL"))
	}
}
