package msltest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
)

// TestParamsLayoutMatchesHeader holds mslplan's mirror of AttentionParams (what Encode
// writes) and its constants against native/msl/attention_params.h as the C compiler
// reads it.
func TestParamsLayoutMatchesHeader(t *testing.T) {
	l, ok := cLayout()
	if !ok {
		t.Skip("the C header is read through cgo on Linux only: skipping the layout check")
	}
	assert.Equal(t, mslplan.Fields(), l.fields, "field names, offsets and sizes")
	assert.Equal(t, mslplan.ParamsSize, l.size, "sizeof(AttentionParams)")
	assert.Equal(t, len(mslplan.Params{}.Encode()), l.size)

	want := map[string]int{
		"ATTN_BUF_Q": mslplan.BufQ, "ATTN_BUF_K": mslplan.BufK, "ATTN_BUF_V": mslplan.BufV,
		"ATTN_BUF_MASK": mslplan.BufMask, "ATTN_BUF_LENS_Q": mslplan.BufLensQ, "ATTN_BUF_LENS_K": mslplan.BufLensK,
		"ATTN_BUF_O": mslplan.BufO, "ATTN_BUF_L": mslplan.BufL, "ATTN_BUF_DO": mslplan.BufDO,
		"ATTN_BUF_DELTA": mslplan.BufDelta, "ATTN_BUF_DQ": mslplan.BufDQ, "ATTN_BUF_DK": mslplan.BufDK,
		"ATTN_BUF_DV": mslplan.BufDV, "ATTN_BUF_PARAMS": mslplan.BufParams,
		"ATTN_BUF_DK_PART": mslplan.BufDKPart, "ATTN_BUF_DV_PART": mslplan.BufDVPart,
		"ATTN_REDUCE_THREADS": mslplan.ReduceThreads,
		"ATTN_DELTA_ROWS":     mslplan.DeltaRows,
		"ATTN_CAUSAL_NONE":    mslplan.CausalNone, "ATTN_CAUSAL_TOP_LEFT": mslplan.CausalTopLeft,
		"ATTN_CAUSAL_BOTTOM_RIGHT": mslplan.CausalBottomRight,
		"ATTN_MASK_NONE":           mslplan.MaskNone, "ATTN_MASK_BOOL": mslplan.MaskBool, "ATTN_MASK_ADDITIVE": mslplan.MaskAdditive,
		"ATTN_WINDOW_UNBOUNDED": mslplan.WindowUnbounded,
	}
	require.Len(t, l.consts, len(want))
	assert.Equal(t, want, l.consts)
	assert.Equal(t, mslplan.BufDVPart+1, mslplan.NumBuffers)
}
