package philox

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
func TestBlockKnownAnswers(t *testing.T) {
	cases := []struct {
		ctr  [4]uint32
		key  [2]uint32
		want [4]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}, [4]uint32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{[4]uint32{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff}, [4]uint32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}, [4]uint32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Block(c.ctr, c.key))
	}
}

func TestThreshold(t *testing.T) {
	assert.Equal(t, uint32(0), Threshold(0))
	assert.Equal(t, uint32(1<<31), Threshold(0.5))
	assert.Equal(t, uint32(1073741824), Threshold(0.25))
	assert.Equal(t, uint32(4294967295), Threshold(math.Nextafter(1, 0)))
}

// The kept fraction over many elements must be close to 1 − p.
func TestKeepRate(t *testing.T) {
	for _, p := range []float64{0.1, 0.5, 0.9} {
		s := NewStream(p, 0x1234_5678_9abc_def0, 7)
		kept, n := 0, 0
		for row := uint32(0); row < 64; row++ {
			for j := 0; j < 1024; j++ {
				if s.Keep(row, j) {
					kept++
				}
				n++
			}
		}
		rate := float64(kept) / float64(n)
		// 65536 Bernoulli draws: standard deviation ≤ 0.002; allow 5 of them.
		assert.InDelta(t, 1-p, rate, 0.01, "p=%v", p)
	}
}

// Different offsets give different streams, the same offset the same stream.
func TestOffsetsSeparateStreams(t *testing.T) {
	a, b := NewStream(0.5, 42, 0), NewStream(0.5, 42, 1)
	same := 0
	for j := 0; j < 4096; j++ {
		if a.Keep(3, j) == b.Keep(3, j) {
			same++
		}
		assert.Equal(t, a.Keep(3, j), NewStream(0.5, 42, 0).Keep(3, j))
	}
	assert.InDelta(t, 2048, same, 200)
}
