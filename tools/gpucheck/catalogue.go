package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// problem is one entry of the catalogue: the problem in its dtype, its float64 twin for
// the reference (same values, same options), and the upstream gradient in both.
type problem struct {
	name string
	dt   tensor.DType
	p    *spec.Problem
	p64  *spec.Problem
	dO   *tensor.Tensor
	dO64 *tensor.Tensor
}

var dtypes = []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16}

// shape is B, H, Hkv, N, M, D.
type shape struct{ b, h, hkv, n, m, d int }

func (s shape) String() string {
	return fmt.Sprintf("B%d H%d Hkv%d N%d M%d D%d", s.b, s.h, s.hkv, s.n, s.m, s.d)
}

// option is a named way to set a problem's options (it may also edit dO).
type option struct {
	name string
	set  func(rng *rand.Rand, s shape, o *spec.Options, dO []float64)
}

// options are the catalogue's options: each of the contract's, once.
var options = []option{
	{"plain", func(*rand.Rand, shape, *spec.Options, []float64) {}},
	{"causal top-left", func(_ *rand.Rand, _ shape, o *spec.Options, _ []float64) { o.Causal = spec.CausalTopLeft }},
	{"causal bottom-right, N > M (rows with no key)", func(_ *rand.Rand, _ shape, o *spec.Options, _ []float64) {
		o.Causal = spec.CausalBottomRight
	}},
	{"window (16, 0)", func(_ *rand.Rand, _ shape, o *spec.Options, _ []float64) { o.Window = &spec.Window{Left: 16, Right: 0} }},
	{"bool mask [B,1,N,M]", func(rng *rand.Rand, s shape, o *spec.Options, _ []float64) {
		keep := make([]bool, s.b*s.n*s.m)
		for i := range keep {
			keep[i] = rng.IntN(4) != 0
		}
		o.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{s.b, 1, s.n, s.m}, Keep: keep}
	}},
	{"additive mask [1,H,N,M] with -Inf", func(rng *rand.Rand, s shape, o *spec.Options, _ []float64) {
		bias := make([]float32, s.h*s.n*s.m)
		for i := range bias {
			if rng.IntN(10) == 0 {
				bias[i] = float32(math.Inf(-1))
			} else {
				bias[i] = float32(2 * rng.NormFloat64())
			}
		}
		o.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, s.h, s.n, s.m}, Bias: bias}
	}},
	{"bias -MaxFloat32 on a row, +3e38 on a key (W1)", func(rng *rand.Rand, s shape, o *spec.Options, dO []float64) {
		bias := make([]float32, s.n*s.m)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
		for j := 0; j < s.m; j++ {
			bias[1*s.m+j] = -math.MaxFloat32
		}
		bias[2*s.m+s.m/2] = 3e38
		o.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{1, 1, s.n, s.m}, Bias: bias}
		// dO is zero on those rows (the padding case): the kernels' L there is the clamped
		// ∓mslplan.LogitLimit, so only the forward of those rows is comparable.
		for b := 0; b < s.b; b++ {
			for h := 0; h < s.h; h++ {
				for _, i := range []int{1, 2} {
					row := ((b*s.h+h)*s.n + i) * s.d
					clear(dO[row : row+s.d])
				}
			}
		}
	}},
	{"softcap 5", func(_ *rand.Rand, _ shape, o *spec.Options, _ []float64) { o.Softcap = 5 }},
	{"dropout 0.2", func(rng *rand.Rand, _ shape, o *spec.Options, _ []float64) {
		o.Dropout = spec.Dropout{P: 0.2, Seed: rng.Uint64(), Offset: rng.Uint64() >> 8}
	}},
	{"per-batch lengths", func(_ *rand.Rand, s shape, o *spec.Options, _ []float64) {
		o.SeqLensQ, o.SeqLensK = make([]int, s.b), make([]int, s.b)
		for b := range o.SeqLensQ {
			o.SeqLensQ[b], o.SeqLensK[b] = s.n-3*b-1, s.m-5*b-2
		}
	}},
	{"scale 0.3, softcap 20, causal bottom-right, dropout 0.1", func(rng *rand.Rand, _ shape, o *spec.Options, _ []float64) {
		o.Scale, o.Softcap, o.Causal = 0.3, 20, spec.CausalBottomRight
		o.Dropout = spec.Dropout{P: 0.1, Seed: rng.Uint64(), Offset: 3}
	}},
	{"float32 gradients (W2)", func(_ *rand.Rand, _ shape, o *spec.Options, _ []float64) { o.GradDType = tensor.Float32 }},
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x7431)) }

// generate draws a problem of shape s in dtype dt with option opt.
func generate(rng *rand.Rand, name string, dt tensor.DType, s shape, opt option) (*problem, error) {
	draw := func(shape ...int) (*tensor.Tensor, *tensor.Tensor, error) {
		n := 1
		for _, x := range shape {
			n *= x
		}
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		t, err := tensor.FromFloat64s(dt, v, shape...)
		if err != nil {
			return nil, nil, err
		}
		t64, err := t.Convert(tensor.Float64) // the values as rounded to dt
		return t, t64, err
	}
	q, q64, err := draw(s.b, s.h, s.n, s.d)
	if err != nil {
		return nil, err
	}
	k, k64, err := draw(s.b, s.hkv, s.m, s.d)
	if err != nil {
		return nil, err
	}
	v, v64, err := draw(s.b, s.hkv, s.m, s.d)
	if err != nil {
		return nil, err
	}
	g := make([]float64, s.b*s.h*s.n*s.d)
	for i := range g {
		g[i] = rng.NormFloat64()
	}
	var o spec.Options
	opt.set(rng, s, &o, g)
	if o.GradDType != 0 && dt == tensor.Float32 {
		o.GradDType = 0
	}
	dO, err := tensor.FromFloat64s(dt, g, s.b, s.h, s.n, s.d)
	if err != nil {
		return nil, err
	}
	dO64, err := dO.Convert(tensor.Float64)
	if err != nil {
		return nil, err
	}
	o64 := o
	o64.GradDType = 0 // the reference computes float64 gradients of the float64 twin
	return &problem{
		name: name, dt: dt,
		p:   &spec.Problem{Q: q, K: k, V: v, Options: o},
		p64: &spec.Problem{Q: q64, K: k64, V: v64, Options: o64},
		dO:  dO, dO64: dO64,
	}, nil
}

// oddHeadDim is the odd head dim just below d (d − 1, or the previous instantiated head
// dim + 1 when that is larger): it pads up to the kernels of d.
func oddHeadDim(d int) int {
	o := d - 1
	if o%2 == 0 {
		o--
	}
	if o < 1 {
		o = 1
	}
	return o
}

// catalogue returns the problems to check, drawn from seed. full: for every dtype and
// every instantiated head dim, one problem at that head dim (N = M) and one at an odd
// head dim that pads to it with N ≠ M, GQA and causal masking (between them they run
// every kernel of a family's tile table); then every option in every dtype at an odd
// head dim with N ≠ M; then, in every dtype, MQA with 8 query heads per key/value head,
// whose small dK/dV grid takes the head split (per-head partials and their reduction),
// and in float16 GQA with 2100 keys, whose grid is large enough for the serial dK/dV
// walk over the group's heads. small: the same kinds on a few dtypes and head dims
// (tests).
func catalogue(seed uint64, small bool) ([]*problem, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6770))
	var out []*problem
	dims := mslplan.HeadDims()
	dts := dtypes
	opts := options
	if small {
		dims = []int{32, 64}
	}
	for di, dt := range dts {
		for _, d := range dims {
			if small && di != 0 && d != 64 {
				continue
			}
			exact := shape{1, 2, 2, 64, 64, d}
			p, err := generate(rng, fmt.Sprintf("%s D=%d %v plain", tensor.DType.String(dt), d, exact), dt, exact, options[0])
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			odd := shape{1, 4, 2, 45, 71, oddHeadDim(d)}
			p, err = generate(rng, fmt.Sprintf("%s D=%d %v GQA causal bottom-right", dt, d, odd), dt, odd, options[2])
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	for i, opt := range opts {
		for j, dt := range dts {
			if small && j != i%len(dts) {
				continue
			}
			if opt.name == options[len(options)-1].name && dt == tensor.Float32 {
				continue // float32 gradients are the default for float32
			}
			s := shape{2, 2, 1, 41, 57, 59}
			if opt.name == options[2].name {
				s.n, s.m = 57, 41
			}
			p, err := generate(rng, fmt.Sprintf("%s %v %s", dt, s, opt.name), dt, s, opt)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	for j, dt := range dts {
		if small && j != 0 {
			continue
		}
		mqa := shape{1, 8, 1, 37, 83, 64}
		p, err := generate(rng, fmt.Sprintf("%s %v MQA causal bottom-right (dK/dV head split)", dt, mqa), dt, mqa, options[2])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if !small {
		gqa := shape{1, 4, 2, 16, 2100, 64}
		p, err := generate(rng, fmt.Sprintf("%s %v GQA plain (serial dK/dV)", tensor.Float16, gqa), tensor.Float16, gqa, options[0])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
