//go:build cgo && linux

package msltest

/*
#cgo CPPFLAGS: -I../..
#include <stddef.h>
#include "native/msl/attention_params.h"

typedef struct {
	const char* name;
	size_t offset;
	size_t size;
} msltest_field;

#define MSLTEST_FIELD(x) {#x, offsetof(AttentionParams, x), sizeof(((AttentionParams*)0)->x)}

static const msltest_field msltest_fields[] = {
	MSLTEST_FIELD(batch), MSLTEST_FIELD(heads), MSLTEST_FIELD(kv_heads), MSLTEST_FIELD(group),
	MSLTEST_FIELD(n), MSLTEST_FIELD(m), MSLTEST_FIELD(d),
	MSLTEST_FIELD(q_stride), MSLTEST_FIELD(k_stride), MSLTEST_FIELD(v_stride),
	MSLTEST_FIELD(o_stride), MSLTEST_FIELD(do_stride), MSLTEST_FIELD(dq_stride),
	MSLTEST_FIELD(dk_stride), MSLTEST_FIELD(dv_stride),
	MSLTEST_FIELD(scale), MSLTEST_FIELD(softcap),
	MSLTEST_FIELD(causal), MSLTEST_FIELD(window_left), MSLTEST_FIELD(window_right),
	MSLTEST_FIELD(mask_kind), MSLTEST_FIELD(mask_stride),
	MSLTEST_FIELD(has_lens_q), MSLTEST_FIELD(has_lens_k),
	MSLTEST_FIELD(dropout_on), MSLTEST_FIELD(dropout_threshold), MSLTEST_FIELD(dropout_scale),
	MSLTEST_FIELD(seed_lo), MSLTEST_FIELD(seed_hi), MSLTEST_FIELD(offset_lo), MSLTEST_FIELD(offset_hi),
	MSLTEST_FIELD(grad_f32),
	MSLTEST_FIELD(dkdv_heads),
};

static int msltest_nfields(void) { return sizeof(msltest_fields) / sizeof(msltest_fields[0]); }
static const char* msltest_field_name(int i) { return msltest_fields[i].name; }
static size_t msltest_field_offset(int i) { return msltest_fields[i].offset; }
static size_t msltest_field_size(int i) { return msltest_fields[i].size; }
static size_t msltest_params_size(void) { return sizeof(AttentionParams); }

typedef struct {
	const char* name;
	int value;
} msltest_const;

#define MSLTEST_CONST(x) {#x, (x)}

static const msltest_const msltest_consts[] = {
	MSLTEST_CONST(ATTN_BUF_Q), MSLTEST_CONST(ATTN_BUF_K), MSLTEST_CONST(ATTN_BUF_V),
	MSLTEST_CONST(ATTN_BUF_MASK), MSLTEST_CONST(ATTN_BUF_LENS_Q), MSLTEST_CONST(ATTN_BUF_LENS_K),
	MSLTEST_CONST(ATTN_BUF_O), MSLTEST_CONST(ATTN_BUF_L), MSLTEST_CONST(ATTN_BUF_DO),
	MSLTEST_CONST(ATTN_BUF_DELTA), MSLTEST_CONST(ATTN_BUF_DQ), MSLTEST_CONST(ATTN_BUF_DK),
	MSLTEST_CONST(ATTN_BUF_DV), MSLTEST_CONST(ATTN_BUF_PARAMS),
	MSLTEST_CONST(ATTN_BUF_DK_PART), MSLTEST_CONST(ATTN_BUF_DV_PART), MSLTEST_CONST(ATTN_REDUCE_THREADS),
	MSLTEST_CONST(ATTN_DELTA_ROWS),
	MSLTEST_CONST(ATTN_CAUSAL_NONE), MSLTEST_CONST(ATTN_CAUSAL_TOP_LEFT),
	MSLTEST_CONST(ATTN_CAUSAL_BOTTOM_RIGHT),
	MSLTEST_CONST(ATTN_MASK_NONE), MSLTEST_CONST(ATTN_MASK_BOOL), MSLTEST_CONST(ATTN_MASK_ADDITIVE),
	MSLTEST_CONST(ATTN_WINDOW_UNBOUNDED),
};

static int msltest_nconsts(void) { return sizeof(msltest_consts) / sizeof(msltest_consts[0]); }
static const char* msltest_const_name(int i) { return msltest_consts[i].name; }
static int msltest_const_value(int i) { return msltest_consts[i].value; }
*/
import "C"

import "github.com/orchard-ml/orchard/go/attention/mslplan"

// cLayout reads native/msl/attention_params.h through the C compiler.
func cLayout() (layout, bool) {
	var l layout
	for i := 0; i < int(C.msltest_nfields()); i++ {
		l.fields = append(l.fields, mslplan.Field{
			Name:   C.GoString(C.msltest_field_name(C.int(i))),
			Offset: int(C.msltest_field_offset(C.int(i))),
			Size:   int(C.msltest_field_size(C.int(i))),
		})
	}
	l.size = int(C.msltest_params_size())
	l.consts = map[string]int{}
	for i := 0; i < int(C.msltest_nconsts()); i++ {
		l.consts[C.GoString(C.msltest_const_name(C.int(i)))] = int(C.msltest_const_value(C.int(i)))
	}
	return l, true
}
