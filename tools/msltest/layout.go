package msltest

import "github.com/orchard-ml/orchard/go/attention/mslplan"

// layout is AttentionParams as the C compiler lays it out, and the header's integer
// constants: what the layout test holds mslplan's mirror against.
type layout struct {
	fields []mslplan.Field
	size   int            // sizeof(AttentionParams)
	consts map[string]int // ATTN_* by name
}
