package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestInstructionCounts(t *testing.T) {
	// MFA's convention per head: forward (2D+5)·N², dQ (3D+5)·N², dK/dV (4D+5)·N².
	assert.Equal(t, float64(133*1024*1024), forwardInstr(64, 1024, 1024))
	assert.Equal(t, float64((133+197+261)*1024*1024), fwdBwdInstr(64, 1024, 1024))
}

func TestPeak(t *testing.T) {
	p, src := peakFor("Apple M1 Max", 32)
	assert.InDelta(t, 5200, p, 1, "32 × 128 × 1.27 GHz") // MFA: 4400 is 83 % of ~5300 at 1.296 GHz
	assert.Contains(t, src, "2.6 TFLOPS")
	p, _ = peakFor("Apple M2", 10)
	assert.InDelta(t, 1800, p, 1)
	p, src = peakFor("Apple M3 Pro", 18)
	assert.Zero(t, p)
	assert.Contains(t, src, "omitted")
	p, _ = peakFor("Apple M1", 0)
	assert.Zero(t, p)
}
