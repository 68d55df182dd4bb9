package mslplan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/tensor"
)

var dtypes = []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16}

func TestPaddedHeadDim(t *testing.T) {
	tests := []struct {
		d, want int
		ok      bool
	}{
		{1, 32, true}, {8, 32, true}, {32, 32, true}, {33, 64, true}, {59, 64, true}, {64, 64, true},
		{72, 80, true}, {80, 80, true}, {81, 96, true}, {111, 128, true}, {128, 128, true},
		{129, 192, true}, {192, 192, true}, {200, 256, true}, {256, 256, true},
		{0, 0, false}, {-3, 0, false}, {257, 0, false},
	}
	for _, tt := range tests {
		got, ok := PaddedHeadDim(tt.d)
		assert.Equal(t, tt.ok, ok, "D = %d", tt.d)
		assert.Equal(t, tt.want, got, "D = %d", tt.d)
	}
}

// TestTileTableBudgets checks every entry of the table against the reasoning in the
// package documentation.
func TestTileTableBudgets(t *testing.T) {
	for _, f := range []GPUFamily{Apple7, Apple8, Apple9, GPUFamily(10)} {
		tr := traits(f)
		for _, dt := range dtypes {
			for _, d := range HeadDims() {
				tiles, err := TilesFor(f, dt, d)
				require.NoError(t, err)
				size := dt.Size()
				for _, k := range []struct {
					kernel Kernel
					tile   Tile
					step   int // the walked dimension, staged twice
					cap    int
				}{
					{Forward, tiles.Forward, tiles.Forward.BK, maxStepForward},
					{DQ, tiles.DQ, tiles.DQ.BK, maxStepDQ},
					{DKDV, tiles.DKDV, tiles.DKDV.BQ, maxStepDKDV},
				} {
					tl := k.tile
					what := f.String() + " " + dt.String() + " " + k.kernel.String()
					assert.Equal(t, d, tl.D, what)
					assert.True(t, tl.BQ%8 == 0 && tl.BK%8 == 0 && tl.BQ >= 8 && tl.BK >= 8, "%s: %+v", what, tl)
					assert.LessOrEqual(t, k.step, k.cap, what)
					if k.step > 8 {
						assert.LessOrEqual(t, 2*k.step*d*size, tr.budget, "%s: %+v exceeds the family's staging budget", what, tl)
					}
					assert.Zero(t, k.step%8, what)
					if k.step < k.cap {
						assert.Greater(t, 2*(k.step+8)*d*size, tr.budget, "%s: %+v: a step 8 longer would fit", what, tl)
					}
					assert.LessOrEqual(t, ThreadgroupMemory(k.kernel, tl, size), 32<<10, "%s: %+v", what, tl)
					assert.LessOrEqual(t, Registers(k.kernel, tl), RegisterLimit, "%s: %+v", what, tl)
				}
				assert.Equal(t, tr.rows, tiles.Forward.BQ)
				assert.Equal(t, tr.rows, tiles.DQ.BQ)
				assert.Equal(t, tr.rows, tiles.DKDV.BK)
			}
		}
	}
}

func TestTileTableExamples(t *testing.T) {
	tiles, err := TilesFor(Apple7, tensor.Float16, 64)
	require.NoError(t, err)
	assert.Equal(t, Tiles{Forward: Tile{32, 64, 64}, DQ: Tile{32, 32, 64}, DKDV: Tile{32, 32, 64}}, tiles)
	tiles, err = TilesFor(Apple8, tensor.Float32, 128)
	require.NoError(t, err)
	assert.Equal(t, Tiles{Forward: Tile{32, 16, 128}, DQ: Tile{32, 16, 128}, DKDV: Tile{16, 32, 128}}, tiles)
	tiles, err = TilesFor(Apple9, tensor.BFloat16, 59) // runs on D = 64
	require.NoError(t, err)
	assert.Equal(t, Tiles{Forward: Tile{16, 64, 64}, DQ: Tile{16, 32, 64}, DKDV: Tile{32, 16, 64}}, tiles)
}

func TestTilesForRejects(t *testing.T) {
	tests := []struct {
		name string
		f    GPUFamily
		dt   tensor.DType
		d    int
		want string
	}{
		{"old family", GPUFamily(6), tensor.Float16, 64, "apple7"},
		{"float64", Apple7, tensor.Float64, 64, "float64"},
		{"head dim 0", Apple7, tensor.Float32, 0, "head dim 0"},
		{"head dim 257", Apple9, tensor.Float32, 257, "head dim 257"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TilesFor(tt.f, tt.dt, tt.d)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestKernelNames(t *testing.T) {
	tl := Tile{BQ: 32, BK: 64, D: 64}
	assert.Equal(t, "attention_fwd_bq32_bk64_d64_f16", KernelName(Forward, tl, tensor.Float16))
	assert.Equal(t, "attention_bwd_dq_bq32_bk64_d64_f32", KernelName(DQ, tl, tensor.Float32))
	assert.Equal(t, "attention_bwd_dkdv_bq32_bk64_d64_bf16", KernelName(DKDV, tl, tensor.BFloat16))
	assert.Equal(t, "attention_bwd_delta_bf16", KernelName(Delta, Tile{}, tensor.BFloat16))
	assert.Equal(t, "forward", Forward.String())
	assert.Equal(t, "apple9", Apple9.String())
}

func TestInstancesCoverTheTable(t *testing.T) {
	ins := Instances()
	names := map[string]bool{}
	for i, in := range ins {
		assert.False(t, names[in.Name()], "duplicate %s", in.Name())
		names[in.Name()] = true
		if i > 0 {
			assert.Less(t, ins[i-1].Name(), in.Name(), "sorted")
		}
		assert.True(t, strings.HasPrefix(in.Name(), "attention_"))
	}
	for _, f := range []GPUFamily{Apple7, Apple8, Apple9} {
		for _, dt := range dtypes {
			for d := 1; d <= MaxHeadDim; d++ {
				tiles, err := TilesFor(f, dt, d)
				require.NoError(t, err)
				for _, n := range []string{
					KernelName(Forward, tiles.Forward, dt), KernelName(DQ, tiles.DQ, dt),
					KernelName(DKDV, tiles.DKDV, dt), KernelName(Delta, Tile{}, dt),
				} {
					assert.True(t, names[n], "%s is selected for %v %v D=%d but not instantiated", n, f, dt, d)
				}
			}
		}
	}
	// 3 dtypes × 7 head dims × 3 kernels × 2 tables, and 3 Delta and 3 Reduce kernels.
	assert.Len(t, ins, 3*7*3*2+3+3)
	for _, dt := range dtypes {
		assert.True(t, names[KernelName(Reduce, Tile{}, dt)], "the %v reduction is instantiated", dt)
	}
}

// TestRegisterBudgetEveryInstance: the register model of every instantiation Metal
// compiles stays within the 128 registers a lane can address, and the model counts what
// the kernels keep (a change that drops a term fails here, not on a Mac).
func TestRegisterBudgetEveryInstance(t *testing.T) {
	for _, in := range Instances() {
		r := Registers(in.Kernel, in.Tile)
		assert.LessOrEqual(t, r, RegisterLimit, "%s: %d live 32-bit values per lane", in.Name(), r)
		assert.Positive(t, r, in.Name())
		t.Logf("%-40s %3d registers", in.Name(), r)
	}
	// Spot checks of the model against a hand count.
	// dK/dV f16 apple7 D = 128 (32 queries per step): dK and dV 2·32, S^T and dP^T 2·8,
	// temporaries 12, scalars 34.
	assert.Equal(t, 64+16+12+34, Registers(DKDV, Tile{BQ: 32, BK: 32, D: 128}))
	// dK/dV at D = 256 is split by output: one accumulator of 64 per part.
	assert.Equal(t, 2, DKDVParts(Tile{BQ: 16, BK: 32, D: 256}))
	assert.Equal(t, 1, DKDVParts(Tile{BQ: 32, BK: 32, D: 128}))
	assert.Equal(t, 64+8+12+34, Registers(DKDV, Tile{BQ: 16, BK: 32, D: 256}))
	// Without the split, D = 256 would need 2·64 accumulators: over the limit.
	assert.Greater(t, 2*64+8+12+34, RegisterLimit)
}

func TestLibraries(t *testing.T) {
	for _, in := range Instances() {
		lib := in.Library()
		if in.DType == tensor.BFloat16 {
			assert.Equal(t, "attention_bf16", lib.Name, in.Name())
			assert.Equal(t, [2]int{3, 1}, [2]int{lib.LanguageMajor, lib.LanguageMinor}, in.Name())
			assert.Equal(t, "1", lib.Macros["ATTN_LIBRARY_BFLOAT"], in.Name())
		} else {
			assert.Equal(t, "attention", lib.Name, in.Name())
			assert.Equal(t, [2]int{3, 0}, [2]int{lib.LanguageMajor, lib.LanguageMinor}, in.Name())
			assert.Empty(t, lib.Macros, in.Name())
		}
	}
}

func TestInstanceShards(t *testing.T) {
	all := Instances()
	for _, n := range []int{1, 3, 7} {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			for _, in := range InstanceShard(i, n) {
				seen[in.Name()]++
			}
		}
		assert.Len(t, seen, len(all), "n = %d", n)
		for name, c := range seen {
			assert.Equal(t, 1, c, "%s in %d shards of %d", name, c, n)
		}
	}
	assert.Nil(t, InstanceShard(3, 3))
	assert.Nil(t, InstanceShard(0, 0))
	assert.Equal(t, InstanceShard(1, 4), InstanceShard(1, 4), "deterministic")
}
