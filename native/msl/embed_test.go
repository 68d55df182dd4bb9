package msl

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFilesListsTheKernels(t *testing.T) {
	assert.Contains(t, Files(), "attention.metal")
	for _, f := range Files() {
		assert.True(t, strings.HasSuffix(f, ".metal"), f)
	}
}

func TestSourceInlinesLocalHeaders(t *testing.T) {
	src, err := Source("attention.metal")
	require.NoError(t, err)
	assert.NotContains(t, src, `#include "attention_params.h"`)
	assert.Contains(t, src, "typedef struct AttentionParams")
	assert.Contains(t, src, "#include <metal_stdlib>", "system includes stay")
	assert.Equal(t, 1, strings.Count(src, "typedef struct AttentionParams"), "each header once")
}

func TestSourceErrors(t *testing.T) {
	_, err := Source("missing.metal")
	assert.Error(t, err)
}

func TestLocalInclude(t *testing.T) {
	tests := []struct {
		line string
		want string
		ok   bool
	}{
		{`#include "a.h"` + "\n", "a.h", true},
		{`  #  include   "b.h" // note`, "b.h", true},
		{`#include <metal_stdlib>`, "", false},
		{`// #include "a.h"`, "", false},
		{`#define X 1`, "", false},
		{`#include "unterminated`, "", false},
	}
	for _, tt := range tests {
		got, ok := localInclude(tt.line)
		assert.Equal(t, tt.ok, ok, tt.line)
		assert.Equal(t, tt.want, got, tt.line)
	}
}
