package msltest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/msltest/refcheck"
)

// toleranceFor is the tolerance of dtype dt (refcheck.ToleranceFor).
func toleranceFor(dt tensor.DType) refcheck.Tolerance { return refcheck.ToleranceFor(dt) }

// testCase is one problem in the kernels' dtype, its float64 twin for the reference,
// the upstream gradient, and the tiles it runs with.
type testCase struct {
	name  string
	cfg   emuConfig
	p     *spec.Problem // Q, K, V in cfg.dt, possibly strided views
	p64   *spec.Problem // the same values in float64, contiguous; the same options
	dO    *tensor.Tensor
	dO64  *tensor.Tensor
	tiles mslplan.Tiles
	// serial plans the dK/dV pass without the head split (mslplan.Request.SerialDKDV),
	// so GQA and MQA problems exercise both: every other random problem is serial.
	serial bool
}

// shapes are the (B, H, Hkv) of the random problems: B·H ≤ 4, GQA and MQA included.
var shapes = [][3]int{{1, 1, 1}, {1, 2, 1}, {1, 2, 2}, {1, 3, 1}, {1, 3, 3}, {1, 4, 1}, {1, 4, 2}, {1, 4, 4}, {2, 1, 1}, {2, 2, 1}, {2, 2, 2}}

// randTensor returns a [shape] tensor of dtype dt with standard normal values, as a
// strided view when strided is set (a permuted parent with an offset), and its float64
// contiguous copy.
func randTensor(rng *rand.Rand, dt tensor.DType, shape [4]int, strided bool) (*tensor.Tensor, *tensor.Tensor, error) {
	b, h, n, d := shape[0], shape[1], shape[2], shape[3]
	var t *tensor.Tensor
	if strided {
		// A [B, N+2, H, D] parent (the layout of a fused projection), sliced to rows
		// 1..N and permuted to [B, H, N, D]: row and head strides swap, offset ≠ 0.
		parent, err := tensor.FromFloat64s(dt, normals(rng, b*(n+2)*h*d), b, n+2, h, d)
		if err != nil {
			return nil, nil, err
		}
		s, err := parent.Slice(1, 1, n+1)
		if err != nil {
			return nil, nil, err
		}
		if t, err = s.Permute(0, 2, 1, 3); err != nil {
			return nil, nil, err
		}
	} else {
		var err error
		if t, err = tensor.FromFloat64s(dt, normals(rng, b*h*n*d), b, h, n, d); err != nil {
			return nil, nil, err
		}
	}
	t64, err := t.Convert(tensor.Float64)
	return t, t64, err
}

func normals(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// randHeadDim draws a head dim that pads to d: d itself half of the time, else one in
// (the previous instantiated size, d).
func randHeadDim(rng *rand.Rand, d int) int {
	prev := 0
	for _, h := range mslplan.HeadDims() {
		if h < d {
			prev = h
		}
	}
	if rng.IntN(2) == 0 || d-prev <= 1 {
		return d
	}
	return prev + 1 + rng.IntN(d-prev-1)
}

// randOptions draws every option of the contract with fixed probabilities.
func randOptions(rng *rand.Rand, d spec.Dims, desc *[]string) spec.Options {
	var o spec.Options
	if rng.IntN(5) == 0 {
		o.Scale = (0.5 + 1.5*rng.Float64()) / math.Sqrt(float64(d.D))
		*desc = append(*desc, fmt.Sprintf("scale=%.3g", o.Scale))
	}
	o.Causal = spec.Causal(rng.IntN(3))
	if o.Causal != spec.CausalNone {
		*desc = append(*desc, "causal="+o.Causal.String())
	}
	if rng.IntN(10) < 3 {
		side := func() int {
			if rng.IntN(3) == 0 {
				return spec.WindowUnbounded
			}
			return rng.IntN(10)
		}
		o.Window = &spec.Window{Left: side(), Right: side()}
		*desc = append(*desc, fmt.Sprintf("window=(%d,%d)", o.Window.Left, o.Window.Right))
	}
	if rng.IntN(20) < 7 {
		shape := [4]int{1, 1, d.N, d.M}
		if rng.IntN(2) == 0 {
			shape[0] = d.B
		}
		if rng.IntN(2) == 0 {
			shape[1] = d.H
		}
		n := shape[0] * shape[1] * shape[2] * shape[3]
		if rng.IntN(2) == 0 {
			keep := make([]bool, n)
			for i := range keep {
				keep[i] = rng.IntN(4) != 0
			}
			o.Mask = &spec.Mask{Kind: spec.MaskBool, Shape: shape, Keep: keep}
			*desc = append(*desc, fmt.Sprintf("bool mask %v", shape))
		} else {
			bias := make([]float32, n)
			for i := range bias {
				if rng.IntN(10) == 0 {
					bias[i] = float32(math.Inf(-1))
				} else {
					bias[i] = float32(2 * rng.NormFloat64())
				}
			}
			o.Mask = &spec.Mask{Kind: spec.MaskAdditive, Shape: shape, Bias: bias}
			*desc = append(*desc, fmt.Sprintf("additive mask %v", shape))
		}
	}
	if rng.IntN(4) == 0 {
		o.Softcap = 0.5 + 4*rng.Float64()
		*desc = append(*desc, fmt.Sprintf("softcap=%.3g", o.Softcap))
	}
	if rng.IntN(10) < 3 {
		o.Dropout = spec.Dropout{
			P:      []float64{0.1, 0.25, 0.5, 0.8}[rng.IntN(4)],
			Seed:   rng.Uint64(),
			Offset: rng.Uint64() >> uint(rng.IntN(64)),
		}
		*desc = append(*desc, fmt.Sprintf("dropout=%.2g", o.Dropout.P))
	}
	if rng.IntN(5) == 0 {
		o.SeqLensQ = make([]int, d.B)
		for i := range o.SeqLensQ {
			o.SeqLensQ[i] = rng.IntN(d.N + 1)
		}
		*desc = append(*desc, fmt.Sprintf("lensQ=%v", o.SeqLensQ))
	}
	if rng.IntN(5) == 0 {
		o.SeqLensK = make([]int, d.B)
		for i := range o.SeqLensK {
			o.SeqLensK[i] = rng.IntN(d.M + 1)
		}
		*desc = append(*desc, fmt.Sprintf("lensK=%v", o.SeqLensK))
	}
	return o
}

// randInputs draws the tensors of a problem of dims d in cfg's dtype (Q, K, V as strided
// views when strided is set; dO contiguous), their float64 copies and random options,
// whose description it appends to desc.
func randInputs(rng *rand.Rand, cfg emuConfig, d spec.Dims, strided bool, desc *[]string) (*testCase, error) {
	c := &testCase{cfg: cfg, tiles: cfg.tiles()}
	q, q64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.H, d.N, d.D}, strided)
	if err != nil {
		return nil, err
	}
	k, k64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, d.M, d.D}, strided)
	if err != nil {
		return nil, err
	}
	v, v64, err := randTensor(rng, cfg.dt, [4]int{d.B, d.Hkv, d.M, d.D}, strided)
	if err != nil {
		return nil, err
	}
	if c.dO, c.dO64, err = randTensor(rng, cfg.dt, [4]int{d.B, d.H, d.N, d.D}, false); err != nil {
		return nil, err
	}
	o := randOptions(rng, d, desc)
	c.p = &spec.Problem{Q: q, K: k, V: v, Options: o}
	c.p64 = &spec.Problem{Q: q64, K: k64, V: v64, Options: o}
	return c, nil
}

// randCase draws problem number i of a run for config cfg, with at most 40 query and key
// rows.
func randCase(rng *rand.Rand, i int, cfg emuConfig) (*testCase, error) {
	return randCaseSized(rng, i, cfg, 40)
}

// randCaseSized is randCase with at most maxLen query and key rows.
func randCaseSized(rng *rand.Rand, i int, cfg emuConfig, maxLen int) (*testCase, error) {
	sh := shapes[rng.IntN(len(shapes))]
	d := spec.Dims{B: sh[0], H: sh[1], Hkv: sh[2], N: 1 + rng.IntN(maxLen), M: 1 + rng.IntN(maxLen), D: randHeadDim(rng, cfg.d)}
	desc := []string{fmt.Sprintf("#%d %v B=%d H=%d Hkv=%d N=%d M=%d D=%d", i, cfg, d.B, d.H, d.Hkv, d.N, d.M, d.D)}
	strided := rng.IntN(6) == 0
	if strided {
		desc = append(desc, "strided")
	}
	c, err := randInputs(rng, cfg, d, strided, &desc)
	if err != nil {
		return nil, err
	}
	if c.serial = i%2 == 1; c.serial && d.H > d.Hkv {
		desc = append(desc, "serial-dkdv")
	}
	c.name = strings.Join(desc, " ")
	return c, nil
}
