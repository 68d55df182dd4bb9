package msltest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/tensor"
	msl "github.com/orchard-ml/orchard/native/msl"
)

var update = flag.Bool("update", false, "rewrite the generated instantiation block of native/msl/attention.metal")

// emuConfig is one set of kernels compiled into the emulator: the three tiled kernels
// of one dtype and head dim, with either a family's production tiles or the small test
// tiles (family 0) that make problems of a few dozen rows span several blocks.
type emuConfig struct {
	dt     tensor.DType
	family mslplan.GPUFamily // 0: testTiles
	d      int               // instantiated head dim
}

// testTiles are the smallest tiles the kernels take: many blocks, partial last blocks,
// and several SIMD groups per threadgroup, on problems of at most 40 rows.
func testTiles(d int) mslplan.Tiles {
	return mslplan.Tiles{
		Forward: mslplan.Tile{BQ: 16, BK: 8, D: d},
		DQ:      mslplan.Tile{BQ: 16, BK: 8, D: d},
		DKDV:    mslplan.Tile{BQ: 8, BK: 16, D: d},
	}
}

func (c emuConfig) tiles() mslplan.Tiles {
	if c.family == 0 {
		return testTiles(c.d)
	}
	t, err := mslplan.TilesFor(c.family, c.dt, c.d)
	if err != nil {
		panic(err) // a typo in emulated; the tests fail loudly
	}
	return t
}

func (c emuConfig) String() string {
	fam := "test tiles"
	if c.family != 0 {
		fam = c.family.String()
	}
	return fmt.Sprintf("%s d%d %s", mslplan.TypeName(c.dt), c.d, fam)
}

// emulated is the subset of instantiations the emulator compiles. Together they reach
// every code path of the kernels: Q cached in registers (D ≤ 128) or re-read (D > 128) in
// the forward; operands cached (D ≤ 64) or re-read in the backward kernels; every dtype;
// one and several blocks per problem; head dims padded up; the production tiles of both
// tile tables.
var emulated = []emuConfig{
	{tensor.Float32, 0, 32},
	{tensor.Float32, 0, 64},
	{tensor.Float32, 0, 128},
	{tensor.Float32, 0, 192},
	{tensor.Float32, 0, 256},
	{tensor.Float16, 0, 32},
	{tensor.Float16, 0, 80},
	{tensor.BFloat16, 0, 32},
	{tensor.BFloat16, 0, 96},
	{tensor.Float32, mslplan.Apple7, 32},
	{tensor.Float32, mslplan.Apple9, 64},
	{tensor.Float16, mslplan.Apple7, 64},
	{tensor.Float16, mslplan.Apple9, 128},
	{tensor.BFloat16, mslplan.Apple7, 64},
}

// emulatedInstances lists the instances of emulated plus the Delta and Reduce kernels.
func emulatedInstances() []mslplan.Instance {
	seen := map[string]mslplan.Instance{}
	for _, c := range emulated {
		t := c.tiles()
		for _, in := range []mslplan.Instance{
			{Kernel: mslplan.Forward, Tile: t.Forward, DType: c.dt},
			{Kernel: mslplan.DKDV, Tile: t.DKDV, DType: c.dt},
			{Kernel: mslplan.DQ, Tile: t.DQ, DType: c.dt},
			{Kernel: mslplan.Delta, DType: c.dt},
			{Kernel: mslplan.Reduce, DType: c.dt},
		} {
			seen[in.Name()] = in
		}
	}
	out := make([]mslplan.Instance, 0, len(seen))
	for _, in := range seen {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

const (
	blockBegin = "// BEGIN GENERATED INSTANTIATIONS"
	blockEnd   = "// END GENERATED INSTANTIATIONS"
)

// instantiationBlock renders the generated block of attention.metal: every instance of
// the tile table (mslplan.Instances), for Metal and the emulator alike, and under MSLEMU
// (defined by tools/mslemu's shim) also the small test tiles of emulated. All of it sits
// inside #ifndef MSLEMU_KGEN_SHARD, which tools/mslemu's generator uses to spread the
// instantiations over several translation units (Metal never defines it).
func instantiationBlock() string {
	production := map[string]bool{}
	for _, in := range mslplan.Instances() {
		production[in.Name()] = true
	}
	var b strings.Builder
	b.WriteString(blockBegin + "\n")
	b.WriteString("// Written by `go test ./tools/msltest -run TestInstantiations -update` from the tile\n")
	b.WriteString("// table of go/attention/mslplan (every instance, for Metal and for tools/mslemu) and the\n")
	b.WriteString("// test tiles in tools/msltest/instantiations_test.go (tools/mslemu only). Do not edit by\n")
	b.WriteString("// hand. tools/mslemu spreads what MSLEMU_KGEN_SHARD hides over several translation units.\n")
	b.WriteString("#ifndef MSLEMU_KGEN_SHARD\n")
	b.WriteString("#ifdef MSLEMU\n")
	for _, in := range emulatedInstances() {
		if !production[in.Name()] {
			b.WriteString(instantiationLine(in))
		}
	}
	b.WriteString("#endif\n")
	for _, in := range mslplan.Instances() {
		b.WriteString(instantiationLine(in))
	}
	b.WriteString("#endif\n")
	b.WriteString(blockEnd + "\n")
	return b.String()
}

func instantiationLine(in mslplan.Instance) string {
	mslType := map[tensor.DType]string{tensor.Float32: "float", tensor.Float16: "half", tensor.BFloat16: "bfloat"}[in.DType]
	tn := mslplan.TypeName(in.DType)
	t := in.Tile
	switch in.Kernel {
	case mslplan.Forward:
		return fmt.Sprintf("ATTN_INSTANTIATE_FWD(%s, %s, %d, %d, %d)\n", mslType, tn, t.BQ, t.BK, t.D)
	case mslplan.Delta:
		return fmt.Sprintf("ATTN_INSTANTIATE_DELTA(%s, %s)\n", mslType, tn)
	case mslplan.DKDV:
		return fmt.Sprintf("ATTN_INSTANTIATE_DKDV(%s, %s, %d, %d, %d)\n", mslType, tn, t.BQ, t.BK, t.D)
	case mslplan.DQ:
		return fmt.Sprintf("ATTN_INSTANTIATE_DQ(%s, %s, %d, %d, %d)\n", mslType, tn, t.BQ, t.BK, t.D)
	case mslplan.Reduce:
		return fmt.Sprintf("ATTN_INSTANTIATE_DKDV_REDUCE(%s, %s)\n", mslType, tn)
	}
	return ""
}

// TestInstantiationsUpToDate checks that attention.metal instantiates exactly what the
// tile table can select (and the emulator's subset); with -update it rewrites the block.
func TestInstantiationsUpToDate(t *testing.T) {
	src, err := msl.Sources.ReadFile("attention.metal")
	require.NoError(t, err)
	text := string(src)
	begin := strings.Index(text, blockBegin)
	end := strings.Index(text, blockEnd)
	require.True(t, begin >= 0 && end > begin, "attention.metal lacks the generated block markers")
	end += len(blockEnd) + 1
	want := instantiationBlock()
	if *update {
		path := filepath.Join("..", "..", "native", "msl", "attention.metal")
		require.NoError(t, os.WriteFile(path, []byte(text[:begin]+want+text[end:]), 0o644))
		t.Logf("rewrote %s; now run go generate ./tools/mslemu", path)
		return
	}
	assert.Equal(t, want, text[begin:end],
		"the instantiations are stale: go test ./tools/msltest -run TestInstantiations -update")
}

// TestEmulatedSubsetCoversEveryPath checks the claims made for the subset.
func TestEmulatedSubsetCoversEveryPath(t *testing.T) {
	has := map[string]bool{}
	for _, c := range emulated {
		tl := c.tiles()
		f, q, k := tl.Forward, tl.DQ, tl.DKDV
		has["dtype "+mslplan.TypeName(c.dt)] = true
		has[fmt.Sprintf("fwd cached Q %v", f.D <= 128)] = true
		has[fmt.Sprintf("dq cached %v", q.D <= 64)] = true
		has[fmt.Sprintf("dkdv cached %v", k.D <= 64)] = true
		has[fmt.Sprintf("fwd several SIMD groups %v", f.BQ > 8)] = true
		if c.family != 0 {
			has["family "+c.family.String()] = true
		}
	}
	for _, want := range []string{
		"dtype f32", "dtype f16", "dtype bf16",
		"fwd cached Q true", "fwd cached Q false",
		"dq cached true", "dq cached false", "dkdv cached true", "dkdv cached false",
		"fwd several SIMD groups true", "family apple7", "family apple9",
	} {
		assert.True(t, has[want], "the emulated subset lacks: %s", want)
	}
	for _, d := range mslplan.HeadDims() {
		found := false
		for _, c := range emulated {
			found = found || (c.dt == tensor.Float32 && c.d == d)
		}
		if d == 80 || d == 96 {
			continue // float32 at 80 and 96 differs from 64 and 128 only in the fragment count
		}
		assert.True(t, found, "float32 head dim %d is not emulated", d)
	}
}
