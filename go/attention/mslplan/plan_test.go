package mslplan

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

func problem(t *testing.T, dt tensor.DType, b, h, hkv, n, m, d int) *spec.Problem {
	rng := rand.New(rand.NewPCG(1, 2))
	return &spec.Problem{
		Q: attntest.Tensor(t, rng, dt, b, h, n, d),
		K: attntest.Tensor(t, rng, dt, b, hkv, m, d),
		V: attntest.Tensor(t, rng, dt, b, hkv, m, d),
	}
}

func byIndex(d Dispatch) map[int]Binding {
	m := map[int]Binding{}
	for _, b := range d.Buffers {
		m[b.Index] = b
	}
	return m
}

func TestPlanGeometry(t *testing.T) {
	// GQA, serial over the group's heads (TestPlanHeadSplit covers the head split).
	p := problem(t, tensor.Float16, 2, 4, 2, 33, 47, 64)
	pl, err := New(Request{Problem: p, Family: Apple7, SerialDKDV: true})
	require.NoError(t, err)
	assert.False(t, pl.DKDVHeads)
	assert.Zero(t, pl.DKDVScratchBytes())

	assert.Equal(t, tensor.Float16, pl.DType)
	f := pl.Forward
	assert.Equal(t, "attention_fwd_bq32_bk64_d64_f16", f.Name)
	assert.Equal(t, [3]int{2, 8, 1}, f.Groups, "ceil(33/32) query blocks × B·H")
	assert.Equal(t, [3]int{128, 1, 1}, f.Threads, "4 SIMD groups")
	assert.Equal(t, 2*64*(64+8)*2, f.ThreadgroupMemory)

	dl := pl.Delta
	assert.Equal(t, "attention_bwd_delta_f16", dl.Name)
	assert.Equal(t, [3]int{(2*4*33 + 7) / 8, 1, 1}, dl.Groups)
	assert.Equal(t, [3]int{256, 1, 1}, dl.Threads)
	assert.Zero(t, dl.ThreadgroupMemory)

	kv := pl.DKDV
	assert.Equal(t, "attention_bwd_dkdv_bq32_bk32_d64_f16", kv.Name)
	assert.Equal(t, [3]int{2, 4, 2}, kv.Groups, "ceil(47/32) key blocks × B·Hkv, split by output: 8 < MinGroupsDKDV threadgroups")
	assert.Equal(t, [3]int{128, 1, 1}, kv.Threads)
	assert.Equal(t, 2*32*(64+8)*2+2*32*4, kv.ThreadgroupMemory)

	dq := pl.DQ
	assert.Equal(t, "attention_bwd_dq_bq32_bk32_d64_f16", dq.Name)
	assert.Equal(t, [3]int{2, 8, 1}, dq.Groups)
	assert.Equal(t, [3]int{128, 1, 1}, dq.Threads)

	assert.Equal(t, []Dispatch{f, dl, kv, dq}, pl.Dispatches())
	assert.Equal(t, []Dispatch{dl, kv, dq}, pl.Backward())

	// Bindings: indices ascending, Params everywhere, the right sizes and directions.
	q := 2 * 4 * 33 * 64 * 2
	k := 2 * 2 * 47 * 64 * 2
	rows := 2 * 4 * 33 * 4
	want := map[string][]Binding{
		"forward": {{Index: BufQ, Name: "Q", Bytes: q}, {Index: BufK, Name: "K", Bytes: k}, {Index: BufV, Name: "V", Bytes: k},
			{Index: BufMask, Name: "Mask", Unused: true}, {Index: BufLensQ, Name: "LensQ", Unused: true}, {Index: BufLensK, Name: "LensK", Unused: true},
			{Index: BufO, Name: "O", Bytes: q, Written: true}, {Index: BufL, Name: "L", Bytes: rows, Written: true},
			{Index: BufParams, Name: "Params", Bytes: ParamsSize}},
		"delta": {{Index: BufO, Name: "O", Bytes: q}, {Index: BufDO, Name: "dO", Bytes: q},
			{Index: BufDelta, Name: "Delta", Bytes: rows, Written: true}, {Index: BufParams, Name: "Params", Bytes: ParamsSize}},
		"dkdv": {{Index: BufQ, Name: "Q", Bytes: q}, {Index: BufK, Name: "K", Bytes: k}, {Index: BufV, Name: "V", Bytes: k},
			{Index: BufMask, Name: "Mask", Unused: true}, {Index: BufLensQ, Name: "LensQ", Unused: true}, {Index: BufLensK, Name: "LensK", Unused: true},
			{Index: BufL, Name: "L", Bytes: rows}, {Index: BufDO, Name: "dO", Bytes: q}, {Index: BufDelta, Name: "Delta", Bytes: rows},
			{Index: BufDK, Name: "dK", Bytes: k, Written: true}, {Index: BufDV, Name: "dV", Bytes: k, Written: true},
			{Index: BufParams, Name: "Params", Bytes: ParamsSize},
			{Index: BufDKPart, Name: "dKPart", Unused: true}, {Index: BufDVPart, Name: "dVPart", Unused: true}},
		"dq": {{Index: BufQ, Name: "Q", Bytes: q}, {Index: BufK, Name: "K", Bytes: k}, {Index: BufV, Name: "V", Bytes: k},
			{Index: BufMask, Name: "Mask", Unused: true}, {Index: BufLensQ, Name: "LensQ", Unused: true}, {Index: BufLensK, Name: "LensK", Unused: true},
			{Index: BufL, Name: "L", Bytes: rows}, {Index: BufDO, Name: "dO", Bytes: q}, {Index: BufDelta, Name: "Delta", Bytes: rows},
			{Index: BufDQ, Name: "dQ", Bytes: q, Written: true}, {Index: BufParams, Name: "Params", Bytes: ParamsSize}},
	}
	for _, d := range pl.Dispatches() {
		assert.Equal(t, want[d.Kernel.String()], d.Buffers, d.Kernel.String())
	}

	pr := pl.Params
	assert.Equal(t, Params{
		Batch: 2, Heads: 4, KVHeads: 2, Group: 2, N: 33, M: 47, D: 64,
		QStride: [3]uint32{4 * 33 * 64, 33 * 64, 64}, KStride: [3]uint32{2 * 47 * 64, 47 * 64, 64},
		VStride: [3]uint32{2 * 47 * 64, 47 * 64, 64}, OStride: [3]uint32{4 * 33 * 64, 33 * 64, 64},
		DOStride: [3]uint32{4 * 33 * 64, 33 * 64, 64}, DQStride: [3]uint32{4 * 33 * 64, 33 * 64, 64},
		DKStride: [3]uint32{2 * 47 * 64, 47 * 64, 64}, DVStride: [3]uint32{2 * 47 * 64, 47 * 64, 64},
		Scale: float32(1 / math.Sqrt(64)), WindowLeft: WindowUnbounded, WindowRight: WindowUnbounded,
	}, pr)
}

func TestPlanOptions(t *testing.T) {
	p := problem(t, tensor.BFloat16, 2, 3, 1, 10, 12, 40)
	keep := make([]bool, 2*1*10*12)
	for i := range keep {
		keep[i] = i%3 != 0
	}
	p.Options = spec.Options{
		Scale:    0.3,
		Causal:   spec.CausalBottomRight,
		Mask:     &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{2, 1, 10, 12}, Keep: keep},
		Window:   &spec.Window{Left: 4, Right: spec.WindowUnbounded},
		Softcap:  5,
		Dropout:  spec.Dropout{P: 0.25, Seed: 0x0123456789abcdef, Offset: 0xfedcba9876543210},
		SeqLensQ: []int{10, 3},
		SeqLensK: []int{0, 12},
	}
	pl, err := New(Request{Problem: p, Family: Apple9})
	require.NoError(t, err)
	pr := pl.Params
	assert.Equal(t, float32(0.3), pr.Scale)
	assert.Equal(t, float32(5), pr.Softcap)
	assert.Equal(t, uint32(CausalBottomRight), pr.Causal)
	assert.Equal(t, int32(4), pr.WindowLeft)
	assert.Equal(t, int32(WindowUnbounded), pr.WindowRight)
	assert.Equal(t, uint32(MaskBool), pr.MaskKind)
	assert.Equal(t, [3]uint32{10 * 12, 0, 12}, pr.MaskStride, "heads broadcast: head stride 0")
	assert.Equal(t, uint32(1), pr.HasLensQ)
	assert.Equal(t, uint32(1), pr.HasLensK)
	assert.Equal(t, uint32(1), pr.DropoutOn)
	assert.Equal(t, philox.Threshold(0.25), pr.DropoutThreshold)
	assert.Equal(t, float32(1/0.75), pr.DropoutScale)
	assert.Equal(t, [4]uint32{0x89abcdef, 0x01234567, 0x76543210, 0xfedcba98}, [4]uint32{pr.SeedLo, pr.SeedHi, pr.OffsetLo, pr.OffsetHi})
	assert.Equal(t, uint32(3), pr.Group)

	b := byIndex(pl.Forward)
	assert.Equal(t, Binding{Index: BufMask, Name: "Mask", Bytes: 2 * 10 * 12}, b[BufMask])
	assert.Equal(t, Binding{Index: BufLensQ, Name: "LensQ", Bytes: 8}, b[BufLensQ])
	assert.Equal(t, Binding{Index: BufLensK, Name: "LensK", Bytes: 8}, b[BufLensK])
	assert.Equal(t, "attention_fwd_bq16_bk64_d64_bf16", pl.Forward.Name, "D = 40 runs on 64")
	assert.Equal(t, [3]int{1, 6, 1}, pl.Forward.Groups)
	assert.Equal(t, [3]int{64, 1, 1}, pl.Forward.Threads)

	p.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 3, 10, 12}, Bias: make([]float32, 3*10*12)}
	pl, err = New(Request{Problem: p, Family: Apple9})
	require.NoError(t, err)
	assert.Equal(t, uint32(MaskAdditive), pl.Params.MaskKind)
	assert.Equal(t, [3]uint32{0, 10 * 12, 12}, pl.Params.MaskStride, "batch broadcast")
	assert.Equal(t, 4*3*10*12, byIndex(pl.Forward)[BufMask].Bytes)
}

// TestPlanReadsViewsInPlace: a permuted, sliced Q (rows of a fused projection) and
// strided O and dO are read with their own strides and offsets.
func TestPlanReadsViewsInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := problem(t, tensor.Float32, 2, 3, 3, 5, 7, 16)
	parent := attntest.Tensor(t, rng, tensor.Float32, 2, 7, 3, 16) // [B, N+2, H, D]
	s, err := parent.Slice(1, 1, 6)
	require.NoError(t, err)
	q, err := s.Permute(0, 2, 1, 3) // [B, H, N, D], strides (7·3·16, 16, 3·16, 1), offset 3·16
	require.NoError(t, err)
	p.Q = q
	o := attntest.Tensor(t, rng, tensor.Float32, 2, 3, 5, 16)
	dOParent := attntest.Tensor(t, rng, tensor.Float32, 2, 5, 3, 16)
	dO, err := dOParent.Permute(0, 2, 1, 3)
	require.NoError(t, err)

	pl, err := New(Request{Problem: p, O: o, DO: dO, Family: Apple7})
	require.NoError(t, err)
	assert.Equal(t, [3]uint32{7 * 3 * 16, 16, 3 * 16}, pl.Params.QStride)
	assert.Equal(t, [3]uint32{3 * 5 * 16, 5 * 16, 16}, pl.Params.OStride)
	assert.Equal(t, [3]uint32{5 * 3 * 16, 16, 3 * 16}, pl.Params.DOStride)
	assert.Equal(t, [3]uint32{3 * 5 * 16, 5 * 16, 16}, pl.Params.DQStride, "outputs are contiguous")
	bq := byIndex(pl.Forward)[BufQ]
	assert.Equal(t, 3*16*4, bq.Offset)
	assert.Equal(t, (1+(2-1)*7*3*16+(3-1)*16+(5-1)*3*16+15)*4, bq.Bytes, "first to last element")
	assert.Equal(t, bq, byIndex(pl.DQ)[BufQ])
	bdo := byIndex(pl.Delta)[BufDO]
	assert.Equal(t, (1+(2-1)*5*3*16+(3-1)*16+(5-1)*3*16+15)*4, bdo.Bytes)
}

func TestPlanUnsupported(t *testing.T) {
	tests := []struct {
		name string
		req  func() Request
		want string
	}{
		{"float64", func() Request { return Request{Problem: problem(t, tensor.Float64, 1, 1, 1, 4, 4, 8), Family: Apple7} }, "float64"},
		{"head dim 300", func() Request {
			return Request{Problem: problem(t, tensor.Float16, 1, 1, 1, 2, 2, 300), Family: Apple7}
		}, "head dim 300"},
		{"apple6", func() Request {
			return Request{Problem: problem(t, tensor.Float16, 1, 1, 1, 2, 2, 8), Family: GPUFamily(6)}
		}, "apple7"},
		{"head-dim stride", func() Request {
			p := problem(t, tensor.Float32, 1, 1, 1, 8, 8, 8)
			kt, err := p.K.Transpose(2, 3) // [1, 1, 8, 8] with stride 8 along D
			require.NoError(t, err)
			p.K = kt
			return Request{Problem: p, Family: Apple7}
		}, "stride 8 along the head dim"},
		{"grid y", func() Request {
			return Request{Problem: problem(t, tensor.Float32, 1, 65536, 1, 1, 1, 1), Family: Apple9}
		}, "grid y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.req())
			require.Error(t, err)
			assert.ErrorIs(t, err, spec.ErrUnsupported)
			assert.NotErrorIs(t, err, spec.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestPlanInvalid(t *testing.T) {
	p := problem(t, tensor.Float16, 1, 2, 2, 3, 4, 8)
	_, err := New(Request{Problem: nil, Family: Apple7})
	assert.ErrorIs(t, err, spec.ErrInvalid)

	bad := *p
	bad.Dropout.P = 1
	_, err = New(Request{Problem: &bad, Family: Apple7})
	var ae *spec.ArgError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "Options.Dropout.P", ae.Arg)

	wrong, err := tensor.New(tensor.Float32, 1, 2, 3, 8) // float32 O for float16 Q
	require.NoError(t, err)
	_, err = New(Request{Problem: p, O: wrong, Family: Apple7})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "Saved.O", ae.Arg)
	short, err := tensor.New(tensor.Float16, 1, 2, 2, 8)
	require.NoError(t, err)
	_, err = New(Request{Problem: p, DO: short, Family: Apple7})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "dO", ae.Arg)
}

func TestPlanTilesOverride(t *testing.T) {
	p := problem(t, tensor.Float32, 1, 2, 1, 20, 30, 24)
	tiles := Tiles{Forward: Tile{16, 8, 32}, DQ: Tile{16, 8, 32}, DKDV: Tile{8, 16, 32}}
	pl, err := New(Request{Problem: p, Family: Apple7, Tiles: &tiles, SerialDKDV: true})
	require.NoError(t, err)
	assert.Equal(t, "attention_fwd_bq16_bk8_d32_f32", pl.Forward.Name)
	assert.Equal(t, [3]int{2, 2, 1}, pl.Forward.Groups)
	assert.Equal(t, [3]int{64, 1, 1}, pl.Forward.Threads)
	assert.Equal(t, "attention_bwd_dkdv_bq8_bk16_d32_f32", pl.DKDV.Name)
	assert.Equal(t, [3]int{2, 1, 2}, pl.DKDV.Groups, "under-filled: split by output")
	assert.Equal(t, [3]int{64, 1, 1}, pl.DKDV.Threads)

	for _, bad := range []Tiles{
		{Forward: Tile{12, 8, 32}, DQ: Tile{16, 8, 32}, DKDV: Tile{8, 16, 32}},
		{Forward: Tile{16, 8, 32}, DQ: Tile{16, 0, 32}, DKDV: Tile{8, 16, 32}},
		{Forward: Tile{16, 8, 32}, DQ: Tile{16, 8, 32}, DKDV: Tile{8, 16, 16}},
	} {
		_, err := New(Request{Problem: p, Family: Apple7, Tiles: &bad})
		require.Error(t, err, "%+v", bad)
		assert.NotErrorIs(t, err, spec.ErrUnsupported)
	}
}

func TestAppendMaskAndLens(t *testing.T) {
	m := &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{1, 1, 1, 3}, Keep: []bool{true, false, true}}
	assert.Equal(t, []byte{9, 1, 0, 1}, AppendMask([]byte{9}, m))
	a := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, 1, 2}, Bias: []float32{1.5, float32(math.Inf(-1))}}
	got := AppendMask(nil, a)
	require.Len(t, got, 8)
	assert.Equal(t, math.Float32bits(1.5), binary.LittleEndian.Uint32(got))
	assert.Equal(t, uint32(0xff800000), binary.LittleEndian.Uint32(got[4:]))
	assert.Nil(t, AppendMask(nil, nil))
	assert.Equal(t, []byte{3, 0, 0, 0, 0, 0, 0, 0}, AppendLens(nil, []int{3, 0}))
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := New(Request{Problem: problem(t, tensor.Float64, 1, 1, 1, 2, 2, 8), Family: Apple7})
	var ue *spec.UnsupportedError
	require.True(t, errors.As(err, &ue))
	assert.Equal(t, ExecutorName, ue.Executor)
}

func constantValues(cs []Constant) map[string]bool {
	m := map[string]bool{}
	for i, c := range cs {
		if c.Index != i {
			panic("constants out of index order")
		}
		m[c.Name] = c.Value
	}
	return m
}

// TestPlanConstants: each function constant is true exactly when the problem uses the
// feature; aligned only when no kernel of the plan meets an edge block.
func TestPlanConstants(t *testing.T) {
	// Plain: N, M multiples of 64 at D = 64 → aligned, nothing else.
	p := problem(t, tensor.Float16, 1, 2, 2, 128, 192, 64)
	pl, err := New(Request{Problem: p, Family: Apple7})
	require.NoError(t, err)
	require.Len(t, pl.Constants, NumConstants)
	want := map[string]bool{
		"attn_fc_causal": false, "attn_fc_window": false, "attn_fc_mask_bool": false,
		"attn_fc_mask_additive": false, "attn_fc_softcap": false, "attn_fc_dropout": false,
		"attn_fc_lens_q": false, "attn_fc_lens_k": false, "attn_fc_aligned": true,
		"attn_fc_vec4": true, "attn_fc_split_dkdv": true, // 6 key blocks: under-filled
	}
	assert.Equal(t, want, constantValues(pl.Constants))

	// Every feature on, and edges: N = 33, D = 59 (runs on 64).
	p = problem(t, tensor.Float32, 2, 2, 1, 33, 47, 59)
	bias := make([]float32, 33*47)
	p.Options = spec.Options{
		Causal:  spec.CausalBottomRight,
		Window:  &spec.Window{Left: 5, Right: -1},
		Mask:    &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, 33, 47}, Bias: bias},
		Softcap: 30,
		Dropout: spec.Dropout{P: 0.1, Seed: 3},
	}
	p.SeqLensQ = []int{33, 20}
	p.SeqLensK = []int{47, 10}
	pl, err = New(Request{Problem: p, Family: Apple9})
	require.NoError(t, err)
	want = map[string]bool{
		"attn_fc_causal": true, "attn_fc_window": true, "attn_fc_mask_bool": false,
		"attn_fc_mask_additive": true, "attn_fc_softcap": true, "attn_fc_dropout": true,
		"attn_fc_lens_q": true, "attn_fc_lens_k": true, "attn_fc_aligned": false,
		"attn_fc_vec4":       false, // D = 59: rows are not 4-element aligned
		"attn_fc_split_dkdv": true,
	}
	assert.Equal(t, want, constantValues(pl.Constants))

	// Each edge alone breaks alignment.
	for _, tt := range []struct {
		name    string
		n, m, d int
	}{{"N", 80, 128, 64}, {"M", 128, 96, 64}, {"D", 128, 128, 60}} {
		pl, err := New(Request{Problem: problem(t, tensor.Float16, 1, 1, 1, tt.n, tt.m, tt.d), Family: Apple7})
		require.NoError(t, err)
		assert.False(t, constantValues(pl.Constants)["attn_fc_aligned"], tt.name)
	}

	// Vector loads need 16-byte aligned starts and strides in multiples of 4 elements: a
	// view one row into a [1, 1, 9, 64] float16 tensor starts 128 bytes in (aligned); one
	// column in (2 bytes) is not.
	base := problem(t, tensor.Float16, 1, 1, 1, 9, 9, 64)
	for _, tt := range []struct {
		name      string
		dim, from int
		want      bool
	}{{"row offset", 2, 1, true}, {"column offset", 3, 1, false}} {
		k, err := base.K.Slice(tt.dim, tt.from, tt.from+8)
		require.NoError(t, err)
		q, err := base.Q.Slice(tt.dim, tt.from, tt.from+8)
		require.NoError(t, err)
		v, err := base.V.Slice(tt.dim, tt.from, tt.from+8)
		require.NoError(t, err)
		pl, err := New(Request{Problem: &spec.Problem{Q: q, K: k, V: v}, Family: Apple7})
		require.NoError(t, err)
		assert.Equal(t, tt.want, constantValues(pl.Constants)["attn_fc_vec4"], tt.name)
	}
}

// TestPlanGradDType: float32 gradients for float16 inputs size the gradient bindings for
// float32 and set the parameter; the default keeps the input dtype.
func TestPlanGradDType(t *testing.T) {
	p := problem(t, tensor.Float16, 1, 2, 1, 40, 50, 64)
	pl, err := New(Request{Problem: p, Family: Apple7})
	require.NoError(t, err)
	assert.Equal(t, tensor.Float16, pl.GradDType)
	assert.Equal(t, uint32(0), pl.Params.GradF32)
	assert.Equal(t, 2*40*64*2, byIndex(pl.DQ)[BufDQ].Bytes)

	p.Options.GradDType = tensor.Float32
	pl, err = New(Request{Problem: p, Family: Apple7})
	require.NoError(t, err)
	assert.Equal(t, tensor.Float32, pl.GradDType)
	assert.Equal(t, uint32(1), pl.Params.GradF32)
	assert.Equal(t, 2*40*64*4, byIndex(pl.DQ)[BufDQ].Bytes)
	require.True(t, pl.DKDVHeads, "MQA, 2 key blocks")
	assert.Equal(t, 50*64*4, byIndex(pl.Reduce)[BufDK].Bytes)
	assert.Equal(t, 50*64*4, byIndex(pl.Reduce)[BufDV].Bytes)
	pl, err = New(Request{Problem: p, Family: Apple7, SerialDKDV: true})
	require.NoError(t, err)
	assert.Equal(t, 50*64*4, byIndex(pl.DKDV)[BufDK].Bytes)
	assert.Equal(t, 50*64*4, byIndex(pl.DKDV)[BufDV].Bytes)
	assert.Equal(t, 2*40*64*2, byIndex(pl.Forward)[BufO].Bytes, "O keeps the input dtype")
	assert.Equal(t, LibraryFor(tensor.Float16), pl.Library)
}

// TestPlanSplitsDKDV: above D = 128 the dK/dV grid always has two parts along z; below,
// only when it has fewer than MinGroupsDKDV threadgroups; the constant says which.
func TestPlanSplitsDKDV(t *testing.T) {
	for _, tt := range []struct{ b, hkv, m, d, parts int }{
		{1, 1, 20, 64, 2},    // 1 key block: under-filled
		{4, 8, 64, 64, 1},    // 2 key blocks × 32 = 64 threadgroups
		{4, 8, 33, 128, 1},   // 33 keys at BK = 32: 2 blocks × 32 = 64 threadgroups
		{1, 1, 2048, 128, 1}, // 64 key blocks
		{1, 1, 2016, 128, 2}, // 63 key blocks
		{1, 2, 640, 192, 2},  // always split above 128
		{1, 1, 20, 256, 2},
	} {
		p := problem(t, tensor.Float16, tt.b, tt.hkv, tt.hkv, 8, tt.m, tt.d)
		pl, err := New(Request{Problem: p, Family: Apple7})
		require.NoError(t, err)
		assert.False(t, pl.DKDVHeads, "no GQA: nothing to split over heads")
		groups := pl.DKDV.Groups[0] * pl.DKDV.Groups[1]
		want := tt.parts
		if tt.d <= SplitDKDVAbove {
			want = 1
			if groups < MinGroupsDKDV {
				want = 2
			}
		}
		assert.Equal(t, want, tt.parts, "the table's expectation for %+v (%d groups)", tt, groups)
		assert.Equal(t, tt.parts, pl.DKDV.Groups[2], "%+v", tt)
		assert.Equal(t, tt.parts == 2, constantValues(pl.Constants)["attn_fc_split_dkdv"], "%+v", tt)
		assert.Equal(t, 1, pl.DQ.Groups[2])
		assert.Equal(t, 1, pl.Forward.Groups[2])
	}
}

// TestPlanHeadSplit: GQA and MQA whose B·Hkv·⌈M/BK⌉ dK/dV threadgroups are fewer than
// MinGroupsDKDV run one threadgroup per query head, write float32 partials and reduce
// them; the grid, bindings, parameter and the output split after it follow the rule.
func TestPlanHeadSplit(t *testing.T) {
	for _, tt := range []struct {
		b, h, hkv, m, d int
		heads           bool
		parts           int
	}{
		{1, 8, 1, 100, 64, true, 2},     // MQA, 4 key blocks × 8 heads = 32: still under-filled
		{1, 32, 1, 100, 64, true, 1},    // 4 × 32 = 128 after the head split
		{2, 8, 2, 1000, 64, false, 1},   // 32 key blocks × 2·2 = 128 threadgroups: enough
		{2, 8, 2, 200, 64, true, 1},     // 7 key blocks × 4 = 28; × 16 query heads = 112
		{1, 16, 4, 2048, 128, false, 1}, // 64 key blocks × 4: enough without
		{1, 4, 4, 20, 64, false, 2},     // no group to split
		{1, 8, 1, 40, 256, true, 2},     // above D = 128 always two parts
	} {
		p := problem(t, tensor.Float16, tt.b, tt.h, tt.hkv, 24, tt.m, tt.d)
		pl, err := New(Request{Problem: p, Family: Apple7})
		require.NoError(t, err)
		kb := (tt.m + pl.Tiles.DKDV.BK - 1) / pl.Tiles.DKDV.BK
		wantHeads := tt.h > tt.hkv && kb*tt.b*tt.hkv < MinGroupsDKDV
		assert.Equal(t, wantHeads, tt.heads, "the table's expectation for %+v", tt)
		assert.Equal(t, tt.heads, pl.DKDVHeads, "%+v", tt)
		assert.Equal(t, tt.parts, pl.DKDV.Groups[2], "%+v", tt)
		assert.Equal(t, tt.parts == 2, constantValues(pl.Constants)["attn_fc_split_dkdv"], "%+v", tt)
		if !tt.heads {
			assert.Equal(t, uint32(0), pl.Params.DKDVHeads)
			assert.Len(t, pl.Backward(), 3)
			assert.Equal(t, [3]int{kb, tt.b * tt.hkv, tt.parts}, pl.DKDV.Groups)
			continue
		}
		assert.Equal(t, uint32(1), pl.Params.DKDVHeads)
		assert.Equal(t, [3]int{kb, tt.b * tt.h, tt.parts}, pl.DKDV.Groups, "one threadgroup per query head")
		assert.Equal(t, []Dispatch{pl.Delta, pl.DKDV, pl.Reduce, pl.DQ}, pl.Backward())
		assert.Equal(t, []Dispatch{pl.Forward, pl.Delta, pl.DKDV, pl.Reduce, pl.DQ}, pl.Dispatches())
		part := tt.b * tt.h * tt.m * tt.d * 4
		k := tt.b * tt.hkv * tt.m * tt.d * 2
		assert.Equal(t, 2*part, pl.DKDVScratchBytes())
		kv := byIndex(pl.DKDV)
		assert.Equal(t, Binding{Index: BufDKPart, Name: "dKPart", Bytes: part, Written: true}, kv[BufDKPart])
		assert.Equal(t, Binding{Index: BufDVPart, Name: "dVPart", Bytes: part, Written: true}, kv[BufDVPart])
		assert.True(t, kv[BufDK].Unused, "DKDV does not write dK itself")
		assert.True(t, kv[BufDV].Unused)
		r := pl.Reduce
		assert.Equal(t, Reduce, r.Kernel)
		assert.Equal(t, "attention_bwd_dkdv_reduce_f16", r.Name)
		assert.Equal(t, [3]int{(tt.b*tt.hkv*tt.m*tt.d + ReduceThreads - 1) / ReduceThreads, 1, 1}, r.Groups)
		assert.Equal(t, [3]int{ReduceThreads, 1, 1}, r.Threads)
		assert.Zero(t, r.ThreadgroupMemory)
		assert.Equal(t, pl.Constants, r.Constants)
		assert.Equal(t, []Binding{
			{Index: BufDK, Name: "dK", Bytes: k, Written: true}, {Index: BufDV, Name: "dV", Bytes: k, Written: true},
			{Index: BufParams, Name: "Params", Bytes: ParamsSize},
			{Index: BufDKPart, Name: "dKPart", Bytes: part}, {Index: BufDVPart, Name: "dVPart", Bytes: part},
		}, r.Buffers)

		serial, err := New(Request{Problem: p, Family: Apple7, SerialDKDV: true})
		require.NoError(t, err)
		assert.False(t, serial.DKDVHeads, "SerialDKDV forbids the split")
		assert.Equal(t, tt.b*tt.hkv, serial.DKDV.Groups[1])
	}

	// Partials past MaxDKDVScratch keep the serial walk: MQA with 1024 query heads,
	// 1 key block, D = 256: 2·1024·32·256·4 = 64 MiB fits; 4096 heads (256 MiB + ...) do not.
	p := problem(t, tensor.Float16, 1, 1024, 1, 1, 32, 256)
	pl, err := New(Request{Problem: p, Family: Apple7})
	require.NoError(t, err)
	assert.True(t, pl.DKDVHeads)
	assert.LessOrEqual(t, pl.DKDVScratchBytes(), MaxDKDVScratch)
	p = problem(t, tensor.Float16, 1, 4160, 1, 1, 32, 256)
	pl, err = New(Request{Problem: p, Family: Apple7})
	require.NoError(t, err)
	assert.False(t, pl.DKDVHeads, "2·4160·32·256·4 bytes > MaxDKDVScratch")
}
