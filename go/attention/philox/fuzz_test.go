package philox

import (
	"math"
	"math/bits"
	"testing"
)

// block is Philox4x32-10 written a second way (bits.Mul32, the round as in the paper's
// notation) to hold Block against.
func block(ctr [4]uint32, key [2]uint32) [4]uint32 {
	x := ctr
	k := key
	for range 10 {
		hi0, lo0 := bits.Mul32(0xD2511F53, x[0])
		hi1, lo1 := bits.Mul32(0xCD9E8D57, x[2])
		x = [4]uint32{hi1 ^ x[1] ^ k[0], lo1, hi0 ^ x[3] ^ k[1], lo0}
		k[0] += 0x9E3779B9
		k[1] += 0xBB67AE85
	}
	return x
}

// FuzzStream checks the dropout rule on arbitrary seeds, offsets, rows, columns and
// probabilities: Block agrees with a second implementation, Keep is the documented
// comparison of the documented word, the four columns of a group share one block, and the
// threshold is floor(p·2^32) (saturated below 2^32) and monotone in p. `go test -fuzz
// FuzzStream ./go/attention/philox` explores further.
func FuzzStream(f *testing.F) {
	f.Add(uint64(0), uint64(0), uint32(0), 0, 0.5)
	f.Add(uint64(math.MaxUint64), uint64(1<<40), uint32(math.MaxUint32), 1<<34-1, math.Nextafter(1, 0))
	f.Add(uint64(0xfeed_beef_1234), uint64(17), uint32(12345), 77, 0.3)
	f.Fuzz(func(t *testing.T, seed, offset uint64, row uint32, j int, p float64) {
		if j < 0 {
			j = -(j + 1)
		}
		j %= 1 << 34 // the columns spec.Validate lets dropout index
		if math.IsNaN(p) || p < 0 || p >= 1 {
			p = math.Abs(math.Mod(p, 1))
			if math.IsNaN(p) {
				p = 0.5
			}
		}
		s := NewStream(p, seed, offset)
		ctr := [4]uint32{uint32(j >> 2), row, uint32(offset), uint32(offset >> 32)}
		key := [2]uint32{uint32(seed), uint32(seed >> 32)}
		w := block(ctr, key)
		if got := Block(ctr, key); got != w {
			t.Fatalf("Block(%x, %x) = %x, second implementation %x", ctr, key, got, w)
		}
		if got := s.Words(row, j); got != w {
			t.Fatalf("Words(%d, %d) = %x, want %x", row, j, got, w)
		}
		if s.Keep(row, j) != (w[j&3] >= s.Threshold) {
			t.Fatalf("Keep(%d, %d) is not word >= threshold", row, j)
		}
		for c := j &^ 3; c < j&^3+4; c++ {
			if s.Words(row, c) != w {
				t.Fatalf("columns %d and %d of one group use different blocks", j, c)
			}
		}
		th := Threshold(p)
		if exact := math.Floor(p * (1 << 32)); exact < math.MaxUint32 && float64(th) != exact {
			t.Fatalf("Threshold(%v) = %d, want %v", p, th, exact)
		}
		if q := math.Nextafter(p, 1); q < 1 && Threshold(q) < th {
			t.Fatalf("Threshold not monotone at %v", p)
		}
	})
}
