package attntest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Sizes are the dimensions of a test problem.
type Sizes struct{ B, H, Hkv, N, M, D int }

// Case is one configuration of the contract's options. Opts fills the options of a
// problem of the given sizes (masks and lengths depend on them).
type Case struct {
	Name  string
	Sizes Sizes
	Opts  func(r *rand.Rand, sz Sizes) spec.Options
}

// NoOptions gives the zero options.
func NoOptions(*rand.Rand, Sizes) spec.Options { return spec.Options{} }

// Fixed gives the same options whatever the sizes.
func Fixed(o spec.Options) func(*rand.Rand, Sizes) spec.Options {
	return func(*rand.Rand, Sizes) spec.Options { return o }
}

// BoolMask keeps each element with probability keep; rows listed in hide (as i) are
// hidden entirely in every batch and head. Its shape is [bm, hm, N, M].
func BoolMask(r *rand.Rand, sz Sizes, bm, hm int, keep float64, hide ...int) *spec.Mask {
	m := &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{bm, hm, sz.N, sz.M}, Keep: make([]bool, bm*hm*sz.N*sz.M)}
	for k := range m.Keep {
		i := k / sz.M % sz.N
		m.Keep[k] = r.Float64() < keep && !slices.Contains(hide, i)
	}
	return m
}

// BiasMask holds normal values, −Inf with probability ninf, and −Inf on every element of
// the rows listed in hide.
func BiasMask(r *rand.Rand, sz Sizes, bm, hm int, ninf float64, hide ...int) *spec.Mask {
	m := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{bm, hm, sz.N, sz.M}, Bias: make([]float32, bm*hm*sz.N*sz.M)}
	for k := range m.Bias {
		i := k / sz.M % sz.N
		m.Bias[k] = float32(r.NormFloat64())
		if r.Float64() < ninf || slices.Contains(hide, i) {
			m.Bias[k] = float32(math.Inf(-1))
		}
	}
	return m
}

// OptionCases covers every option of the contract, alone and together, on small sizes
// (a gradient check of each takes 2·(|Q|+|K|+|V|) forward passes).
func OptionCases() []Case {
	sq := Sizes{1, 2, 2, 6, 6, 4}   // square
	wide := Sizes{1, 2, 1, 4, 7, 3} // N < M
	tall := Sizes{1, 2, 2, 7, 4, 3} // N > M
	gqa := Sizes{2, 4, 2, 5, 6, 3}  // two query heads per key/value head
	mqa := Sizes{1, 3, 1, 5, 5, 2}  // one key/value head
	unb := spec.WindowUnbounded
	return []Case{
		{"plain", sq, NoOptions},
		{"scale 0.37", sq, Fixed(spec.Options{Scale: 0.37})},
		{"N < M", wide, NoOptions},
		{"N > M", tall, NoOptions},
		{"D = 1", Sizes{1, 2, 1, 5, 6, 1}, NoOptions},
		{"odd D = 5", Sizes{2, 1, 1, 3, 5, 5}, NoOptions},
		{"causal top-left square", sq, Fixed(spec.Options{Causal: spec.CausalTopLeft})},
		{"causal top-left N < M", wide, Fixed(spec.Options{Causal: spec.CausalTopLeft})},
		{"causal top-left N > M", tall, Fixed(spec.Options{Causal: spec.CausalTopLeft})},
		{"causal bottom-right N < M", wide, Fixed(spec.Options{Causal: spec.CausalBottomRight})},
		{"causal bottom-right N > M (first rows masked)", tall, Fixed(spec.Options{Causal: spec.CausalBottomRight})},
		{"window 2, 1", sq, Fixed(spec.Options{Window: &spec.Window{Left: 2, Right: 1}})},
		{"window 0, 0 (diagonal only)", sq, Fixed(spec.Options{Window: &spec.Window{Left: 0, Right: 0}})},
		{"window left only, causal", sq, Fixed(spec.Options{Causal: spec.CausalTopLeft, Window: &spec.Window{Left: 2, Right: unb}})},
		{"window right only", wide, Fixed(spec.Options{Window: &spec.Window{Left: unb, Right: 1}})},
		{"window bottom-right N < M", wide, Fixed(spec.Options{Causal: spec.CausalBottomRight, Window: &spec.Window{Left: 1, Right: 0}})},
		{"window bounds MaxInt (no limit)", tall, Fixed(spec.Options{Causal: spec.CausalBottomRight, Window: &spec.Window{Left: math.MaxInt, Right: math.MaxInt}})},
		{"softcap 0.5", sq, Fixed(spec.Options{Softcap: 0.5})},
		{"softcap 3 with scale 1.5", sq, Fixed(spec.Options{Softcap: 3, Scale: 1.5})},
		{"bool mask [1, 1, N, M]", sq, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BoolMask(r, sz, 1, 1, 0.7)}
		}},
		{"bool mask [B, H, N, M]", gqa, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BoolMask(r, sz, sz.B, sz.H, 0.6)}
		}},
		{"bool mask [1, H, N, M] with causal", gqa, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Causal: spec.CausalTopLeft, Mask: BoolMask(r, sz, 1, sz.H, 0.8)}
		}},
		{"additive mask [B, 1, N, M]", gqa, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BiasMask(r, sz, sz.B, 1, 0.2)}
		}},
		{"additive mask [1, 1, N, M] with softcap", sq, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Softcap: 1, Mask: BiasMask(r, sz, 1, 1, 0.1)}
		}},
		{"dropout 0.3", sq, Fixed(spec.Options{Dropout: spec.Dropout{P: 0.3, Seed: 0xfeed_beef_1234, Offset: 17}})},
		{"dropout 0.5 GQA causal", gqa, Fixed(spec.Options{Causal: spec.CausalTopLeft, Dropout: spec.Dropout{P: 0.5, Seed: 99, Offset: 1 << 40}})},
		{"GQA", gqa, NoOptions},
		{"MQA", mqa, NoOptions},
		{"varlen", gqa, Fixed(spec.Options{SeqLensQ: []int{3, 5}, SeqLensK: []int{6, 2}})},
		{"varlen zero lengths", gqa, Fixed(spec.Options{SeqLensQ: []int{0, 4}, SeqLensK: []int{5, 0}})},
		{"varlen bottom-right", gqa, Fixed(spec.Options{Causal: spec.CausalBottomRight, SeqLensQ: []int{2, 5}, SeqLensK: []int{6, 3}})},
		{"fully masked rows: bool mask", sq, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BoolMask(r, sz, 1, sz.H, 0.8, 1, 4)}
		}},
		{"fully masked rows: additive −Inf", gqa, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BiasMask(r, sz, sz.B, sz.H, 0.1, 0, 3)}
		}},
		{"fully masked: everything hidden", sq, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{Mask: BoolMask(r, sz, 1, 1, 0)}
		}},
		{"everything together", gqa, func(r *rand.Rand, sz Sizes) spec.Options {
			return spec.Options{
				Scale: 0.8, Causal: spec.CausalBottomRight, Softcap: 2,
				Window:   &spec.Window{Left: 3, Right: 1},
				Mask:     BiasMask(r, sz, 1, sz.H, 0.15, 2),
				Dropout:  spec.Dropout{P: 0.2, Seed: 5, Offset: 3},
				SeqLensQ: []int{5, 4}, SeqLensK: []int{6, 5},
			}
		}},
	}
}

// RandomCase draws a configuration with sizes up to 9 and every option chosen at random;
// window bounds are sometimes huge (up to MaxInt).
func RandomCase(r *rand.Rand) Case {
	hkv := 1 + r.IntN(2)
	sz := Sizes{B: 1 + r.IntN(2), Hkv: hkv, H: hkv * (1 + r.IntN(3)), N: 1 + r.IntN(9), M: 1 + r.IntN(9), D: 1 + r.IntN(9)}
	o := spec.Options{Causal: spec.Causal(r.IntN(3))}
	if r.IntN(3) == 0 {
		o.Scale = 0.1 + r.Float64()
	}
	if r.IntN(3) == 0 {
		o.Softcap = 0.2 + 3*r.Float64()
	}
	if r.IntN(3) == 0 {
		bound := func() int {
			if r.IntN(6) == 0 {
				return math.MaxInt - r.IntN(16)
			}
			return r.IntN(5) - 1
		}
		o.Window = &spec.Window{Left: bound(), Right: bound()}
	}
	if r.IntN(3) == 0 {
		o.Dropout = spec.Dropout{P: 0.8 * r.Float64(), Seed: r.Uint64(), Offset: r.Uint64()}
	}
	if r.IntN(3) == 0 {
		o.SeqLensQ, o.SeqLensK = make([]int, sz.B), make([]int, sz.B)
		for b := range sz.B {
			o.SeqLensQ[b], o.SeqLensK[b] = r.IntN(sz.N+1), r.IntN(sz.M+1)
		}
	}
	bm, hm := []int{1, sz.B}[r.IntN(2)], []int{1, sz.H}[r.IntN(2)]
	mask := r.IntN(3)
	return Case{Name: "random", Sizes: sz, Opts: func(r *rand.Rand, sz Sizes) spec.Options {
		o := o
		switch mask {
		case 1:
			o.Mask = BoolMask(r, sz, bm, hm, 0.3+0.7*r.Float64())
		case 2:
			o.Mask = BiasMask(r, sz, bm, hm, 0.3*r.Float64())
		}
		return o
	}}
}

// Tensor returns a contiguous tensor of standard normal values rounded to dt.
func Tensor(t testing.TB, r *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	t.Helper()
	n := 1
	for _, s := range shape {
		n *= s
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	x, err := tensor.FromFloat64s(dt, v, shape...)
	require.NoError(t, err)
	return x
}

// Build returns a problem of case c in dtype dt with random inputs from seed, and a
// random dO.
func Build(t testing.TB, c Case, dt tensor.DType, seed uint64) (*spec.Problem, *tensor.Tensor) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	sz := c.Sizes
	p := &spec.Problem{
		Q:       Tensor(t, r, dt, sz.B, sz.H, sz.N, sz.D),
		K:       Tensor(t, r, dt, sz.B, sz.Hkv, sz.M, sz.D),
		V:       Tensor(t, r, dt, sz.B, sz.Hkv, sz.M, sz.D),
		Options: c.Opts(r, sz),
	}
	require.NoError(t, spec.Validate(p), "test problem %q must be valid", c.Name)
	return p, Tensor(t, r, dt, sz.B, sz.H, sz.N, sz.D)
}

// DTypes are the input dtypes of the contract.
var DTypes = []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16, tensor.Float64}

// InputState records everything a call could change: the bytes and views of tensors, and
// the options, mask values included. Compare two with assert.Equal.
type InputState [][]byte

// TakeInputState records p's inputs and options and the extra tensors.
func TakeInputState(p *spec.Problem, more ...*tensor.Tensor) InputState {
	var s InputState
	if p != nil {
		more = append([]*tensor.Tensor{p.Q, p.K, p.V}, more...)
	}
	for _, t := range more {
		if t != nil {
			s = append(s, bytes.Clone(t.Storage().Bytes()), fmt.Appendf(nil, "%v %v %d", t.Shape(), t.Strides(), t.Offset()))
		}
	}
	if p == nil {
		return s
	}
	if m := p.Mask; m != nil {
		bits := make([]uint32, len(m.Bias))
		for i, v := range m.Bias {
			bits[i] = math.Float32bits(v)
		}
		s = append(s, fmt.Appendf(nil, "%v %v %v %v", m.Kind, m.Shape, m.Keep, bits))
	}
	return append(s, fmt.Appendf(nil, "%v %v %+v %+v %v %v %v %v",
		p.SeqLensQ, p.SeqLensK, p.Window, p.Dropout, math.Float64bits(p.Scale), math.Float64bits(p.Softcap), p.Causal, p.GradDType))
}

// AssertClose compares got with want element by element: −Inf must match −Inf, nothing
// may be NaN, and finite values must agree within tol·max(1, |want|). It reports the first
// five differences and the count.
func AssertClose(t testing.TB, want, got []float64, tol float64, what string) bool {
	t.Helper()
	if !assert.Len(t, got, len(want), what) {
		return false
	}
	bad := 0
	for i, w := range want {
		g := got[i]
		ok := !math.IsNaN(g) && (g == w || math.Abs(g-w) <= tol*max(1, math.Abs(w)))
		if !ok && bad < 5 {
			assert.Failf(t, what+" differs", "element %d: got %v, want %v (tol %g)", i, g, w, tol)
		}
		if !ok {
			bad++
		}
	}
	return assert.Zero(t, bad, "%s: %d of %d elements out of tolerance", what, bad, len(want))
}

// RelL2 is ‖got − want‖ / max(‖want‖, tiny) over the finite elements of want; an element
// where one is finite and the other not, or either is NaN, makes it +Inf.
func RelL2(want, got []float64) float64 {
	var num, den float64
	for i, w := range want {
		g := got[i]
		switch {
		case math.IsNaN(w) || math.IsNaN(g):
			return math.Inf(1)
		case math.IsInf(w, 0) || math.IsInf(g, 0):
			if w != g {
				return math.Inf(1)
			}
			continue
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	return math.Sqrt(num / max(den, 1e-300))
}

// Values returns x's elements as float64 in row-major order.
func Values(t testing.TB, x *tensor.Tensor) []float64 {
	t.Helper()
	require.NotNil(t, x)
	v, err := x.ToFloat64s()
	require.NoError(t, err)
	return v
}
