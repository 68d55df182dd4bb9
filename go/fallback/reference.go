package fallback

import (
	"context"
	"fmt"
	"math"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// executorName is the name the reference reports to the engine and in its errors.
const executorName = "reference"

// Forward computes O and L for p with every option of the contract, accumulating in
// float64. O comes back in Q's dtype, L in float64 whatever the input dtype (so that a
// backward recomputing P = exp(s − L) from it is exact), both new contiguous host tensors.
// It is ForwardContext with context.Background(): the default memory budget applies.
func Forward(p *spec.Problem) (*spec.Saved, error) {
	return ForwardContext(context.Background(), p)
}

// ForwardContext is Forward under ctx: it refuses, with a *spec.MemoryError, a problem
// whose working memory (ForwardMemory) exceeds spec.MemoryBudget(ctx), and stops between
// query rows with an error wrapping ctx.Err() once ctx is done.
func ForwardContext(ctx context.Context, p *spec.Problem) (*spec.Saved, error) {
	if err := spec.Validate(p); err != nil {
		return nil, err
	}
	if err := spec.CheckMemory(ctx, "reference: forward", ForwardMemory(p)); err != nil {
		return nil, err
	}
	x, err := readInputs(p)
	if err != nil {
		return nil, err
	}
	d := x.d
	o := make([]float64, d.B*d.H*d.N*d.D) // (B, H, N, D)
	l := make([]float64, d.B*d.H*d.N)     // (B, H, N)
	w := newWork(p)
	for b := 0; b < d.B; b++ {
		for h := 0; h < d.H; h++ {
			if err := x.forwardHead(ctx, p, b, h, w, o, l); err != nil {
				return nil, err
			}
		}
	}
	ot, err := tensor.FromFloat64s(p.Q.DType(), o, d.B, d.H, d.N, d.D)
	if err != nil {
		return nil, fmt.Errorf("fallback: building O: %w", err)
	}
	lt, err := tensor.FromFloat64s(tensor.Float64, l, d.B, d.H, d.N)
	if err != nil {
		return nil, fmt.Errorf("fallback: building L: %w", err)
	}
	return &spec.Saved{O: ot, L: lt}, nil
}

// Backward computes dQ, dK and dV from dO and the saved state of a forward pass of p. It
// recomputes the probabilities from the saved logsumexp, P = exp(s − L), with L as given
// (float32 or float64; the reference's own forward writes float64, which makes the pair
// exact); a row whose L is −Inf had no visible key and gets zero gradients. The saved O is
// not read: D_i = dO_i·O_i is taken from O_i recomputed in float64, which is the same
// quantity without the rounding of O to Q's dtype. It is BackwardContext with
// context.Background().
func Backward(p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, error) {
	return BackwardContext(context.Background(), p, s, dO)
}

// BackwardContext is Backward under ctx: over-budget problems (BackwardMemory) get a
// *spec.MemoryError, and a done ctx stops the call between query rows.
func BackwardContext(ctx context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor) (*spec.Grads, error) {
	if err := spec.ValidateBackward(p, s, dO); err != nil {
		return nil, err
	}
	if err := spec.CheckMemory(ctx, "reference: backward", BackwardMemory(p)); err != nil {
		return nil, err
	}
	x, err := readInputs(p)
	if err != nil {
		return nil, err
	}
	do, err := read("dO", dO) // (B, H, N, D)
	if err != nil {
		return nil, err
	}
	l, err := read("Saved.L", s.L) // (B, H, N)
	if err != nil {
		return nil, err
	}
	for i, v := range l {
		if math.IsNaN(v) || math.IsInf(v, 1) {
			return nil, &spec.ArgError{Arg: "Saved.L", Rule: fmt.Sprintf("element %d is %v; a logsumexp is finite, or −Inf for a row with no visible key", i, v)}
		}
	}
	d := x.d
	dq := make([]float64, d.B*d.H*d.N*d.D)   // (B, H, N, D)
	dk := make([]float64, d.B*d.Hkv*d.M*d.D) // (B, Hkv, M, D)
	dv := make([]float64, d.B*d.Hkv*d.M*d.D) // (B, Hkv, M, D)
	w := newWork(p)
	for b := 0; b < d.B; b++ {
		for h := 0; h < d.H; h++ {
			if err := x.backwardHead(ctx, p, b, h, w, l, do, dq, dk, dv); err != nil {
				return nil, err
			}
		}
	}
	dt := p.GradDTypeValue()
	g := &spec.Grads{}
	if g.DQ, err = tensor.FromFloat64s(dt, dq, d.B, d.H, d.N, d.D); err != nil {
		return nil, fmt.Errorf("fallback: building dQ: %w", err)
	}
	if g.DK, err = tensor.FromFloat64s(dt, dk, d.B, d.Hkv, d.M, d.D); err != nil {
		return nil, fmt.Errorf("fallback: building dK: %w", err)
	}
	if g.DV, err = tensor.FromFloat64s(dt, dv, d.B, d.Hkv, d.M, d.D); err != nil {
		return nil, fmt.Errorf("fallback: building dV: %w", err)
	}
	return g, nil
}

// ForwardMemory is the most memory, in bytes, Forward allocates for p (validated): float64
// copies of Q, K and V (a broadcast input is expanded), O and L in float64 and as the
// returned tensors, and O(M + D) scratch. It saturates at MaxInt64 instead of overflowing.
func ForwardMemory(p *spec.Problem) int64 {
	d := p.Dims()
	q, kv, rows := []int{d.B, d.H, d.N, d.D}, []int{d.B, d.Hkv, d.M, d.D}, []int{d.B, d.H, d.N}
	return spec.AddBytes(
		sized(8, q), sized(16, kv), // Q, K, V in float64
		sized(8, q), sized(8, rows), // O, L in float64
		sized(p.Q.DType().Size(), q), sized(8, rows), // the returned O and L
		workMemory(d))
}

// BackwardMemory is the most memory, in bytes, Backward allocates for p (validated):
// float64 copies of Q, K, V, dO and L, dQ, dK and dV in float64 and as the returned
// tensors, and O(M + D) scratch. It saturates at MaxInt64.
func BackwardMemory(p *spec.Problem) int64 {
	d := p.Dims()
	q, kv, rows := []int{d.B, d.H, d.N, d.D}, []int{d.B, d.Hkv, d.M, d.D}, []int{d.B, d.H, d.N}
	g := p.GradDTypeValue().Size()
	return spec.AddBytes(
		sized(16, q), sized(16, kv), sized(8, rows), // Q, dO, K, V and L in float64
		sized(8, q), sized(16, kv), // dQ, dK, dV in float64
		sized(g, q), sized(2*g, kv), // the returned gradients
		workMemory(d))
}

// sized is size · Π dims bytes, saturating.
func sized(size int, dims []int) int64 {
	return spec.MulBytes(append([]int{size}, dims...)...)
}

// workMemory is the scratch of newWork: at most six rows of M and one of D, in float64.
func workMemory(d spec.Dims) int64 {
	return spec.AddBytes(spec.MulBytes(48, d.M), spec.MulBytes(8, d.D))
}

// inputs are Q, K and V of one call, read into row-major float64.
type inputs struct {
	d spec.Dims
	q []float64 // (B, H, N, D)
	k []float64 // (B, Hkv, M, D)
	v []float64 // (B, Hkv, M, D)
}

func readInputs(p *spec.Problem) (*inputs, error) {
	x := &inputs{d: p.Dims()}
	var err error
	if x.q, err = read("Q", p.Q); err != nil {
		return nil, err
	}
	if x.k, err = read("K", p.K); err != nil {
		return nil, err
	}
	if x.v, err = read("V", p.V); err != nil {
		return nil, err
	}
	return x, nil
}

// read copies a tensor's elements into float64, or says why the reference cannot.
func read(arg string, t *tensor.Tensor) ([]float64, error) {
	if err := hostVisible(arg, t); err != nil {
		return nil, err
	}
	v, err := t.ToFloat64s()
	if err != nil {
		// Host-visible storage that hands out fewer bytes than the view reaches (a Storage
		// whose Bytes() is shorter than its Len()): the argument is broken.
		return nil, &spec.ArgError{Arg: arg, Rule: fmt.Sprintf("cannot be read: %v", err)}
	}
	return v, nil
}

// hostVisible returns an error wrapping spec.ErrUnsupported when the CPU cannot read t.
func hostVisible(arg string, t *tensor.Tensor) error {
	st := t.Storage()
	if !st.Kind().HostVisible() || st.Bytes() == nil {
		return spec.Unsupported(executorName, "%s is in %v storage, which the CPU cannot read", arg, st.Kind())
	}
	return nil
}

// work is the scratch state of one query row, reused across rows.
type work struct {
	s   []float64 // (M) logits of one row; −Inf where the element is not visible
	t   []float64 // (M) tanh(u/c) of the pre-cap logit u, with a softcap c; else nil
	z   []float64 // (M) dropout factors Z_ij / (1 − p) of one row (1 without dropout)
	pr  []float64 // (M) probabilities P_ij of one row
	dp  []float64 // (M) dP'_ij = dO_i·v_j of one row
	row []float64 // (D) one recomputed output row O_i
}

func newWork(p *spec.Problem) *work {
	d := p.Dims()
	w := &work{
		s:   make([]float64, d.M),
		z:   make([]float64, d.M),
		pr:  make([]float64, d.M),
		dp:  make([]float64, d.M),
		row: make([]float64, d.D),
	}
	if p.Softcap > 0 {
		w.t = make([]float64, d.M)
	}
	return w
}

// logits fills w.s (and w.t with a softcap) for row i of (b, h), in the order of the
// contract.
func (x *inputs) logits(p *spec.Problem, b, h, i int, w *work) {
	d := x.d
	kv := d.KVHead(h)
	scale, c := p.ScaleValue(), p.Softcap
	qi := x.q[((b*d.H+h)*d.N+i)*d.D:][:d.D] // (D)
	for j := 0; j < d.M; j++ {
		if !p.Visible(b, h, i, j) {
			w.s[j] = math.Inf(-1) // s_ij = −Inf when j is not visible from i
			continue
		}
		kj := x.k[((b*d.Hkv+kv)*d.M+j)*d.D:][:d.D] // (D)
		u := scale * dot(qi, kj)                   // s_ij = scale · q_i·k_j
		if c > 0 {
			w.t[j] = math.Tanh(u / c)
			u = c * w.t[j] // s_ij = c · tanh(s_ij / c)
		}
		w.s[j] = u + p.Bias(b, h, i, j) // s_ij = s_ij + bias_ij
	}
}

// stopped returns an error wrapping ctx.Err() once ctx is done.
func stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	return nil
}

// dropoutRow fills w.z with Z_ij / (1 − p) for row i of (b, h): the factor dropout puts on
// P_ij, 0 for a dropped element.
func dropoutRow(p *spec.Problem, b, h, i int, w *work) {
	if p.Dropout.P == 0 {
		for j := range w.z {
			w.z[j] = 1
		}
		return
	}
	st, r := p.DropoutStream(), philox.Scale(p.Dropout.P)
	d := p.Dims()
	row := philox.Row(b, h, i, d.H, d.N)
	for j := range w.z {
		w.z[j] = 0
		if st.Keep(row, j) {
			w.z[j] = r
		}
	}
}

// forwardHead computes the rows of O (B, H, N, D) and L (B, H, N) that belong to (b, h),
// one row of logits at a time; it checks ctx before each row.
func (x *inputs) forwardHead(ctx context.Context, p *spec.Problem, b, h int, w *work, o, l []float64) error {
	d := x.d
	kv := d.KVHead(h)
	for i := 0; i < d.N; i++ {
		if err := stopped(ctx); err != nil {
			return err
		}
		x.logits(p, b, h, i, w)
		s := w.s               // (M)
		r := (b*d.H+h)*d.N + i // row of (B, H, N)
		oi := o[r*d.D:][:d.D]  // (D)
		mx := math.Inf(-1)
		for _, v := range s {
			mx = max(mx, v)
		}
		if math.IsInf(mx, -1) {
			l[r] = mx // no visible key: O_i = 0, L_i = −Inf
			continue
		}
		sum := 0.0
		for _, v := range s {
			sum += math.Exp(v - mx)
		}
		l[r] = mx + math.Log(sum) // L_i = log Σ_j exp(s_ij)
		dropoutRow(p, b, h, i, w)
		for j, v := range s {
			pij := math.Exp(v-mx) / sum * w.z[j] // P'_ij = P_ij · Z_ij / (1 − p)
			if pij == 0 {
				continue
			}
			axpy(oi, pij, x.v[((b*d.Hkv+kv)*d.M+j)*d.D:][:d.D]) // O_i += P'_ij v_j
		}
	}
	return nil
}

// backwardHead adds the gradients that (b, h) contributes to dq (B, H, N, D) and to dk, dv
// (B, Hkv, M, D), given the saved L (B, H, N) and dO (B, H, N, D), recomputing the logits
// one row at a time. It inverts forwardHead and logits step by step, and checks ctx before
// each row.
func (x *inputs) backwardHead(ctx context.Context, p *spec.Problem, b, h int, w *work, l, do, dq, dk, dv []float64) error {
	d := x.d
	kv := d.KVHead(h)
	scale, c := p.ScaleValue(), p.Softcap
	for i := 0; i < d.N; i++ {
		if err := stopped(ctx); err != nil {
			return err
		}
		r := (b*d.H+h)*d.N + i // row of (B, H, N)
		li := l[r]
		if math.IsInf(li, -1) {
			continue // the forward saw no visible key: zero gradients
		}
		x.logits(p, b, h, i, w)
		s := w.s                // (M)
		qi := x.q[r*d.D:][:d.D] // (D)
		doi := do[r*d.D:][:d.D] // (D)
		dqi := dq[r*d.D:][:d.D] // (D)
		oi := w.row             // (D)
		clear(oi)
		dropoutRow(p, b, h, i, w)
		for j, v := range s {
			w.pr[j] = math.Exp(v - li) // P_ij = exp(s_ij − L_i), 0 where s_ij = −Inf
			w.dp[j] = 0
			if w.pr[j] == 0 {
				continue
			}
			at := ((b*d.Hkv+kv)*d.M + j) * d.D
			vj := x.v[at:][:d.D]
			pj := w.pr[j] * w.z[j]       // P'_ij
			w.dp[j] = dot(doi, vj)       // O_i = Σ_j P'_ij v_j  ⇒  dP'_ij = dO_i·v_j
			axpy(dv[at:][:d.D], pj, doi) //                       dV_j += P'_ij dO_i
			axpy(oi, pj, vj)             // recompute O_i for D_i
		}
		// With dP_ij = Z_ij/(1−p) · dP'_ij, Σ_j P_ij dP_ij = Σ_j P'_ij dO_i·v_j = dO_i·O_i:
		// the FlashAttention preprocess D_i holds with dropout too.
		di := dot(doi, oi)
		for j := range s {
			if w.pr[j] == 0 {
				continue
			}
			ds := w.pr[j] * (w.z[j]*w.dp[j] - di) // P = softmax(s)  ⇒  dS_ij = P_ij (dP_ij − D_i)
			if c > 0 {
				t := w.t[j]
				ds *= 1 - t*t // s = c·tanh(u/c)  ⇒  du = ds · (1 − tanh²(u/c))
			}
			ds *= scale // u = scale · q_i·k_j
			at := ((b*d.Hkv+kv)*d.M + j) * d.D
			axpy(dqi, ds, x.k[at:][:d.D]) // dQ_i += du_ij k_j
			axpy(dk[at:][:d.D], ds, qi)   // dK_j += du_ij q_i (summed over the group's heads)
		}
	}
	return nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// axpy adds a·x to y.
func axpy(y []float64, a float64, x []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}
