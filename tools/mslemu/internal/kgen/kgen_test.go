package kgen

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLint(t *testing.T) {
	src := `
threadgroup float tile[64];                  // fine
threadgroup float* p = tile + 1;             // 3: pointer variable
void f(const threadgroup float* src) {}      // 4: pointer parameter
void g(threadgroup float (&t)[4]) {}         // 5: reference parameter
float x = 0.5;                               // 6: double literal
float y = 0.5f + 1e-3f + .25f + 0x1p3f + 2;  // fine
half z = 1.0h;                               // 8: half suffix
float w = v.x; threadgroup_barrier(mem_flags::mem_threadgroup);  // fine
/* threadgroup float* in a comment */ // 0.5 in a comment
float e = 1e5;                               // 11: double literal
`
	got := Lint("k.metal", []byte(src))
	var lines []string
	for _, g := range got {
		lines = append(lines, strings.SplitN(g, ": ", 2)[0])
	}
	assert.Equal(t, []string{"k.metal:3", "k.metal:4", "k.metal:5", "k.metal:6", "k.metal:8", "k.metal:11"}, lines, "%s", strings.Join(got, "\n"))
}

func TestParse(t *testing.T) {
	// Preprocessor output: a macro-expanded instantiation on one line, a template
	// definition (not a kernel), a plain kernel and a helper instantiation.
	text := `# 1 "k.metal"
template <typename T, int B> [[kernel]] void k(device const T* a [[buffer(0)]], uint3 g [[threadgroup_position_in_grid]]) { x[[0]]; }
template [[host_name("k_f32_" "b8")]] [[kernel]] void k<float, 8>(device const float* a [[buffer(0)]], uint3 g [[threadgroup_position_in_grid]]);
# 7 "k.metal"
kernel void plain(device float* out [[buffer(2)]], constant P& p [[buffer(1)]], uint lane [[thread_index_in_simdgroup]]) {}
template void helper<float>(float);
`
	ks, err := Parse("k.metal", text)
	require.NoError(t, err)
	require.Len(t, ks, 2)
	assert.Equal(t, "k_f32_b8", ks[0].HostName)
	assert.Equal(t, "k < float , 8 >", ks[0].Call)
	assert.Equal(t, "k.metal:2", ks[0].Line)
	assert.Equal(t, []Param{
		{Type: "device const float *", Name: "a", Buffer: 0},
		{Type: "uint3", Name: "g", Buffer: -1, Position: "threadgroup_position_in_grid"},
	}, ks[0].Params)
	assert.Equal(t, "plain", ks[1].HostName)
	assert.Equal(t, "k.metal:7", ks[1].Line)
	assert.True(t, ks[1].Params[0].Writable())
	assert.False(t, ks[1].Params[1].Writable())
	assert.Equal(t, "thread_index_in_simdgroup", ks[1].Params[2].Position)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`template [[kernel]] void k<float>(device float* a [[buffer(0)]]);`, "without [[host_name"},
		{`kernel void k(device float* a) {}`, "has no [[buffer(i)]] or position attribute"},
		{`kernel void k(device float* a [[buffer(0)]], device float* b [[buffer(0)]]) {}`, "both use buffer 0"},
		{`kernel void k(texture2d<float> t [[texture(0)]]) {}`, "not supported"},
		{`kernel void k(device float* a [[buffer(N)]]) {}`, "not an integer"},
	} {
		_, err := Parse("k.metal", tc.text)
		assert.ErrorContains(t, err, tc.want, tc.text)
	}
}

func TestParseFunctionConstantsAndHints(t *testing.T) {
	text := `# 1 "k.metal"
namespace a { namespace b {
constant bool has_mask [[function_constant(3)]];
constant int kind [[function_constant(4)]];
} }
constant constexpr int fixed = 4;
template <typename T, int BQ> [[kernel, max_total_threads_per_threadgroup(BQ * 4)]] void k(device const T* m [[buffer(3), function_constant(a::b::has_mask)]]) {
  if (is_function_constant_defined(a::b::kind)) {}
}
template [[host_name("k8")]] [[kernel]] void k<float, 8>(device const float* m [[buffer(3), function_constant(a::b::has_mask)]]);
[[kernel]] [[max_total_threads_per_threadgroup(96)]] void plain(device float* out [[buffer(0)]]) {}
`
	f, err := ParseFile("k.metal", text)
	require.NoError(t, err)
	assert.Equal(t, []FConst{
		{Name: "a::b::has_mask", Index: 3, Type: "bool", Line: "k.metal:2"},
		{Name: "a::b::kind", Index: 4, Type: "int", Line: "k.metal:3", Optional: true},
	}, f.Constants)
	require.Len(t, f.Kernels, 2)
	assert.Equal(t, "BQ * 4", f.Kernels[0].MaxThreads)
	assert.Equal(t, "k", f.Kernels[0].Template)
	assert.Equal(t, "float , 8", f.Kernels[0].TemplateArgs)
	assert.Equal(t, 3, f.Kernels[0].Params[0].Buffer)
	assert.Equal(t, "typename T , int BQ", f.Templates["k"].Params)
	assert.Equal(t, "96", f.Kernels[1].MaxThreads)

	for _, tc := range []struct{ text, want string }{
		{"constant bool x [[function_constant(1)]];\nconstant bool y [[function_constant(1)]];", "both use index 1"},
		{"constant bool x [[function_constant(1)]];\nconstant bool y = !x;", "initialised from function constant x"},
		{"constant bool x [[function_constant(1)]];\nconstant bool y = is_function_constant_defined(x);", "initialised from function constant is_function_constant_defined"},
		{"bool x [[function_constant(1)]];", "declared `constant T name"},
		{"constant bool x [[function_constant(n)]];", "not an integer"},
		{"kernel void k(device float* a [[buffer(0), thread_index_in_simdgroup]]) {}", "more than one binding"},
	} {
		_, err := ParseFile("k.metal", tc.text)
		assert.ErrorContains(t, err, tc.want, tc.text)
	}
	// Derived constants that do not read function constants are fine.
	_, err = ParseFile("k.metal", "constant bool x [[function_constant(1)]];\nconstant float y = 2.0f;\nconstant constexpr bool z = true;")
	assert.NoError(t, err)
}

func TestLintLoopPragmas(t *testing.T) {
	src := `#pragma once
#pragma clang loop unroll(full)
for (int i = 0; i < 4; i++) {}
#pragma clang loop unroll(disable) vectorize(enable)
  while (x) {}
#pragma unroll
#pragma clang loop unroll_count(4)
do {} while (0);
#pragma unroll 8
for (;;) {}
#pragma nounroll

for (;;) {}
#pragma clang loop unroll(always)
for (;;) {}
#pragma clang loop unrol(full)
for (;;) {}
#pragma unroll 0
for (;;) {}
#pragma clang loop unroll(full)
x = 1;
#define U _Pragma("clang loop unroll(full)")
#define V _Pragma("clang loop unroll_count(-1)")
#pragma clang loop unroll_count(3)
`
	got := Lint("k.metal", []byte(src))
	var lines []string
	for _, g := range got {
		lines = append(lines, strings.SplitN(g, ": ", 2)[0])
	}
	assert.Equal(t, []string{"k.metal:14", "k.metal:16", "k.metal:18", "k.metal:20", "k.metal:24", "k.metal:23"}, lines, "%s", strings.Join(got, "\n"))
}
