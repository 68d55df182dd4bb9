package msltest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// ShardEnv names the environment variable that splits TestEveryInstantiation: "i/n" runs
// the configs at positions ≡ i (mod n) of everyConfig's fixed order, so n runs (CI jobs,
// or days) cover every instantiation exactly once. Unset: all of them.
const ShardEnv = "ORCHARD_MSL_SHARD"

// shardFromEnv parses ShardEnv.
func shardFromEnv() (i, n int, err error) {
	v := os.Getenv(ShardEnv)
	if v == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(v, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("%s=%q: want i/n with 0 ≤ i < n", ShardEnv, v)
	}
	return i, n, nil
}

// everyConfig lists a config per (family, dtype, instantiated head dim): their production
// tiles select, between them, every instantiation of mslplan.Instances.
func everyConfig() []emuConfig {
	var out []emuConfig
	for _, f := range []mslplan.GPUFamily{mslplan.Apple7, mslplan.Apple9} {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16} {
			for _, d := range mslplan.HeadDims() {
				out = append(out, emuConfig{dt, f, d})
			}
		}
	}
	return out
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// alignedCase draws a problem that meets no edge block with cfg's production tiles: N and
// M multiples of every tile's rows and keys (at least two blocks of the largest), the
// instantiated head dim itself, contiguous tensors and no per-batch lengths, with random
// causal masking, window, masks, softcap and dropout. Its plan sets attn_fc_aligned and
// attn_fc_vec4: the specialised paths the ragged problems never take.
func alignedCase(rng *rand.Rand, i int, cfg emuConfig) (*testCase, error) {
	tl := cfg.tiles()
	n, m := 1, 1
	for _, t := range []mslplan.Tile{tl.Forward, tl.DQ, tl.DKDV} {
		n, m = lcm(n, t.BQ), lcm(m, t.BK)
	}
	for n < 48 {
		n *= 2
	}
	for m < 48 {
		m *= 2
	}
	d := spec.Dims{B: 1, H: 2, Hkv: 1, N: n, M: m, D: cfg.d}
	desc := []string{fmt.Sprintf("#%d aligned %v B=%d H=%d Hkv=%d N=%d M=%d D=%d", i, cfg, d.B, d.H, d.Hkv, d.N, d.M, d.D)}
	c := &testCase{cfg: cfg, tiles: tl}
	q, q64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.H, d.N, d.D}, false)
	if err != nil {
		return nil, err
	}
	k, k64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, d.M, d.D}, false)
	if err != nil {
		return nil, err
	}
	v, v64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, d.M, d.D}, false)
	if err != nil {
		return nil, err
	}
	if c.dO, c.dO64, err = randTensor(rng, cfg.dt, [4]int{d.B, d.H, d.N, d.D}, false); err != nil {
		return nil, err
	}
	o := randOptions(rng, d, &desc)
	o.SeqLensQ, o.SeqLensK = nil, nil
	c.p = &spec.Problem{Q: q, K: k, V: v, Options: o}
	c.p64 = &spec.Problem{Q: q64, K: k64, V: v64, Options: o}
	c.name = strings.Join(desc, " ")
	return c, nil
}

// TestEveryInstantiation runs every kernel instantiation Metal can be asked to run
// (mslplan.Instances: both tile tables, every dtype and head dim) under emulation against
// the reference: per (family, dtype, head dim), one fresh random problem with ragged sizes
// (up to 100 rows, head dims padded up, every option of the contract drawn at random) and
// one aligned to every tile, which takes the specialised paths (attn_fc_aligned,
// attn_fc_vec4). Each config draws from its own seed (the -seed flag and its position),
// so a shard draws the same problems as a full run. ORCHARD_MSL_SHARD=i/n runs one shard
// (see ShardEnv).
func TestEveryInstantiation(t *testing.T) {
	requireEmulator(t)
	shard, shards, err := shardFromEnv()
	require.NoError(t, err)
	want := map[string]bool{}
	got := map[string]bool{}
	for idx, cfg := range everyConfig() {
		if idx%shards != shard {
			continue
		}
		tl := cfg.tiles()
		for _, in := range []mslplan.Instance{
			{Kernel: mslplan.Forward, Tile: tl.Forward, DType: cfg.dt}, {Kernel: mslplan.Delta, DType: cfg.dt},
			{Kernel: mslplan.DKDV, Tile: tl.DKDV, DType: cfg.dt}, {Kernel: mslplan.DQ, Tile: tl.DQ, DType: cfg.dt},
			{Kernel: mslplan.Reduce, DType: cfg.dt},
		} {
			want[in.Name()] = true
		}
		rng := rand.New(rand.NewPCG(*seed, uint64(1000+idx)))
		ragged, err := randCaseSized(rng, idx, cfg, 100)
		require.NoError(t, err)
		aligned, err := alignedCase(rng, idx, cfg)
		require.NoError(t, err)
		for _, c := range []*testCase{ragged, aligned} {
			t.Run(c.name, func(t *testing.T) {
				pl := planFor(t, c)
				if c == aligned {
					assert.True(t, pl.Constants[mslplan.FCAligned].Value, "the aligned problem must take the aligned path")
					assert.True(t, pl.Constants[mslplan.FCVec4].Value, "the aligned problem must take the vector staging")
					assert.True(t, pl.DKDVHeads, "the aligned problem (MQA, a few key blocks) must take the head split")
				}
				checkCase(t, c)
				for _, d := range pl.Dispatches() {
					got[d.Name] = true
				}
			})
		}
	}
	if shards == 1 {
		all := map[string]bool{}
		for _, in := range mslplan.Instances() {
			all[in.Name()] = true
		}
		assert.Equal(t, all, want, "the configs must select every instantiation")
	}
	assert.Equal(t, want, got, "every instantiation of the configs run")
	t.Logf("%d kernel instantiations run (shard %d/%d)", len(got), shard, shards)
}
