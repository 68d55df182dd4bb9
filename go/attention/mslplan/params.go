package mslplan

import "encoding/binary"

// Buffer indices: the [[buffer(i)]] of each kernel argument, the same in every kernel
// (ATTN_BUF_* in native/msl/attention_params.h).
const (
	BufQ      = 0  // [B, H, N, D]
	BufK      = 1  // [B, Hkv, M, D]
	BufV      = 2  // [B, Hkv, M, D]
	BufMask   = 3  // bool mask as bytes 0/1, or additive mask as float32
	BufLensQ  = 4  // [B] int32
	BufLensK  = 5  // [B] int32
	BufO      = 6  // [B, H, N, D]
	BufL      = 7  // [B, H, N] float32
	BufDO     = 8  // [B, H, N, D]
	BufDelta  = 9  // [B, H, N] float32
	BufDQ     = 10 // [B, H, N, D]
	BufDK     = 11 // [B, Hkv, M, D]
	BufDV     = 12 // [B, Hkv, M, D]
	BufParams = 13 // Params
	BufDKPart = 14 // [B, H, M, d] float32 dK partials per query head (Plan.DKDVHeads)
	BufDVPart = 15 // [B, H, M, d] float32 dV partials per query head (Plan.DKDVHeads)
	// NumBuffers is one more than the largest index.
	NumBuffers = 16
)

// DeltaRows is the number of rows of Delta one threadgroup of the Delta kernel computes
// (ATTN_DELTA_ROWS): one SIMD group per row.
const DeltaRows = 8

// ReduceThreads is the threadgroup size of the dK/dV reduction kernel
// (ATTN_REDUCE_THREADS): one thread per element of dK and dV.
const ReduceThreads = 256

// Values of Params.Causal, Params.MaskKind and the window bounds (ATTN_CAUSAL_*,
// ATTN_MASK_*, ATTN_WINDOW_UNBOUNDED).
const (
	CausalNone        = 0
	CausalTopLeft     = 1
	CausalBottomRight = 2

	MaskNone     = 0
	MaskBool     = 1
	MaskAdditive = 2

	WindowUnbounded = -1
)

// Params is the Go mirror of AttentionParams in native/msl/attention_params.h: the same
// fields in the same order, every one 4 bytes, so Encode's bytes are the C struct's.
// Strides are in elements and index [batch, head, row]; the head-dim stride is 1.
type Params struct {
	Batch   uint32 // B
	Heads   uint32 // H
	KVHeads uint32 // Hkv
	Group   uint32 // H / Hkv
	N       uint32 // query rows
	M       uint32 // key rows
	D       uint32 // head dim (the real one; the kernel's may be larger)

	QStride  [3]uint32
	KStride  [3]uint32
	VStride  [3]uint32
	OStride  [3]uint32
	DOStride [3]uint32
	DQStride [3]uint32
	DKStride [3]uint32
	DVStride [3]uint32

	Scale   float32 // resolved scale
	Softcap float32 // 0: off

	Causal      uint32 // Causal*
	WindowLeft  int32  // ≥ 0 or WindowUnbounded
	WindowRight int32  // ≥ 0 or WindowUnbounded
	MaskKind    uint32 // Mask*
	MaskStride  [3]uint32
	HasLensQ    uint32
	HasLensK    uint32

	DropoutOn        uint32
	DropoutThreshold uint32  // philox.Threshold(p)
	DropoutScale     float32 // 1 / (1 − p)
	SeedLo           uint32
	SeedHi           uint32
	OffsetLo         uint32
	OffsetHi         uint32

	GradF32 uint32 // 1: dQ, dK, dV written as float32 (Options.GradDType), 0: as the input dtype

	// DKDVHeads: 1 runs the dK/dV kernel per query head, writing partials that the
	// reduction kernel sums (Plan.DKDVHeads); 0 walks each group's heads in one
	// threadgroup.
	DKDVHeads uint32
}

// ParamsSize is the size in bytes of AttentionParams.
var ParamsSize = binary.Size(Params{})

// Encode returns the little-endian bytes of p (Apple GPUs are little-endian), laid out
// as the C struct: ready for setBytes at BufParams.
func (p Params) Encode() []byte {
	b := make([]byte, 0, ParamsSize)
	b, _ = binary.Append(b, binary.LittleEndian, &p)
	return b
}

// Field is one field of Params as the C struct lays it out.
type Field struct {
	Name   string // the C name, e.g. "q_stride"
	Offset int    // bytes from the start of the struct
	Size   int    // bytes (12 for a [3] array)
}

// Fields lists the fields of AttentionParams with their C names, offsets and sizes, in
// order. tools/msltest checks them against the header compiled by the C compiler.
func Fields() []Field {
	names := []struct {
		name string
		n    int // 4-byte words
	}{
		{"batch", 1}, {"heads", 1}, {"kv_heads", 1}, {"group", 1}, {"n", 1}, {"m", 1}, {"d", 1},
		{"q_stride", 3}, {"k_stride", 3}, {"v_stride", 3}, {"o_stride", 3}, {"do_stride", 3},
		{"dq_stride", 3}, {"dk_stride", 3}, {"dv_stride", 3},
		{"scale", 1}, {"softcap", 1},
		{"causal", 1}, {"window_left", 1}, {"window_right", 1}, {"mask_kind", 1}, {"mask_stride", 3},
		{"has_lens_q", 1}, {"has_lens_k", 1},
		{"dropout_on", 1}, {"dropout_threshold", 1}, {"dropout_scale", 1},
		{"seed_lo", 1}, {"seed_hi", 1}, {"offset_lo", 1}, {"offset_hi", 1},
		{"grad_f32", 1}, {"dkdv_heads", 1},
	}
	out := make([]Field, len(names))
	off := 0
	for i, f := range names {
		out[i] = Field{Name: f.name, Offset: off, Size: 4 * f.n}
		off += 4 * f.n
	}
	return out
}

// Function constant indices (ATTN_FC_* in native/msl/attention_params.h): the
// [[function_constant(i)]] of each bool the kernels are specialised on.
const (
	FCCausal       = 0
	FCWindow       = 1
	FCMaskBool     = 2
	FCMaskAdditive = 3
	FCSoftcap      = 4
	FCDropout      = 5
	FCLensQ        = 6
	FCLensK        = 7
	FCAligned      = 8
	FCVec4         = 9
	FCSplitDKDV    = 10
	// NumConstants is one more than the largest index.
	NumConstants = 11
)

// Constant is one function constant of a plan: set it at Index (the name is the MSL
// declaration's, attn_fc_*) when creating a pipeline (MTLFunctionConstantValues
// setConstantValue:type:MTLDataTypeBool atIndex:), or per launch in the emulator.
type Constant struct {
	Index int
	Name  string
	Value bool
}

var constantNames = [NumConstants]string{
	FCCausal: "attn_fc_causal", FCWindow: "attn_fc_window", FCMaskBool: "attn_fc_mask_bool",
	FCMaskAdditive: "attn_fc_mask_additive", FCSoftcap: "attn_fc_softcap", FCDropout: "attn_fc_dropout",
	FCLensQ: "attn_fc_lens_q", FCLensK: "attn_fc_lens_k", FCAligned: "attn_fc_aligned",
	FCVec4: "attn_fc_vec4", FCSplitDKDV: "attn_fc_split_dkdv",
}

// constants returns the function constants of a plan with parameters pr and tiles t, in
// index order: each feature true exactly when the problem uses it; FCAligned when no
// kernel of the plan meets an edge block (N and M multiples of every tile's rows and
// keys, the real head dim equal to the instantiated one, no per-batch lengths); FCVec4
// as vec4 says (see vec4Aligned); FCSplitDKDV when the dK/dV dispatch has two parts.
func constants(pr Params, t Tiles, vec4, split bool) []Constant {
	n, m := int(pr.N), int(pr.M)
	aligned := pr.HasLensQ == 0 && pr.HasLensK == 0 && int(pr.D) == t.Forward.D
	for _, tl := range []Tile{t.Forward, t.DQ, t.DKDV} {
		aligned = aligned && n%tl.BQ == 0 && m%tl.BK == 0 && tl.D == int(pr.D)
	}
	v := [NumConstants]bool{
		FCCausal:       pr.Causal != CausalNone,
		FCWindow:       pr.WindowLeft >= 0 || pr.WindowRight >= 0,
		FCMaskBool:     pr.MaskKind == MaskBool,
		FCMaskAdditive: pr.MaskKind == MaskAdditive,
		FCSoftcap:      pr.Softcap > 0,
		FCDropout:      pr.DropoutOn != 0,
		FCLensQ:        pr.HasLensQ != 0,
		FCLensK:        pr.HasLensK != 0,
		FCAligned:      aligned,
		FCVec4:         vec4,
		FCSplitDKDV:    split,
	}
	out := make([]Constant, NumConstants)
	for i := range out {
		out[i] = Constant{Index: i, Name: constantNames[i], Value: v[i]}
	}
	return out
}

// LogitLimit is the bound the kernels clamp a biased logit to (kLogitLimit in
// attention.metal), in the natural-log domain, before scaling it by log2(e): 2^126. A
// finite additive bias such as −math.MaxFloat32 (torch.finfo(float32).min) then stays
// finite, so a row whose visible keys all carry it gets uniform attention (as the
// reference computes) instead of being treated as fully hidden; only −Inf hides an
// element. The clamp shows in L: such a row's L is about −LogitLimit, not the bias
// itself, and since the backward pass recomputes probabilities from L in float32, its
// gradients are exact only where dO is zero on that row (the usual case: padding).
const LogitLimit = 0x1p126
