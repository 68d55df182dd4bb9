package attntest_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// fuzzInput builds one problem from fuzz arguments: small random sizes, every option with
// values over their full range (window bounds over all of int64, biases over all float32
// bit patterns but NaN and +Inf, which the contract refuses), inputs as views (a transposed
// Q, a K sliced from a larger tensor, a V broadcast over heads by stride 0).
func fuzzInput(t *testing.T, seed uint64, dt uint8, causal uint8, left, right int64, scale, softcap, drop float64, maskKind uint8, biasBits uint32, views uint8) (*spec.Problem, *tensor.Tensor, bool) {
	r := rand.New(rand.NewPCG(seed, 77))
	dtype := []tensor.DType{tensor.Float32, tensor.Float16, tensor.BFloat16}[dt%3]
	hkv := 1 + r.IntN(2)
	sz := attntest.Sizes{B: 1 + r.IntN(2), Hkv: hkv, H: hkv * (1 + r.IntN(3)), N: 1 + r.IntN(17), M: 1 + r.IntN(17), D: 1 + r.IntN(16)}
	var q, k, v *tensor.Tensor
	if views&1 != 0 { // Q as the transpose of a [B, N, H, D] tensor
		x := attntest.Tensor(t, r, dtype, sz.B, sz.N, sz.H, sz.D)
		q, _ = x.Transpose(1, 2)
	} else {
		q = attntest.Tensor(t, r, dtype, sz.B, sz.H, sz.N, sz.D)
	}
	if views&2 != 0 { // K sliced out of a longer sequence
		x := attntest.Tensor(t, r, dtype, sz.B, sz.Hkv, sz.M+3, sz.D)
		k, _ = x.Slice(2, 2, 2+sz.M)
	} else {
		k = attntest.Tensor(t, r, dtype, sz.B, sz.Hkv, sz.M, sz.D)
	}
	if views&4 != 0 { // V: one head broadcast to every kv head
		x := attntest.Tensor(t, r, dtype, sz.B, 1, sz.M, sz.D)
		st := x.Strides()
		var err error
		v, err = tensor.FromStorage(x.Storage(), dtype, []int{sz.B, sz.Hkv, sz.M, sz.D}, []int{st[0], 0, st[2], st[3]}, x.Offset())
		if err != nil {
			t.Fatal(err)
		}
	} else {
		v = attntest.Tensor(t, r, dtype, sz.B, sz.Hkv, sz.M, sz.D)
	}
	p := &spec.Problem{Q: q, K: k, V: v}
	p.Causal = spec.Causal(causal % 4)
	p.Scale, p.Softcap = scale, softcap
	p.Dropout = spec.Dropout{P: drop, Seed: r.Uint64(), Offset: r.Uint64()}
	if left != 0 || right != 0 {
		p.Window = &spec.Window{Left: int(left), Right: int(right)}
	}
	moderate := true // logits within the ±1e4 the contract holds executors to
	switch maskKind % 3 {
	case 1:
		m := &spec.Mask{Kind: spec.MaskBool, Shape: [4]int{1, sz.H, sz.N, sz.M}, Keep: make([]bool, sz.H*sz.N*sz.M)}
		for i := range m.Keep {
			m.Keep[i] = r.IntN(4) > 0
		}
		p.Mask = m
	case 2:
		m := &spec.Mask{Kind: spec.MaskAdditive, Shape: [4]int{sz.B, 1, sz.N, sz.M}, Bias: make([]float32, sz.B*sz.N*sz.M)}
		base := math.Float32frombits(biasBits)
		for i := range m.Bias {
			switch r.IntN(4) {
			case 0:
				m.Bias[i] = base // one value from the whole float32 range
			case 1:
				m.Bias[i] = math.Float32frombits(r.Uint32()) // any bit pattern
			case 2:
				m.Bias[i] = float32(math.Inf(-1))
			default:
				m.Bias[i] = float32(r.NormFloat64())
			}
			if x := m.Bias[i]; x != x || math.IsInf(float64(x), 1) {
				m.Bias[i] = float32(math.Inf(-1)) // NaN and +Inf are refused; covered elsewhere
			}
			if x := float64(m.Bias[i]); !math.IsInf(x, -1) && math.Abs(x) > 1e4 {
				moderate = false
			}
		}
		p.Mask = m
	}
	if spec.Validate(p) == nil {
		maxRow := func(x *tensor.Tensor) float64 {
			vals, _ := x.ToFloat64s()
			m := 0.0
			for i := 0; i < len(vals); i += sz.D {
				s := 0.0
				for _, e := range vals[i : i+sz.D] {
					s += e * e
				}
				m = max(m, s)
			}
			return math.Sqrt(m)
		}
		if p.ScaleValue()*maxRow(p.Q)*maxRow(p.K) > 1e4 {
			moderate = false
		}
	}
	return p, attntest.Tensor(t, r, dtype, sz.B, sz.H, sz.N, sz.D), moderate
}

// FuzzExecutorsAgainstReference runs cpuflash and the engine on fuzzed problems beside the
// reference. A problem the contract refuses gets a typed *spec.ArgError from all three.
// An accepted one gives, on every executor that runs it: no NaN; the same rows with no
// visible key (L = −Inf, O = 0); each O element within the range of the V values it
// averages (scaled by dropout); and, when the logits stay within ±1e4, O within a relative
// L2 tolerance of the reference and gradients within it relative to the size of their
// terms. `go test -fuzz FuzzExecutorsAgainstReference ./go/attention/attntest` explores.
func FuzzExecutorsAgainstReference(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint8(0), int64(-1), int64(-1), 0.0, 0.0, 0.0, uint8(0), uint32(0), uint8(0))
	f.Add(uint64(2), uint8(0), uint8(2), int64(3), int64(math.MaxInt64), 0.5, 2.0, 0.2, uint8(2), math.Float32bits(-math.MaxFloat32), uint8(7))
	f.Add(uint64(3), uint8(1), uint8(1), int64(math.MaxInt64), int64(math.MaxInt64-1), 0.0, 0.0, 0.0, uint8(1), uint32(0), uint8(3))
	f.Add(uint64(4), uint8(2), uint8(0), int64(math.MinInt64), int64(0), 1e39, 1e-320, 0.5, uint8(2), math.Float32bits(-1e9), uint8(5))
	f.Add(uint64(5), uint8(0), uint8(2), int64(0), int64(0), float64(1<<24), 0.0, 0.0, uint8(2), math.Float32bits(3e38), uint8(0))
	ref := fallback.NewExecutor()
	flash := cpuflash.New(cpuflash.Params{Workers: 2})
	eng, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{Workers: 2})}, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = eng.Close() })
	f.Fuzz(func(t *testing.T, seed uint64, dt, causal uint8, left, right int64, scale, softcap, drop float64, maskKind uint8, biasBits uint32, views uint8) {
		if seed%4 != 0 {
			// Three runs in four fold the raw values into the accepted ranges, so that most
			// problems are valid (window bounds keep their full int64 range); the fourth
			// passes them as they are, to check the refusals.
			scale, softcap, left, right, drop = fold(scale), fold(softcap), foldWindow(left), foldWindow(right), math.Mod(math.Abs(drop), 1)
			if math.IsNaN(drop) {
				drop = 0
			}
			causal %= 3
		}
		p, dO, moderate := fuzzInput(t, seed, dt, causal, left, right, scale, softcap, drop, maskKind, biasBits, views)
		ctx := context.Background()
		execs := []struct {
			name string
			x    attntest.Attention
		}{{"cpuflash", flash}, {"engine", eng}}
		if verr := spec.Validate(p); verr != nil {
			for _, e := range append(execs, struct {
				name string
				x    attntest.Attention
			}{"reference", ref}) {
				_, err := e.x.Forward(ctx, p, nil)
				var ae *spec.ArgError
				if !errors.As(err, &ae) || ae.Arg == "" {
					t.Fatalf("%s: invalid problem (%v) got %v, want a typed *spec.ArgError", e.name, verr, err)
				}
			}
			return
		}
		want := run(t, "reference", ref, p, dO)
		// Relative L2 bounds; gradients also pass within attntest.GradErrors' floor where
		// near-one-hot rows make them cancel.
		tol := map[tensor.DType]float64{tensor.Float32: 2e-4, tensor.Float16: 4e-3, tensor.BFloat16: 3e-2}[p.Q.DType()]
		for _, e := range execs {
			if x, ok := e.x.(spec.Executor); ok && x.Supports(p) != nil {
				continue // declined: the engine covers the fallback
			}
			got := run(t, e.name, e.x, p, dO)
			check(t, e.name, p, dO, want, got, moderate, tol)
		}
	})
}

// fold keeps a scale or softcap inside the accepted range and maps the rest to 0 (the
// default scale, no softcap).
func fold(x float64) float64 {
	if x >= spec.MinScale && x <= spec.MaxScale {
		return x
	}
	return 0
}

// foldWindow maps bounds below WindowUnbounded onto [0, MaxInt64-1], one to one.
func foldWindow(x int64) int64 {
	if x >= -1 {
		return x
	}
	return -(x + 2)
}

type outputs struct{ o, l, dq, dk, dv []float64 }

func run(t *testing.T, name string, x attntest.Attention, p *spec.Problem, dO *tensor.Tensor) *outputs {
	t.Helper()
	ctx := context.Background()
	s, err := x.Forward(ctx, p, nil)
	if err != nil {
		t.Fatalf("%s forward of a valid problem: %v", name, err)
	}
	out := &outputs{o: attntest.Values(t, s.O), l: attntest.Values(t, s.L)}
	g, err := x.Backward(ctx, p, s, dO, nil)
	if err != nil {
		var ae *spec.ArgError
		if errors.As(err, &ae) && ae.Arg == "Saved.L" {
			return out // L overflowed to +Inf (logits beyond ±1e4 on a huge scale): refused, typed
		}
		t.Fatalf("%s backward of a valid problem: %v", name, err)
	}
	out.dq, out.dk, out.dv = attntest.Values(t, g.DQ), attntest.Values(t, g.DK), attntest.Values(t, g.DV)
	return out
}

func check(t *testing.T, name string, p *spec.Problem, dO *tensor.Tensor, want, got *outputs, moderate bool, tol float64) {
	t.Helper()
	d := p.Dims()
	for _, x := range [][]float64{got.o, got.dq, got.dk, got.dv} {
		for i, v := range x {
			if math.IsNaN(v) {
				t.Fatalf("%s: NaN at %d of a finite valid problem (moderate %v)", name, i, moderate)
			}
		}
	}
	vals, _ := p.V.ToFloat64s()
	vmax := 0.0
	for _, v := range vals {
		vmax = max(vmax, math.Abs(v))
	}
	bound := vmax/(1-p.Dropout.P)*(1+1e-2) + 1e-6
	for r := range want.l {
		if math.IsInf(want.l[r], -1) != math.IsInf(got.l[r], -1) {
			t.Fatalf("%s: row %d: L = %v, reference %v (fully masked rows differ)", name, r, got.l[r], want.l[r])
		}
		for j := 0; j < d.D; j++ {
			o := got.o[r*d.D+j]
			if math.IsInf(want.l[r], -1) && o != 0 {
				t.Fatalf("%s: fully masked row %d has O = %v", name, r, o)
			}
			if math.Abs(o) > bound {
				t.Fatalf("%s: O[%d, %d] = %v outside the range of V (max |v| %v, dropout %v)", name, r, j, o, vmax, p.Dropout.P)
			}
		}
	}
	if !moderate {
		return
	}
	// Relative L2, except where the reference's O is itself below float32's range (a row
	// whose only kept key has P ≈ 1e-43 gives O ≈ 1e-42 in float64 and 0 in float32).
	diff := make([]float64, len(got.o))
	for i := range diff {
		diff[i] = got.o[i] - want.o[i]
	}
	if nd, nw := norm(diff), norm(want.o); nd > max(tol*nw, 1e-30*vmax*math.Sqrt(float64(len(diff)))) {
		t.Fatalf("%s: O differs from the reference: ‖got − want‖ %.3g, ‖want‖ %.3g (relative %.3g > %.3g); %v dims %+v options %+v window %+v", name, nd, nw, nd/nw, tol, p.Q.DType(), p.Dims(), p.Options, p.Window)
	}
	if got.dq == nil || want.dq == nil {
		return
	}
	for _, g := range attntest.GradErrors(p, dO, [3][]float64{want.dq, want.dk, want.dv}, [3][]float64{got.dq, got.dk, got.dv}) {
		if !g.OK(tol) {
			t.Fatalf("%s: %v, tol %g; %v dims %+v options %+v", name, g, tol, p.Q.DType(), p.Dims(), p.Options)
		}
	}
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
