package fallback_test

import (
	"math"
	"math/big"

	"github.com/orchard-ml/orchard/go/attention/philox"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// This file is a second, independent formulation of the contract, written from the text
// of spec's doc comment rather than from the reference: its own visibility rule (it does
// not call Problem.Visible, KeyRange or Bias), full matrices per (batch, head), elements
// read one at a time with At, P = exp(s − L) in the forward, and the backward in matrix
// form with Δ = rowsum(P ∘ dP) instead of rowsum(dO ∘ O).

// naiveOut is what the naive formulation computes, all row-major float64.
type naiveOut struct {
	O, L       []float64 // (B, H, N, D), (B, H, N)
	DQ, DK, DV []float64 // (B, H, N, D), (B, Hkv, M, D), (B, Hkv, M, D); nil without dO
}

func naiveVisible(p *spec.Problem, b, h, i, j int) bool {
	n, m := p.Q.Dim(2), p.K.Dim(2)
	if p.SeqLensQ != nil {
		n = p.SeqLensQ[b]
	}
	if p.SeqLensK != nil {
		m = p.SeqLensK[b]
	}
	if i >= n || j >= m {
		return false
	}
	diag := i
	if p.Causal == spec.CausalBottomRight {
		diag = i + m - n
	}
	if p.Causal != spec.CausalNone && j > diag {
		return false
	}
	if w := p.Window; w != nil {
		// In arbitrary precision, so that bounds up to MaxInt cannot wrap.
		bj, bd := big.NewInt(int64(j)), big.NewInt(int64(diag))
		if w.Left >= 0 && bj.Cmp(new(big.Int).Sub(bd, big.NewInt(int64(w.Left)))) < 0 {
			return false
		}
		if w.Right >= 0 && bj.Cmp(new(big.Int).Add(bd, big.NewInt(int64(w.Right)))) > 0 {
			return false
		}
	}
	if mk := p.Mask; mk != nil && mk.Kind == spec.MaskBool {
		return mk.Keep[naiveMaskIndex(mk, b, h, i, j)]
	}
	return true
}

func naiveMaskIndex(mk *spec.Mask, b, h, i, j int) int {
	bb, hh := b, h
	if mk.Shape[0] == 1 {
		bb = 0
	}
	if mk.Shape[1] == 1 {
		hh = 0
	}
	n, m := mk.Shape[2], mk.Shape[3]
	return bb*mk.Shape[1]*n*m + hh*n*m + i*m + j
}

func naiveAt(t *tensor.Tensor, idx ...int) float64 {
	v, err := t.At(idx...)
	if err != nil {
		panic(err) // indices come from the tensor's own shape
	}
	return v
}

// naiveAttention computes O and L of p, and the gradients when dO is not nil.
func naiveAttention(p *spec.Problem, dO *tensor.Tensor) naiveOut {
	B, H, N, D := p.Q.Dim(0), p.Q.Dim(1), p.Q.Dim(2), p.Q.Dim(3)
	Hkv, M := p.K.Dim(1), p.K.Dim(2)
	scale := p.Scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	c := p.Softcap
	keepScale := 1.0
	if p.Dropout.P > 0 {
		keepScale = 1 / (1 - p.Dropout.P)
	}
	stream := philox.NewStream(p.Dropout.P, p.Dropout.Seed, p.Dropout.Offset)
	out := naiveOut{O: make([]float64, B*H*N*D), L: make([]float64, B*H*N)}
	if dO != nil {
		out.DQ, out.DK, out.DV = make([]float64, B*H*N*D), make([]float64, B*Hkv*M*D), make([]float64, B*Hkv*M*D)
	}
	mat := func() [][]float64 {
		m := make([][]float64, N)
		for i := range m {
			m[i] = make([]float64, M)
		}
		return m
	}
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			g := h * Hkv / H // key/value head of query head h
			U, S, P, Z := mat(), mat(), mat(), mat()
			for i := 0; i < N; i++ {
				for j := 0; j < M; j++ {
					u := 0.0
					for e := 0; e < D; e++ {
						u += naiveAt(p.Q, b, h, i, e) * naiveAt(p.K, b, g, j, e)
					}
					U[i][j] = scale * u
					s := U[i][j]
					if c > 0 {
						s = c * math.Tanh(s/c)
					}
					if mk := p.Mask; mk != nil && mk.Kind == spec.MaskAdditive {
						s += float64(mk.Bias[naiveMaskIndex(mk, b, h, i, j)])
					}
					if !naiveVisible(p, b, h, i, j) {
						s = math.Inf(-1)
					}
					S[i][j] = s
					Z[i][j] = 1
					if p.Dropout.P > 0 && !stream.Keep(uint32((b*H+h)*N+i), j) {
						Z[i][j] = 0
					}
				}
			}
			for i := 0; i < N; i++ {
				r := (b*H+h)*N + i
				mx := math.Inf(-1)
				for _, s := range S[i] {
					if s > mx {
						mx = s
					}
				}
				if mx == math.Inf(-1) {
					out.L[r] = mx
					continue // P row stays 0
				}
				sum := 0.0
				for _, s := range S[i] {
					sum += math.Exp(s - mx)
				}
				out.L[r] = mx + math.Log(sum)
				for j, s := range S[i] {
					P[i][j] = math.Exp(s - out.L[r])
				}
				for e := 0; e < D; e++ {
					o := 0.0
					for j := 0; j < M; j++ {
						o += P[i][j] * Z[i][j] * keepScale * naiveAt(p.V, b, g, j, e)
					}
					out.O[r*D+e] = o
				}
			}
			if dO == nil {
				continue
			}
			// dP' = dO·Vᵀ, dP = dP' ∘ Z/(1−p), dS = P ∘ (dP − rowsum(P ∘ dP)).
			dS := mat()
			for i := 0; i < N; i++ {
				delta := 0.0
				dP := make([]float64, M)
				for j := 0; j < M; j++ {
					for e := 0; e < D; e++ {
						dP[j] += naiveAt(dO, b, h, i, e) * naiveAt(p.V, b, g, j, e)
					}
					dP[j] *= Z[i][j] * keepScale
					delta += P[i][j] * dP[j]
				}
				for j := 0; j < M; j++ {
					dS[i][j] = P[i][j] * (dP[j] - delta)
					if c > 0 {
						th := math.Tanh(U[i][j] / c)
						dS[i][j] *= 1 - th*th
					}
				}
			}
			// dV = P'ᵀ dO, dQ = scale·dS·K, dK = scale·dSᵀ·Q.
			for j := 0; j < M; j++ {
				for e := 0; e < D; e++ {
					kv := ((b*Hkv+g)*M+j)*D + e
					for i := 0; i < N; i++ {
						out.DV[kv] += P[i][j] * Z[i][j] * keepScale * naiveAt(dO, b, h, i, e)
						out.DK[kv] += scale * dS[i][j] * naiveAt(p.Q, b, h, i, e)
					}
				}
			}
			for i := 0; i < N; i++ {
				for e := 0; e < D; e++ {
					for j := 0; j < M; j++ {
						out.DQ[((b*H+h)*N+i)*D+e] += scale * dS[i][j] * naiveAt(p.K, b, g, j, e)
					}
				}
			}
		}
	}
	return out
}
