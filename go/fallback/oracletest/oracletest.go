package oracletest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"codeberg.org/sbinet/npyio/npy"
	"github.com/bazelbuild/rules_go/go/runfiles"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// MinCases is the number of cases tools/oracle/attention_oracle.py writes. Tests assert
// that Load found at least this many, so a missing or half-copied data directory fails
// instead of passing vacuously.
const MinCases = 33

// FormatVersion is the case.json format this package reads.
const FormatVersion = 1

// Case is one oracle vector: a problem over float64 tensors, the upstream gradient and
// the expected results, all row-major.
type Case struct {
	Name  string // directory name, e.g. "combo_d59_everything"
	About string // what the case covers
	Dims  spec.Dims

	Problem *spec.Problem  // Q, K, V are float64; Options as the script set them
	DO      *tensor.Tensor // [B, H, N, D] float64

	O  []float64 // [B, H, N, D]
	L  []float64 // [B, H, N], natural-log logsumexp; −Inf for a row with no visible key
	DQ []float64 // [B, H, N, D]
	DK []float64 // [B, Hkv, M, D]
	DV []float64 // [B, Hkv, M, D]

	// Keep is the dropout keep decision of each element [B, H, N, M], computed by the
	// script's own Philox4x32-10; nil without dropout.
	Keep []bool
	// MaskedRows counts the rows (over B, H, N) with no visible key: L = −Inf there.
	MaskedRows int
}

// DataDir returns the directory holding the oracle cases, go/fallback/testdata/oracle,
// found from this source file's location so that it works from any package's test. Under
// Bazel, where source paths are relative, it asks rules_go's runfiles library for the
// directory, by its path in the Orchard module ("orchard/go/fallback/testdata/oracle"), so
// that it is found whether Orchard is the main repository or another module's dependency
// (runfiles directory "orchard+"); the test must have //go/fallback:oracle_vectors in data.
func DataDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("go", "fallback", "testdata", "oracle")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "oracle")
	if filepath.IsAbs(dir) {
		return dir // the go tool: an absolute source path
	}
	for _, name := range []string{
		"orchard/" + oracleDir, // the module's apparent name, mapped by the repo mapping
		path.Join(canonicalRepo(), oracleDir),
	} {
		if p, err := runfiles.Rlocation(name); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p
			}
		}
	}
	return dir
}

// oracleDir is the data directory's path inside the Orchard repository.
const oracleDir = "go/fallback/testdata/oracle"

// canonicalRepo is the runfiles directory of the repository holding this file: "_main"
// when Orchard is the main repository.
func canonicalRepo() string {
	if r := runfiles.CurrentRepository(); r != "" {
		return r
	}
	return "_main"
}

// caseJSON mirrors case.json as the script writes it.
type caseJSON struct {
	Format int    `json:"format"`
	Name   string `json:"name"`
	About  string `json:"about"`
	Dims   struct {
		B, H, Hkv, N, M, D int
	} `json:"dims"`
	Scale  float64 `json:"scale"`
	Causal string  `json:"causal"`
	Window *struct {
		Left  int `json:"left"`
		Right int `json:"right"`
	} `json:"window"`
	Softcap float64 `json:"softcap"`
	Dropout struct {
		P      float64 `json:"p"`
		Seed   uint64  `json:"seed"`
		Offset uint64  `json:"offset"`
	} `json:"dropout"`
	Mask *struct {
		Kind  string `json:"kind"`
		Shape [4]int `json:"shape"`
	} `json:"mask"`
	SeqLensQ   []int `json:"seqlens_q"`
	SeqLensK   []int `json:"seqlens_k"`
	MaskedRows int   `json:"masked_rows"`
}

// Load reads every case under dir (each a subdirectory with a case.json), sorted by name.
// It fails when dir holds no case at all.
func Load(dir string) ([]Case, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("oracletest: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "case.json")); err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("oracletest: no case directories (with case.json) in %s", dir)
	}
	sort.Strings(names)
	cases := make([]Case, 0, len(names))
	for _, n := range names {
		c, err := LoadCase(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// LoadCase reads one case directory and checks it: shapes agree with the dimensions in
// case.json and the problem passes spec.Validate.
func LoadCase(dir string) (Case, error) {
	c, err := loadCase(dir)
	if err != nil {
		return Case{}, fmt.Errorf("oracletest: case %s: %w", filepath.Base(dir), err)
	}
	return c, nil
}

func loadCase(dir string) (Case, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		return Case{}, err
	}
	var j caseJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&j); err != nil {
		return Case{}, fmt.Errorf("case.json: %w", err)
	}
	if j.Format != FormatVersion {
		return Case{}, fmt.Errorf("case.json: format %d, this package reads %d", j.Format, FormatVersion)
	}
	d := spec.Dims{B: j.Dims.B, H: j.Dims.H, Hkv: j.Dims.Hkv, N: j.Dims.N, M: j.Dims.M, D: j.Dims.D}
	for _, x := range []int{d.B, d.H, d.Hkv, d.N, d.M, d.D} {
		if x < 1 {
			return Case{}, fmt.Errorf("case.json: dims %+v: every size must be ≥ 1", j.Dims)
		}
	}
	qShape := []int{d.B, d.H, d.N, d.D}
	kShape := []int{d.B, d.Hkv, d.M, d.D}
	lShape := []int{d.B, d.H, d.N}

	c := Case{Name: j.Name, About: j.About, Dims: d, MaskedRows: j.MaskedRows}
	if c.Name != filepath.Base(dir) {
		return Case{}, fmt.Errorf("case.json names %q, directory is %q", c.Name, filepath.Base(dir))
	}
	r := reader{dir: dir}
	q := r.tensor("q", qShape)
	k := r.tensor("k", kShape)
	v := r.tensor("v", kShape)
	c.DO = r.tensor("do", qShape)
	c.O = r.float64s("o", qShape)
	c.L = r.float64s("lse", lShape)
	c.DQ = r.float64s("dq", qShape)
	c.DK = r.float64s("dk", kShape)
	c.DV = r.float64s("dv", kShape)
	if r.err != nil {
		return Case{}, r.err
	}

	p := &spec.Problem{Q: q, K: k, V: v}
	p.Scale = j.Scale
	p.Softcap = j.Softcap
	switch j.Causal {
	case "none":
		p.Causal = spec.CausalNone
	case "top-left":
		p.Causal = spec.CausalTopLeft
	case "bottom-right":
		p.Causal = spec.CausalBottomRight
	default:
		return Case{}, fmt.Errorf("case.json: unknown causal mode %q", j.Causal)
	}
	if w := j.Window; w != nil {
		p.Window = &spec.Window{Left: w.Left, Right: w.Right}
	}
	p.Dropout = spec.Dropout{P: j.Dropout.P, Seed: j.Dropout.Seed, Offset: j.Dropout.Offset}
	if m := j.Mask; m != nil {
		mask := &spec.Mask{Shape: m.Shape}
		switch m.Kind {
		case "bool":
			mask.Kind = spec.MaskBool
			mask.Keep = r.bools("mask", m.Shape[:])
		case "additive":
			mask.Kind = spec.MaskAdditive
			mask.Bias = r.float32s("mask", m.Shape[:])
		default:
			return Case{}, fmt.Errorf("case.json: unknown mask kind %q", m.Kind)
		}
		p.Mask = mask
	}
	p.SeqLensQ = r.lens("seqlens_q", j.SeqLensQ)
	p.SeqLensK = r.lens("seqlens_k", j.SeqLensK)
	if p.Dropout.P > 0 {
		c.Keep = r.bools("keep", []int{d.B, d.H, d.N, d.M})
	}
	if r.err != nil {
		return Case{}, r.err
	}
	inf := 0
	for _, l := range c.L {
		if math.IsInf(l, -1) {
			inf++
		}
	}
	if inf != c.MaskedRows {
		return Case{}, fmt.Errorf("lse.npy has %d −Inf rows, case.json says masked_rows = %d", inf, c.MaskedRows)
	}
	if err := spec.Validate(p); err != nil {
		return Case{}, fmt.Errorf("problem: %w", err)
	}
	if got := p.Dims(); got != d {
		return Case{}, fmt.Errorf("problem dims %+v differ from case.json's %+v", got, d)
	}
	c.Problem = p
	return c, nil
}

// ProblemAs returns a copy of the case's problem with Q, K and V converted to dtype dt,
// and dO converted likewise. The options are deep-copied, so the caller may not disturb
// the case through them. The case itself is not modified.
func (c *Case) ProblemAs(dt tensor.DType) (*spec.Problem, *tensor.Tensor, error) {
	if c.Problem == nil || c.DO == nil {
		return nil, nil, errors.New("oracletest: ProblemAs: case has no problem (use Load)")
	}
	src := c.Problem
	p := &spec.Problem{Options: src.Options}
	var err error
	if p.Q, err = src.Q.Convert(dt); err != nil {
		return nil, nil, fmt.Errorf("oracletest: ProblemAs: Q: %w", err)
	}
	if p.K, err = src.K.Convert(dt); err != nil {
		return nil, nil, fmt.Errorf("oracletest: ProblemAs: K: %w", err)
	}
	if p.V, err = src.V.Convert(dt); err != nil {
		return nil, nil, fmt.Errorf("oracletest: ProblemAs: V: %w", err)
	}
	dO, err := c.DO.Convert(dt)
	if err != nil {
		return nil, nil, fmt.Errorf("oracletest: ProblemAs: dO: %w", err)
	}
	if w := src.Window; w != nil {
		cp := *w
		p.Window = &cp
	}
	if m := src.Mask; m != nil {
		cp := *m
		cp.Keep = clone(m.Keep)
		cp.Bias = clone(m.Bias)
		p.Mask = &cp
	}
	p.SeqLensQ = clone(src.SeqLensQ)
	p.SeqLensK = clone(src.SeqLensK)
	return p, dO, nil
}

func clone[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

// RelL2 returns ‖got − want‖₂ / ‖want‖₂ over the finite entries, or the absolute
// ‖got − want‖₂ when want's finite entries are all zero. Entries where got and want are
// the same infinity count as equal (a row with no visible key has L = −Inf on both
// sides); an infinity on one side only, a NaN on either side, or a length mismatch give
// +Inf, so any tolerance check fails.
func RelL2(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var diff, norm float64
	for i, w := range want {
		g := got[i]
		if math.IsNaN(g) || math.IsNaN(w) {
			return math.Inf(1)
		}
		if math.IsInf(g, 0) || math.IsInf(w, 0) {
			if g != w {
				return math.Inf(1)
			}
			continue
		}
		diff += (g - w) * (g - w)
		norm += w * w
	}
	if norm == 0 {
		return math.Sqrt(diff)
	}
	return math.Sqrt(diff / norm)
}

// reader reads the .npy files of one case, keeping the first error.
type reader struct {
	dir string
	err error
}

func (r *reader) fail(name string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%s.npy: %w", name, err)
	}
}

// open parses the header of name.npy, checks its dtype and shape, and returns the
// decoder with the payload size verified, so a truncated file is an error.
func (r *reader) open(name, dtype string, elemSize int, shape []int) *npy.Reader {
	if r.err != nil {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(r.dir, name+".npy"))
	if err != nil {
		r.fail(name, err)
		return nil
	}
	br := bytes.NewReader(raw)
	nr, err := newNpyReader(br)
	if err != nil {
		r.fail(name, err)
		return nil
	}
	h := nr.Header.Descr
	if typ := strings.Trim(h.Type, `'"`); typ != dtype {
		r.fail(name, fmt.Errorf("dtype %q, want %q", typ, dtype))
		return nil
	}
	if h.Fortran {
		r.fail(name, errors.New("array stored in Fortran order; want C order"))
		return nil
	}
	if !slices.Equal(h.Shape, shape) {
		r.fail(name, fmt.Errorf("shape %v, want %v", h.Shape, shape))
		return nil
	}
	if product(shape) < 0 {
		r.fail(name, fmt.Errorf("shape %v has more elements than an int counts", shape))
		return nil
	}
	if want := product(shape) * elemSize; br.Len() != want {
		r.fail(name, fmt.Errorf("payload of %d bytes, want %d for shape %v", br.Len(), want, shape))
		return nil
	}
	return nr
}

// newNpyReader is npy.NewReader, with a panic on a malformed header (npyio v0.14.0 slices
// out of range on some; found by FuzzLoadCase) turned into an error.
func newNpyReader(br *bytes.Reader) (nr *npy.Reader, err error) {
	defer func() {
		if x := recover(); x != nil {
			nr, err = nil, fmt.Errorf("malformed .npy header (%v)", x)
		}
	}()
	return npy.NewReader(br)
}

func (r *reader) float64s(name string, shape []int) []float64 {
	nr := r.open(name, "<f8", 8, shape)
	if nr == nil {
		return nil
	}
	out := make([]float64, product(shape))
	if err := nr.Read(&out); err != nil {
		r.fail(name, err)
		return nil
	}
	return out
}

func (r *reader) float32s(name string, shape []int) []float32 {
	nr := r.open(name, "<f4", 4, shape)
	if nr == nil {
		return nil
	}
	out := make([]float32, product(shape))
	if err := nr.Read(&out); err != nil {
		r.fail(name, err)
		return nil
	}
	return out
}

// bools reads a uint8 array of 0s and 1s.
func (r *reader) bools(name string, shape []int) []bool {
	nr := r.open(name, "|u1", 1, shape)
	if nr == nil {
		return nil
	}
	raw := make([]uint8, product(shape))
	if err := nr.Read(&raw); err != nil {
		r.fail(name, err)
		return nil
	}
	out := make([]bool, len(raw))
	for i, x := range raw {
		if x > 1 {
			r.fail(name, fmt.Errorf("element %d is %d; a bool array holds 0 or 1", i, x))
			return nil
		}
		out[i] = x == 1
	}
	return out
}

func (r *reader) tensor(name string, shape []int) *tensor.Tensor {
	data := r.float64s(name, shape)
	if data == nil {
		return nil
	}
	t, err := tensor.FromFloat64s(tensor.Float64, data, shape...)
	if err != nil {
		r.fail(name, err)
		return nil
	}
	return t
}

// lens reads name.npy when case.json lists lengths, and checks that both agree.
func (r *reader) lens(name string, fromJSON []int) []int {
	if fromJSON == nil {
		if _, err := os.Stat(filepath.Join(r.dir, name+".npy")); err == nil {
			r.fail(name, errors.New("present, but case.json has no lengths"))
		}
		return nil
	}
	nr := r.open(name, "<i8", 8, []int{len(fromJSON)})
	if nr == nil {
		return nil
	}
	raw := make([]int64, len(fromJSON))
	if err := nr.Read(&raw); err != nil {
		r.fail(name, err)
		return nil
	}
	out := make([]int, len(raw))
	for i, x := range raw {
		if int(x) != fromJSON[i] {
			r.fail(name, fmt.Errorf("entry %d is %d, case.json says %d", i, x, fromJSON[i]))
			return nil
		}
		out[i] = int(x)
	}
	return out
}

// product is the element count of shape, or -1 when a dimension is negative or the count
// (times 8 bytes, the widest element) overflows an int.
func product(shape []int) int {
	n := 1
	for _, s := range shape {
		if s < 0 || (s != 0 && n > math.MaxInt/8/s) {
			return -1
		}
		n *= s
	}
	return n
}
