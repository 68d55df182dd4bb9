package spec

import (
	"context"
	"math"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/tensor"
)

// Causal selects causal masking and the alignment of the diagonal.
type Causal uint8

// Causal modes.
const (
	// CausalNone: no causal masking; windows are measured from the top-left diagonal.
	CausalNone Causal = iota
	// CausalTopLeft: query i sees keys j ≤ i (PyTorch's is_causal).
	CausalTopLeft
	// CausalBottomRight: query i sees keys j ≤ i + m − n, so the last query sees the last
	// key (FlashAttention ≥ 2.1; KV-cache decoding).
	CausalBottomRight
)

func (c Causal) String() string {
	switch c {
	case CausalNone:
		return "none"
	case CausalTopLeft:
		return "top-left"
	case CausalBottomRight:
		return "bottom-right"
	}
	return "invalid"
}

// MaskKind says how mask values are read.
type MaskKind uint8

// Mask kinds.
const (
	// MaskBool: Keep[i] true means the element may take part (PyTorch's convention).
	MaskBool MaskKind = iota + 1
	// MaskAdditive: Bias[i] is added to the logit; −Inf hides the element.
	MaskAdditive
)

// Mask is an optional attention mask, row-major over Shape = [Bm, Hm, N, M] with
// Bm ∈ {1, B} and Hm ∈ {1, H} (size 1 broadcasts). Exactly one of Keep and Bias is set,
// matching Kind.
type Mask struct {
	Kind  MaskKind
	Shape [4]int
	Keep  []bool
	Bias  []float32
}

// Index returns the position in Keep or Bias of element (b, h, i, j).
func (m *Mask) Index(b, h, i, j int) int {
	if m.Shape[0] == 1 {
		b = 0
	}
	if m.Shape[1] == 1 {
		h = 0
	}
	return ((b*m.Shape[1]+h)*m.Shape[2]+i)*m.Shape[3] + j
}

// WindowUnbounded leaves one side of a window open.
const WindowUnbounded = -1

// Window is a sliding window around the diagonal d(i): keys j with
// d(i) − Left ≤ j ≤ d(i) + Right stay visible. Each bound is ≥ 0 or WindowUnbounded.
type Window struct {
	Left, Right int
}

// Dropout is dropout on the attention probabilities. P = 0 turns it off. The stream is
// package philox's, keyed by (Seed, Offset); callers advance Offset between steps.
type Dropout struct {
	P      float64
	Seed   uint64
	Offset uint64
}

// Options are the knobs of one attention call. The zero value is plain softmax
// attention with the default scale.
type Options struct {
	Scale    float64 // 0 means 1/sqrt(D); otherwise finite and > 0
	Causal   Causal
	Mask     *Mask
	Window   *Window
	Softcap  float64 // 0 means off; otherwise finite and > 0
	Dropout  Dropout
	SeqLensQ []int // optional, len B: valid query rows per batch, each in [0, N]
	SeqLensK []int // optional, len B: valid key rows per batch, each in [0, M]
	// GradDType is the dtype of dQ, dK and dV: 0 means Q's dtype; tensor.Float32 asks for
	// float32 gradients whatever the input dtype (float16 gradients can overflow 65504).
	GradDType tensor.DType
}

// Problem is one attention call: the inputs and the options.
type Problem struct {
	Q *tensor.Tensor // [B, H, N, D]
	K *tensor.Tensor // [B, Hkv, M, D]
	V *tensor.Tensor // [B, Hkv, M, D]
	Options
}

// Dims are the sizes of a problem.
type Dims struct {
	B, H, Hkv, N, M, D int
}

// Group is the number of query heads that share one key/value head.
func (d Dims) Group() int { return d.H / d.Hkv }

// KVHead returns the key/value head read by query head h.
func (d Dims) KVHead(h int) int { return h / (d.H / d.Hkv) }

// Dims returns the sizes; call Validate first.
func (p *Problem) Dims() Dims {
	q, k := p.Q.Shape(), p.K.Shape()
	return Dims{B: q[0], H: q[1], Hkv: k[1], N: q[2], M: k[2], D: q[3]}
}

// ScaleValue returns the scale, resolving the default.
func (p *Problem) ScaleValue() float64 {
	if p.Scale != 0 {
		return p.Scale
	}
	return 1 / math.Sqrt(float64(p.Q.Dim(3)))
}

// LensQ returns the valid query length of batch b.
func (p *Problem) LensQ(b int) int {
	if p.SeqLensQ == nil {
		return p.Q.Dim(2)
	}
	return p.SeqLensQ[b]
}

// LensK returns the valid key length of batch b.
func (p *Problem) LensK(b int) int {
	if p.SeqLensK == nil {
		return p.K.Dim(2)
	}
	return p.SeqLensK[b]
}

// Diagonal returns the key offset of the diagonal for batch b: d(i) = i + Diagonal(b).
func (p *Problem) Diagonal(b int) int {
	if p.Causal == CausalBottomRight {
		return p.LensK(b) - p.LensQ(b)
	}
	return 0
}

// KeyRange returns the half-open range [lo, hi) of keys that lengths, causal masking and
// the window leave visible to row i of batch b (before any bool mask). lo ≥ hi means none.
// Fast executors use it to skip whole blocks.
func (p *Problem) KeyRange(b, i int) (lo, hi int) {
	n, m := p.LensQ(b), p.LensK(b)
	if i >= n {
		return 0, 0
	}
	lo, hi = 0, m
	d := i + p.Diagonal(b)
	if p.Causal != CausalNone && d+1 < hi {
		hi = d + 1
	}
	if w := p.Window; w != nil {
		// Compared so that nothing overflows: any bound up to MaxInt is valid and a bound
		// past N + M simply hides nothing (d ∈ [−N, N + M], lo = 0, hi ≤ M).
		if w.Left != WindowUnbounded && d > w.Left {
			lo = d - w.Left // d − Left > 0 = lo
		}
		if w.Right != WindowUnbounded && w.Right < hi-d-1 {
			hi = d + w.Right + 1 // < hi
		}
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// Visible reports whether query row i of batch b, head h may attend key j: lengths,
// causal masking, the window and a bool mask all allow it.
func (p *Problem) Visible(b, h, i, j int) bool {
	lo, hi := p.KeyRange(b, i)
	if j < lo || j >= hi {
		return false
	}
	if m := p.Mask; m != nil && m.Kind == MaskBool {
		return m.Keep[m.Index(b, h, i, j)]
	}
	return true
}

// Bias returns the additive mask value for (b, h, i, j), or 0 without one.
func (p *Problem) Bias(b, h, i, j int) float64 {
	if m := p.Mask; m != nil && m.Kind == MaskAdditive {
		return float64(m.Bias[m.Index(b, h, i, j)])
	}
	return 0
}

// DropoutStream returns the philox stream of the problem's dropout (meaningful only when
// Dropout.P > 0).
func (p *Problem) DropoutStream() philox.Stream {
	return philox.NewStream(p.Dropout.P, p.Dropout.Seed, p.Dropout.Offset)
}

// GradDTypeValue returns the dtype of the gradients, resolving the default.
func (p *Problem) GradDTypeValue() tensor.DType {
	if p.GradDType != 0 {
		return p.GradDType
	}
	return p.Q.DType()
}

// Saved is what a forward pass returns and its backward pass needs: the output and the
// row logsumexp.
type Saved struct {
	O *tensor.Tensor // [B, H, N, D], the dtype of Q
	L *tensor.Tensor // [B, H, N], float32 or float64 (every backward accepts either)
}

// Grads are the gradients of the loss with respect to Q, K and V.
type Grads struct {
	DQ *tensor.Tensor // [B, H, N, D], GradDTypeValue()
	DK *tensor.Tensor // [B, Hkv, M, D], GradDTypeValue()
	DV *tensor.Tensor // [B, Hkv, M, D], GradDTypeValue()
}

// Executor computes attention. Executors never modify their inputs. Outputs they allocate
// are returned only on success: a failed call returns no partial tensors. Destinations the
// caller passes in (into) are written in place; after a failed call their contents are
// unspecified.
type Executor interface {
	// Name is a short stable identifier, e.g. "metal", "cpuflash", "reference".
	Name() string
	// Priority orders executors: higher runs first.
	Priority() int
	// Supports returns nil when the executor can run p (already validated), or an error
	// wrapping ErrUnsupported that says why not.
	Supports(p *Problem) error
	// Forward returns O and L. into may be nil; its non-nil fields are destinations (checked
	// by ValidateSavedInto) that the executor writes and returns instead of allocating.
	// Cancelling ctx stops the call between units of work with an error wrapping ctx.Err().
	Forward(ctx context.Context, p *Problem, into *Saved) (*Saved, error)
	// Backward returns dQ, dK and dV given the forward's saved state and dO; into as in
	// Forward (checked by ValidateGradsInto).
	Backward(ctx context.Context, p *Problem, s *Saved, dO *tensor.Tensor, into *Grads) (*Grads, error)
}
