package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseShape(t *testing.T) {
	tests := []struct {
		in   string
		want shape
		err  bool
	}{
		{"b1h8n512d64", shape{B: 1, H: 8, Hkv: 8, N: 512, M: 512, D: 64}, false},
		{"b2h8k2n256m1024d128c", shape{B: 2, H: 8, Hkv: 2, N: 256, M: 1024, D: 128, Causal: true}, false},
		{"n64", shape{B: 1, H: 8, Hkv: 8, N: 64, M: 64, D: 64}, false},
		{"h8k3n64", shape{}, true},
		{"b1h8d64", shape{}, true},
		{"b0n64", shape{}, true},
		{"x4n64", shape{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseShape(tc.in)
			if tc.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	assert.Equal(t, 4.0*2*8*256*1024*128/2, shape{B: 2, H: 8, Hkv: 2, N: 256, M: 1024, D: 128, Causal: true}.flops())
}

// The command runs one small shape on each executor and prints a row per executor. (A
// smoke check of the command, not a benchmark: timings are not asserted.)
func TestRunSmallShape(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"-shapes", "b1h2k1n64m96d32c", "-executors", "cpuflash,reference", "-iters", "1", "-warmup", "0"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "cpuflash   B1 H2 Hkv1 N64 M96 D32 causal")
	assert.Contains(t, out.String(), "reference  B1 H2 Hkv1 N64 M96 D32 causal")
	assert.Equal(t, 2, run([]string{"-executors", "gpu"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"-shapes", "q1"}, &out, &errOut))
}
