package layer

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/orchard-ml/orchard/go/tensor"
)

// num is the element type the layer computes in.
type num interface{ float32 | float64 }

func dtypeOf[T num]() tensor.DType {
	var z T
	if _, ok := any(z).(float32); ok {
		return tensor.Float32
	}
	return tensor.Float64
}

// data views a contiguous host tensor of dtype T; nil for a nil tensor. Callers have
// checked dtype, layout and storage.
func data[T num](t *tensor.Tensor) []T {
	if t == nil {
		return nil
	}
	var s any
	if dtypeOf[T]() == tensor.Float32 {
		s, _ = t.Float32s()
	} else {
		s, _ = t.Float64s()
	}
	return s.([]T)
}

// alloc returns a new zeroed contiguous tensor of dtype T and its elements.
func alloc[T num](shape ...int) (*tensor.Tensor, []T, error) {
	t, err := tensor.New(dtypeOf[T](), shape...)
	if err != nil {
		return nil, nil, fmt.Errorf("layer: allocating %v: %w", shape, err)
	}
	return t, data[T](t), nil
}

// result checks a tensor an Attention returned and views its elements.
func result[T num](what string, t *tensor.Tensor, shape ...int) ([]T, error) {
	if t == nil {
		return nil, fmt.Errorf("layer: %s is missing", what)
	}
	if t.DType() != dtypeOf[T]() || !equalShape(t.Shape(), shape) {
		return nil, fmt.Errorf("layer: %s is %v %v, want %v %v", what, t.DType(), t.Shape(), dtypeOf[T](), shape)
	}
	if !t.Storage().Kind().HostVisible() {
		return nil, fmt.Errorf("layer: %s is in %v storage, which the CPU cannot read", what, t.Storage().Kind())
	}
	c, _, err := t.Contiguous()
	if err != nil {
		return nil, fmt.Errorf("layer: %s: %w", what, err)
	}
	return data[T](c), nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitHeads copies src (B, T, heads, Dh) — rows of a projection — into dst
// (B, heads, T, Dh), the attention layout.
func splitHeads[T num](dst, src []T, B, n, heads, dh int) {
	for b := range B {
		for t := range n {
			row := src[(b*n+t)*heads*dh:]
			for h := range heads {
				copy(dst[((b*heads+h)*n+t)*dh:][:dh], row[h*dh:(h+1)*dh])
			}
		}
	}
}

// mergeHeads is the inverse of splitHeads: src (B, heads, T, Dh) → dst (B, T, heads·Dh).
func mergeHeads[T num](dst, src []T, B, n, heads, dh int) {
	for b := range B {
		for t := range n {
			row := dst[(b*n+t)*heads*dh:]
			for h := range heads {
				copy(row[h*dh:(h+1)*dh], src[((b*heads+h)*n+t)*dh:][:dh])
			}
		}
	}
}

// The three products of a linear map out = in·W + b and its gradients, on row-major
// matrices. Each output element is summed in a fixed order whatever the split across
// goroutines, so results are bitwise reproducible.

// linear computes out (rows, fanOut) = in (rows, fanIn) · w (fanIn, fanOut) + b (fanOut;
// nil for none).
func linear[T num](out, in, w, b []T, rows, fanIn, fanOut int) {
	parallelFor(rows, fanIn*fanOut, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := out[r*fanOut : (r+1)*fanOut]
			if b != nil {
				copy(o, b)
			} else {
				clear(o)
			}
			for k, x := range in[r*fanIn : (r+1)*fanIn] {
				wk := w[k*fanOut:][:len(o)]
				for j := range o {
					o[j] += x * wk[j]
				}
			}
		}
	})
}

// linearInputGrad computes din (rows, fanIn) = dout (rows, fanOut) · wᵀ, or adds it to din
// when accumulate is set.
func linearInputGrad[T num](din, dout, w []T, rows, fanIn, fanOut int, accumulate bool) {
	parallelFor(rows, fanIn*fanOut, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr := dout[r*fanOut : (r+1)*fanOut]
			di := din[r*fanIn : (r+1)*fanIn]
			for k := range di {
				wk := w[k*fanOut:][:len(dr)]
				var s T
				for j, g := range dr {
					s += g * wk[j]
				}
				if accumulate {
					di[k] += s
				} else {
					di[k] = s
				}
			}
		}
	})
}

// linearWeightGrad adds inᵀ (fanIn, rows) · dout (rows, fanOut) into dw (fanIn, fanOut).
// Goroutines split the rows of dw, and each sums over the input rows in order.
func linearWeightGrad[T num](dw, in, dout []T, rows, fanIn, fanOut int) {
	parallelFor(fanIn, rows*fanOut, func(lo, hi int) {
		for r := range rows {
			ir := in[r*fanIn : (r+1)*fanIn]
			dr := dout[r*fanOut : (r+1)*fanOut]
			for k := lo; k < hi; k++ {
				x := ir[k]
				dk := dw[k*fanOut:][:len(dr)]
				for j, g := range dr {
					dk[j] += x * g
				}
			}
		}
	})
}

// parallelFor runs f over [0, n) in contiguous chunks, one per available CPU, when the
// work (n · perItem multiply-adds) is large enough to pay for goroutines.
func parallelFor(n, perItem int, f func(lo, hi int)) {
	const minWork = 1 << 15
	workers := min(runtime.GOMAXPROCS(0), n, max(1, n*perItem/minWork))
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}
