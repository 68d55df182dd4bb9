// Package badinput builds attention calls that each break exactly one rule of the
// contract in package spec, and says which argument the resulting *spec.ArgError must
// name. spec's validation test and the executors' tests share it, so every layer is held
// to the same table: the error is typed, names the argument, and nothing panics or
// changes the inputs.
//
// Every case is a valid call (see Valid) with one thing changed. Cases fills tensors with
// deterministic, nonzero values.
//
// Not for production code: it exists for tests.
package badinput

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Case is one bad call.
type Case struct {
	Name string
	// Arg is the argument the *spec.ArgError must name.
	Arg string
	// Backward marks a rule about Saved or dO, which only a backward call can break. The
	// other cases fail forward and backward alike.
	Backward bool
	Problem  *spec.Problem
	Saved    *spec.Saved    // well formed for Problem unless the case breaks it
	DO       *tensor.Tensor // well formed for Problem unless the case breaks it
}

// The sizes of the valid call every case starts from: GQA with two query heads per
// key/value head, N ≠ M, odd D.
const (
	B, H, Hkv, N, M, D = 2, 4, 2, 5, 7, 3
)

type builder struct {
	rng *rand.Rand
	err error // the first error building a tensor
}

func newBuilder() *builder { return &builder{rng: rand.New(rand.NewPCG(7, 11))} }

// tensor returns a contiguous tensor of standard normal values; a 0 dimension gives an
// empty one.
func (b *builder) tensor(dt tensor.DType, shape ...int) *tensor.Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = b.rng.NormFloat64()
	}
	t, err := tensor.FromFloat64s(dt, v, shape...)
	if err != nil && b.err == nil {
		b.err = err
	}
	return t
}

// valid returns a well-formed call in dtype dt.
func (b *builder) valid(dt tensor.DType) Case {
	lt := tensor.Float32
	if dt == tensor.Float64 {
		lt = tensor.Float64
	}
	return Case{
		Problem: &spec.Problem{
			Q: b.tensor(dt, B, H, N, D),
			K: b.tensor(dt, B, Hkv, M, D),
			V: b.tensor(dt, B, Hkv, M, D),
		},
		Saved: &spec.Saved{O: b.tensor(dt, B, H, N, D), L: b.tensor(lt, B, H, N)},
		DO:    b.tensor(dt, B, H, N, D),
	}
}

// Valid returns a well-formed float32 call of the sizes above; each case differs from
// such a call in one rule.
func Valid() (Case, error) {
	b := newBuilder()
	c := b.valid(tensor.Float32)
	return c, b.err
}

// broadcast returns a float32 tensor of the given shape whose every element is the same
// storage element (all strides 0): a tensor of any size in a few bytes.
func (b *builder) broadcast(shape ...int) *tensor.Tensor {
	t, err := tensor.FromStorage(tensor.NewHostStorage(4), tensor.Float32, shape, make([]int, len(shape)), 0)
	if err != nil && b.err == nil {
		b.err = err
	}
	return t
}

// Cases returns every bad call, freshly built. The error reports a tensor that could not
// be built, which would be a bug in this package.
func Cases() ([]Case, error) {
	b := newBuilder()
	var cs []Case
	// add appends a case: the valid float32 call changed by edit.
	add := func(name, arg string, backward bool, edit func(c *Case)) {
		c := b.valid(tensor.Float32)
		c.Name, c.Arg, c.Backward = name, arg, backward
		edit(&c)
		cs = append(cs, c)
	}
	opt := func(name, arg string, edit func(o *spec.Options)) {
		add(name, arg, false, func(c *Case) { edit(&c.Problem.Options) })
	}
	f32, f16 := tensor.Float32, tensor.Float16
	inf, nan := math.Inf(1), math.NaN()

	// The problem itself.
	add("nil problem", "Problem", false, func(c *Case) { c.Problem = nil })
	add("nil Q", "Q", false, func(c *Case) { c.Problem.Q = nil })
	add("nil K", "K", false, func(c *Case) { c.Problem.K = nil })
	add("nil V", "V", false, func(c *Case) { c.Problem.V = nil })
	add("Q rank 3", "Q", false, func(c *Case) { c.Problem.Q = b.tensor(f32, B, H, N*D) })
	add("K rank 5", "K", false, func(c *Case) { c.Problem.K = b.tensor(f32, B, Hkv, M, D, 1) })
	add("V rank 2", "V", false, func(c *Case) { c.Problem.V = b.tensor(f32, B*Hkv*M, D) })
	add("Q empty: B = 0", "Q", false, func(c *Case) { c.Problem.Q = b.tensor(f32, 0, H, N, D) })
	add("Q empty: N = 0", "Q", false, func(c *Case) { c.Problem.Q = b.tensor(f32, B, H, 0, D) })
	add("K empty: M = 0", "K", false, func(c *Case) { c.Problem.K = b.tensor(f32, B, Hkv, 0, D) })
	add("V empty: Hkv = 0", "V", false, func(c *Case) { c.Problem.V = b.tensor(f32, B, 0, M, D) })
	add("D = 0 everywhere", "Q", false, func(c *Case) {
		c.Problem.Q, c.Problem.K, c.Problem.V = b.tensor(f32, B, H, N, 0), b.tensor(f32, B, Hkv, M, 0), b.tensor(f32, B, Hkv, M, 0)
	})
	add("K dtype differs", "K", false, func(c *Case) { c.Problem.K = b.tensor(f16, B, Hkv, M, D) })
	add("V dtype differs", "V", false, func(c *Case) { c.Problem.V = b.tensor(tensor.BFloat16, B, Hkv, M, D) })
	add("K batch differs", "K", false, func(c *Case) { c.Problem.K = b.tensor(f32, B+1, Hkv, M, D) })
	add("K head dim differs", "K", false, func(c *Case) { c.Problem.K = b.tensor(f32, B, Hkv, M, D+1) })
	add("V keys differ from K", "V", false, func(c *Case) { c.Problem.V = b.tensor(f32, B, Hkv, M+1, D) })
	add("V heads differ from K", "V", false, func(c *Case) { c.Problem.V = b.tensor(f32, B, Hkv*2, M, D) })
	add("V head dim differs", "V", false, func(c *Case) { c.Problem.V = b.tensor(f32, B, Hkv, M, D+2) })
	add("H not a multiple of Hkv", "K", false, func(c *Case) {
		c.Problem.K, c.Problem.V = b.tensor(f32, B, 3, M, D), b.tensor(f32, B, 3, M, D)
	})

	// Options.
	for _, s := range []float64{nan, -1, inf, math.Inf(-1), 1e39, math.MaxFloat64, 0x1p24 * (1 + 0x1p-52), 1e-320, math.SmallestNonzeroFloat64} {
		opt("scale "+fmtf(s), "Options.Scale", func(o *spec.Options) { o.Scale = s })
	}
	for _, m := range []spec.Causal{spec.CausalBottomRight + 1, 255} {
		opt("causal mode "+strconv.Itoa(int(m)), "Options.Causal", func(o *spec.Options) { o.Causal = m })
	}
	for _, s := range []float64{nan, -0.5, inf, 1e300, 1e-320} {
		opt("softcap "+fmtf(s), "Options.Softcap", func(o *spec.Options) { o.Softcap = s })
	}
	for _, p := range []float64{1, 1.5, -0.1, nan, inf} {
		opt("dropout p "+fmtf(p), "Options.Dropout.P", func(o *spec.Options) { o.Dropout.P = p })
	}
	add("dropout over more than 2^32 rows", "Options.Dropout", false, func(c *Case) {
		const h, n = 1 << 16, 1<<16 + 1 // B·H·N = 2^32 + 2^16
		c.Problem.Q = b.broadcast(1, h, n, 2)
		c.Problem.K, c.Problem.V = b.tensor(f32, 1, 1, 3, 2), b.tensor(f32, 1, 1, 3, 2)
		c.Problem.Dropout.P = 0.1
		c.Saved = &spec.Saved{O: b.broadcast(1, h, n, 2), L: b.broadcast(1, h, n)}
		c.DO = b.broadcast(1, h, n, 2)
	})
	add("dropout over more than 2^34 keys", "Options.Dropout", false, func(c *Case) {
		const m = 1<<34 + 1
		c.Problem.K, c.Problem.V = b.broadcast(B, Hkv, m, D), b.broadcast(B, Hkv, m, D)
		c.Problem.Dropout.P = 0.1
	})
	opt("window left -2", "Options.Window.Left", func(o *spec.Options) { o.Window = &spec.Window{Left: -2, Right: 1} })
	opt("window right -3", "Options.Window.Right", func(o *spec.Options) {
		o.Window = &spec.Window{Left: spec.WindowUnbounded, Right: -3}
	})

	// Masks.
	boolMask := func(shape [4]int) *spec.Mask {
		return &spec.Mask{Kind: spec.MaskBool, Shape: shape, Keep: make([]bool, shape[0]*shape[1]*shape[2]*shape[3])}
	}
	addMask := func(shape [4]int) *spec.Mask {
		return &spec.Mask{Kind: spec.MaskAdditive, Shape: shape, Bias: make([]float32, shape[0]*shape[1]*shape[2]*shape[3])}
	}
	for _, s := range []struct {
		name  string
		shape [4]int
	}{
		{"mask batch 3 (B = 2)", [4]int{3, 1, N, M}},
		{"mask heads 2 (H = 4)", [4]int{1, 2, N, M}},
		{"mask rows N+1", [4]int{B, H, N + 1, M}},
		{"mask columns M-1", [4]int{1, 1, N, M - 1}},
		{"mask transposed [M, N]", [4]int{1, 1, M, N}},
	} {
		opt(s.name, "Options.Mask.Shape", func(o *spec.Options) { o.Mask = boolMask(s.shape) })
	}
	for _, kind := range []spec.MaskKind{spec.MaskBool, spec.MaskAdditive} {
		add("mask element count overflows int, kind "+strconv.Itoa(int(kind)), "Options.Mask.Shape", false, func(c *Case) {
			const n = 1 << 32 // N·M = 2^64 wraps to 0, which an empty slice would match
			c.Problem.Q, c.Problem.K, c.Problem.V = b.broadcast(1, 1, n, 1), b.broadcast(1, 1, n, 1), b.broadcast(1, 1, n, 1)
			c.Problem.Mask = &spec.Mask{Kind: kind, Shape: [4]int{1, 1, n, n}}
			if kind == spec.MaskBool {
				c.Problem.Mask.Keep = []bool{}
			} else {
				c.Problem.Mask.Bias = []float32{}
			}
			c.Saved = &spec.Saved{O: b.broadcast(1, 1, n, 1), L: b.broadcast(1, 1, n)}
			c.DO = b.broadcast(1, 1, n, 1)
		})
	}
	opt("bool mask short", "Options.Mask.Keep", func(o *spec.Options) {
		o.Mask = boolMask([4]int{1, H, N, M})
		o.Mask.Keep = o.Mask.Keep[1:]
	})
	opt("bool mask with bias", "Options.Mask.Keep", func(o *spec.Options) {
		o.Mask = boolMask([4]int{1, 1, N, M})
		o.Mask.Bias = make([]float32, N*M)
	})
	opt("additive mask long", "Options.Mask.Bias", func(o *spec.Options) {
		o.Mask = addMask([4]int{B, 1, N, M})
		o.Mask.Bias = append(o.Mask.Bias, 0)
	})
	opt("additive mask with keep", "Options.Mask.Bias", func(o *spec.Options) {
		o.Mask = addMask([4]int{1, 1, N, M})
		o.Mask.Keep = make([]bool, N*M)
	})
	for _, v := range []float32{float32(nan), float32(inf)} {
		opt("additive mask holds "+fmtf(float64(v)), "Options.Mask.Bias", func(o *spec.Options) {
			o.Mask = addMask([4]int{B, H, N, M})
			o.Mask.Bias[B*H*N*M-1] = v
		})
	}
	for _, k := range []spec.MaskKind{0, spec.MaskAdditive + 1} {
		opt("mask kind "+strconv.Itoa(int(k)), "Options.Mask.Kind", func(o *spec.Options) {
			o.Mask = boolMask([4]int{1, 1, N, M})
			o.Mask.Kind = k
		})
	}

	// Lengths.
	for _, l := range []struct {
		name string
		q, k []int
		arg  string
	}{
		{"SeqLensQ too short", []int{N}, nil, "Options.SeqLensQ"},
		{"SeqLensQ empty", []int{}, nil, "Options.SeqLensQ"},
		{"SeqLensQ negative", []int{N, -1}, nil, "Options.SeqLensQ"},
		{"SeqLensQ beyond N", []int{N + 1, 1}, nil, "Options.SeqLensQ"},
		{"SeqLensK too long", nil, []int{M, M, M}, "Options.SeqLensK"},
		{"SeqLensK negative", nil, []int{-1, M}, "Options.SeqLensK"},
		{"SeqLensK beyond M", []int{N, N}, []int{M, M + 1}, "Options.SeqLensK"},
	} {
		opt(l.name, l.arg, func(o *spec.Options) { o.SeqLensQ, o.SeqLensK = l.q, l.k })
	}

	// Backward inputs.
	add("nil Saved", "Saved", true, func(c *Case) { c.Saved = nil })
	add("nil Saved.O", "Saved.O", true, func(c *Case) { c.Saved.O = nil })
	add("Saved.O shape", "Saved.O", true, func(c *Case) { c.Saved.O = b.tensor(f32, B, H, N+1, D) })
	add("Saved.O rank 3", "Saved.O", true, func(c *Case) { c.Saved.O = b.tensor(f32, B, H, N*D) })
	add("Saved.O dtype", "Saved.O", true, func(c *Case) { c.Saved.O = b.tensor(f16, B, H, N, D) })
	add("nil dO", "dO", true, func(c *Case) { c.DO = nil })
	add("dO shape", "dO", true, func(c *Case) { c.DO = b.tensor(f32, B, Hkv, N, D) })
	add("dO dtype", "dO", true, func(c *Case) { c.DO = b.tensor(tensor.Float64, B, H, N, D) })
	add("nil Saved.L", "Saved.L", true, func(c *Case) { c.Saved.L = nil })
	add("Saved.L rank 4", "Saved.L", true, func(c *Case) { c.Saved.L = b.tensor(f32, B, H, N, 1) })
	add("Saved.L shape", "Saved.L", true, func(c *Case) { c.Saved.L = b.tensor(f32, B, H, M) })
	add("Saved.L float16", "Saved.L", true, func(c *Case) { c.Saved.L = b.tensor(f16, B, H, N) })
	add("Options.GradDType float16 for float32 inputs", "Options.GradDType", false, func(c *Case) { c.Problem.GradDType = f16 })
	add("Options.GradDType float32 for float64 inputs", "Options.GradDType", false, func(c *Case) {
		*c = b.valid(tensor.Float64)
		c.Name, c.Arg = "Options.GradDType float32 for float64 inputs", "Options.GradDType"
		c.Problem.GradDType = f32
	})
	return cs, b.err
}

func fmtf(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
