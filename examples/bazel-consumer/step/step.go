package step

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Result is one step's outcome: which executor ran, and the largest absolute difference
// between the engine's O, dQ, dK, dV and the reference's.
type Result struct {
	Calls   map[string]int64 // completed calls per executor name
	MaxDiff float64
}

// Run draws a causal GQA problem from seed ([B, H, N, D] = [2, 4, 96, 32], 2 KV heads),
// runs forward and backward through an engine with the CPU flash executor (the reference
// behind it), and the same through the reference executor alone.
func Run(ctx context.Context, seed uint64) (Result, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	randn := func(shape ...int) (*tensor.Tensor, error) {
		t, err := tensor.New(tensor.Float32, shape...)
		if err != nil {
			return nil, err
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return t, nil
	}
	var (
		q, k, v, dO *tensor.Tensor
		err         error
	)
	for _, x := range []struct {
		t     **tensor.Tensor
		shape []int
	}{{&q, []int{2, 4, 96, 32}}, {&k, []int{2, 2, 96, 32}}, {&v, []int{2, 2, 96, 32}}, {&dO, []int{2, 4, 96, 32}}} {
		if *x.t, err = randn(x.shape...); err != nil {
			return Result{}, err
		}
	}
	p := &spec.Problem{Q: q, K: k, V: v, Options: spec.Options{Causal: spec.CausalTopLeft}}

	engine, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{cpuflash.New(cpuflash.Params{})}})
	if err != nil {
		return Result{}, err
	}
	defer engine.Close()
	saved, err := engine.Forward(ctx, p, nil)
	if err != nil {
		return Result{}, fmt.Errorf("forward: %w", err)
	}
	grads, err := engine.Backward(ctx, p, saved, dO, nil)
	if err != nil {
		return Result{}, fmt.Errorf("backward: %w", err)
	}

	ref := fallback.NewExecutor()
	rs, err := ref.Forward(ctx, p, nil)
	if err != nil {
		return Result{}, fmt.Errorf("reference forward: %w", err)
	}
	rg, err := ref.Backward(ctx, p, rs, dO, nil)
	if err != nil {
		return Result{}, fmt.Errorf("reference backward: %w", err)
	}
	res := Result{Calls: engine.Stats().Calls}
	for _, pair := range [][2]*tensor.Tensor{{saved.O, rs.O}, {grads.DQ, rg.DQ}, {grads.DK, rg.DK}, {grads.DV, rg.DV}} {
		d, err := maxAbsDiff(pair[0], pair[1])
		if err != nil {
			return Result{}, err
		}
		res.MaxDiff = math.Max(res.MaxDiff, d)
	}
	return res, nil
}

func maxAbsDiff(a, b *tensor.Tensor) (float64, error) {
	x, err := a.Float32s()
	if err != nil {
		return 0, err
	}
	y, err := b.Float32s()
	if err != nil {
		return 0, err
	}
	if len(x) != len(y) {
		return 0, fmt.Errorf("step: %d elements against %d", len(x), len(y))
	}
	m := 0.0
	for i := range x {
		d := math.Abs(float64(x[i]) - float64(y[i]))
		if math.IsNaN(d) {
			return math.Inf(1), nil
		}
		m = math.Max(m, d)
	}
	return m, nil
}
