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
// nil for none). Four rows of w are folded into each pass over an output row.
func linear[T num](out, in, w, b []T, rows, fanIn, fanOut int) {
	parallelFor(rows, fanIn*fanOut, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := out[r*fanOut : (r+1)*fanOut]
			if b != nil {
				copy(o, b)
			} else {
				clear(o)
			}
			x := in[r*fanIn : (r+1)*fanIn]
			k := 0
			for ; k+4 <= fanIn; k += 4 {
				x0, x1, x2, x3 := x[k], x[k+1], x[k+2], x[k+3]
				w0 := w[k*fanOut:][:len(o)]
				w1 := w[(k+1)*fanOut:][:len(o)]
				w2 := w[(k+2)*fanOut:][:len(o)]
				w3 := w[(k+3)*fanOut:][:len(o)]
				for j := range o {
					o[j] += x0*w0[j] + x1*w1[j] + x2*w2[j] + x3*w3[j]
				}
			}
			for ; k < fanIn; k++ {
				xk, wk := x[k], w[k*fanOut:][:len(o)]
				for j := range o {
					o[j] += xk * wk[j]
				}
			}
		}
	})
}

// linearInputGrad computes din (rows, fanIn) = dout (rows, fanOut) · wᵀ, or adds it to din
// when accumulate is set. Four dot products share each pass over a row of dout.
func linearInputGrad[T num](din, dout, w []T, rows, fanIn, fanOut int, accumulate bool) {
	parallelFor(rows, fanIn*fanOut, func(lo, hi int) {
		var s [4]T
		for r := lo; r < hi; r++ {
			g := dout[r*fanOut : (r+1)*fanOut]
			di := din[r*fanIn : (r+1)*fanIn]
			for k := 0; k < fanIn; k += 4 {
				n := min(4, fanIn-k)
				if n == 4 {
					w0 := w[k*fanOut:][:len(g)]
					w1 := w[(k+1)*fanOut:][:len(g)]
					w2 := w[(k+2)*fanOut:][:len(g)]
					w3 := w[(k+3)*fanOut:][:len(g)]
					var s0, s1, s2, s3 T
					for j, gj := range g {
						s0 += gj * w0[j]
						s1 += gj * w1[j]
						s2 += gj * w2[j]
						s3 += gj * w3[j]
					}
					s = [4]T{s0, s1, s2, s3}
				} else {
					for q := range n {
						wq := w[(k+q)*fanOut:][:len(g)]
						var sq T
						for j, gj := range g {
							sq += gj * wq[j]
						}
						s[q] = sq
					}
				}
				for q := range n {
					if accumulate {
						di[k+q] += s[q]
					} else {
						di[k+q] = s[q]
					}
				}
			}
		}
	})
}

// linearWeightGrad adds inᵀ (fanIn, rows) · dout (rows, fanOut) into dw (fanIn, fanOut).
// Goroutines split the rows of dw; each sums over the input rows in order, four at a
// time, so the result does not depend on the split.
func linearWeightGrad[T num](dw, in, dout []T, rows, fanIn, fanOut int) {
	parallelFor(fanIn, rows*fanOut, func(lo, hi int) {
		r := 0
		for ; r+4 <= rows; r += 4 {
			i0, i1, i2, i3 := in[r*fanIn:][:fanIn], in[(r+1)*fanIn:][:fanIn], in[(r+2)*fanIn:][:fanIn], in[(r+3)*fanIn:][:fanIn]
			d0 := dout[r*fanOut:][:fanOut]
			d1 := dout[(r+1)*fanOut:][:fanOut]
			d2 := dout[(r+2)*fanOut:][:fanOut]
			d3 := dout[(r+3)*fanOut:][:fanOut]
			for k := lo; k < hi; k++ {
				x0, x1, x2, x3 := i0[k], i1[k], i2[k], i3[k]
				dk := dw[k*fanOut:][:fanOut]
				for j := range dk {
					dk[j] += x0*d0[j] + x1*d1[j] + x2*d2[j] + x3*d3[j]
				}
			}
		}
		for ; r < rows; r++ {
			ir := in[r*fanIn:][:fanIn]
			dr := dout[r*fanOut:][:fanOut]
			for k := lo; k < hi; k++ {
				x := ir[k]
				dk := dw[k*fanOut:][:fanOut]
				for j := range dk {
					dk[j] += x * dr[j]
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
