package philox

import "math"

// The Philox4x32 round multipliers and Weyl key increments (Salmon et al., table 2).
const (
	mul0  = 0xD2511F53
	mul1  = 0xCD9E8D57
	weyl0 = 0x9E3779B9
	weyl1 = 0xBB67AE85
)

// Block computes Philox4x32-10 of a 128-bit counter under a 64-bit key.
func Block(ctr [4]uint32, key [2]uint32) [4]uint32 {
	c0, c1, c2, c3 := ctr[0], ctr[1], ctr[2], ctr[3]
	k0, k1 := key[0], key[1]
	for r := 0; r < 10; r++ {
		p0 := uint64(mul0) * uint64(c0)
		p1 := uint64(mul1) * uint64(c2)
		hi0, lo0 := uint32(p0>>32), uint32(p0)
		hi1, lo1 := uint32(p1>>32), uint32(p1)
		c0, c1, c2, c3 = hi1^c1^k0, lo1, hi0^c3^k1, lo0
		k0 += weyl0
		k1 += weyl1
	}
	return [4]uint32{c0, c1, c2, c3}
}

// Threshold returns T = floor(p · 2^32): a word below T drops its element. p must be in
// [0, 1).
func Threshold(p float64) uint32 {
	if p <= 0 {
		return 0
	}
	t := math.Floor(p * 4294967296.0)
	if t >= 4294967295 {
		return 4294967295
	}
	return uint32(t)
}

// Scale returns 1 / (1 − p), the factor applied to kept elements.
func Scale(p float64) float64 { return 1 / (1 - p) }

// Stream is one dropout configuration: the keep decisions of one attention call.
type Stream struct {
	Threshold uint32
	key       [2]uint32
	off0      uint32
	off1      uint32
}

// NewStream returns the stream for probability p, seed and offset.
func NewStream(p float64, seed, offset uint64) Stream {
	return Stream{
		Threshold: Threshold(p),
		key:       [2]uint32{uint32(seed), uint32(seed >> 32)},
		off0:      uint32(offset),
		off1:      uint32(offset >> 32),
	}
}

// Words returns the four words that decide columns 4·(j>>2) … 4·(j>>2)+3 of row `row`,
// where row = (b*H + h)*N + i.
func (s Stream) Words(row uint32, j int) [4]uint32 {
	return Block([4]uint32{uint32(j >> 2), row, s.off0, s.off1}, s.key)
}

// Keep reports whether element (row, j) is kept.
func (s Stream) Keep(row uint32, j int) bool {
	return s.Words(row, j)[j&3] >= s.Threshold
}

// Row returns the linear row index (b*H + h)*N + i used in the counter.
func Row(b, h, i, heads, rows int) uint32 { return uint32((b*heads+h)*rows + i) }
