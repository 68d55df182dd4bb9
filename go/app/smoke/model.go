package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
	"github.com/orchard-ml/orchard/go/tensor"
)

// model is the smallest network that needs attention to reverse a sequence:
//
//	x      = tokEmb[tokens] + posEmb          (B, T, C)
//	h      = x + MHA(x)                       (B, T, C)   non-causal self-attention
//	logits = h·Wh + bh                        (B, T, V)
//	loss   = mean cross-entropy(logits, targets)
//
// Position t must copy the token at position T−1−t; only attention moves information
// between positions, so without it the loss cannot fall below log V.
type model struct {
	vocab, seq, dim int
	tok, pos        optim.Param // (V, C), (T, C)
	wh, bh          optim.Param // (C, V), (V)
	mha             *layer.MultiHeadAttention
}

// saved is what forward keeps for backward.
type saved struct {
	batch   int
	tokens  []int // (B, T)
	targets []int // (B, T)
	mha     *layer.Saved
	h       []float32 // (B·T, C) the residual stream after attention
	probs   []float32 // (B·T, V) softmax of the logits
}

func newParam(name string, rng *rand.Rand, std float64, noDecay bool, shape ...int) (optim.Param, error) {
	v, err := tensor.New(tensor.Float32, shape...)
	if err != nil {
		return optim.Param{}, err
	}
	g, err := tensor.New(tensor.Float32, shape...)
	if err != nil {
		return optim.Param{}, err
	}
	vs, _ := v.Float32s()
	for i := range vs {
		vs[i] = float32(std * rng.NormFloat64())
	}
	return optim.Param{Name: name, Value: v, Grad: g, NoDecay: noDecay}, nil
}

func newModel(vocab, seq int, mha *layer.MultiHeadAttention, seed int64) (*model, error) {
	mp := mha.Params()
	if mp.DType != tensor.Float32 {
		return nil, fmt.Errorf("smoke: the model computes in float32, the layer in %v", mp.DType)
	}
	c := mp.Dim
	rng := rand.New(rand.NewPCG(uint64(seed), 0x736d6f6b65)) // "smoke"
	m := &model{vocab: vocab, seq: seq, dim: c, mha: mha}
	var err error
	if m.tok, err = newParam("tok_emb", rng, 1/math.Sqrt(float64(c)), true, vocab, c); err != nil {
		return nil, err
	}
	if m.pos, err = newParam("pos_emb", rng, 1/math.Sqrt(float64(c)), true, seq, c); err != nil {
		return nil, err
	}
	if m.wh, err = newParam("W_head", rng, 1/math.Sqrt(float64(c)), false, c, vocab); err != nil {
		return nil, err
	}
	if m.bh, err = newParam("b_head", rng, 0, true, vocab); err != nil {
		return nil, err
	}
	return m, nil
}

// parameters lists every trainable tensor: the model's and the layer's.
func (m *model) parameters() []optim.Param {
	return append([]optim.Param{m.tok, m.pos, m.wh, m.bh}, m.mha.Parameters()...)
}

func f32(p optim.Param) (val, grad []float32) {
	val, _ = p.Value.Float32s()
	grad, _ = p.Grad.Float32s()
	return val, grad
}

// forward runs the model on tokens and targets (B·T each, row-major) and returns the mean
// cross-entropy and the number of positions whose argmax is the target.
func (m *model) forward(ctx context.Context, tokens, targets []int, batch int) (loss float64, correct int, s *saved, err error) {
	B, T, C, V := batch, m.seq, m.dim, m.vocab
	tok, _ := f32(m.tok)
	pos, _ := f32(m.pos)
	wh, _ := f32(m.wh)
	bh, _ := f32(m.bh)

	// F1. embeddings: x[b, t] = tokEmb[tokens[b, t]] + posEmb[t]
	x, err := tensor.New(tensor.Float32, B, T, C) // (B, T, C)
	if err != nil {
		return 0, 0, nil, err
	}
	xs, _ := x.Float32s()
	for r, id := range tokens {
		row := xs[r*C : (r+1)*C]
		te, pe := tok[id*C:(id+1)*C], pos[(r%T)*C:(r%T+1)*C]
		for c := range row {
			row[c] = te[c] + pe[c]
		}
	}

	// F2. attention with a residual connection: h = x + MHA(x)
	a, ms, err := m.mha.Forward(ctx, x) // (B, T, C)
	if err != nil {
		return 0, 0, nil, err
	}
	as, _ := a.Float32s()
	h := make([]float32, B*T*C) // (B·T, C)
	for i := range h {
		h[i] = xs[i] + as[i]
	}

	// F3. head: logits = h·Wh + bh, then F4. softmax and cross-entropy
	probs := make([]float32, B*T*V) // (B·T, V)
	logits := make([]float64, V)
	for r := range B * T {
		hr := h[r*C : (r+1)*C]
		for v := range logits {
			logits[v] = float64(bh[v])
		}
		for c, hv := range hr {
			for v, w := range wh[c*V : (c+1)*V] {
				logits[v] += float64(hv) * float64(w)
			}
		}
		best, mx := 0, math.Inf(-1)
		for v, l := range logits {
			if l > mx {
				best, mx = v, l
			}
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l - mx)
		}
		for v, l := range logits {
			probs[r*V+v] = float32(math.Exp(l-mx) / z)
		}
		loss += mx + math.Log(z) - logits[targets[r]]
		if best == targets[r] {
			correct++
		}
	}
	loss /= float64(B * T)
	return loss, correct, &saved{batch: B, tokens: tokens, targets: targets, mha: ms, h: h, probs: probs}, nil
}

// backward adds the gradient of the mean cross-entropy to every parameter's buffer; each
// step inverts the forward step it names.
func (m *model) backward(ctx context.Context, s *saved) error {
	B, T, C, V := s.batch, m.seq, m.dim, m.vocab
	_, dtok := f32(m.tok)
	_, dpos := f32(m.pos)
	wh, dwh := f32(m.wh)
	_, dbh := f32(m.bh)
	n := float32(B * T)

	// B4 inverts F4: dlogits = (softmax − onehot(target)) / (B·T)
	dlogits := make([]float32, B*T*V) // (B·T, V)
	for r := range B * T {
		for v := range V {
			dlogits[r*V+v] = s.probs[r*V+v] / n
		}
		dlogits[r*V+s.targets[r]] -= 1 / n
	}

	// B3 inverts F3: dWh += hᵀ·dlogits, dbh += Σ dlogits, dh = dlogits·Whᵀ
	dh, err := tensor.New(tensor.Float32, B, T, C) // (B, T, C)
	if err != nil {
		return err
	}
	dhs, _ := dh.Float32s()
	for r := range B * T {
		dl, hr, dhr := dlogits[r*V:(r+1)*V], s.h[r*C:(r+1)*C], dhs[r*C:(r+1)*C]
		for v, g := range dl {
			dbh[v] += g
		}
		for c := range C {
			w, dw := wh[c*V:(c+1)*V], dwh[c*V:(c+1)*V]
			var acc float32
			for v, g := range dl {
				dw[v] += hr[c] * g
				acc += g * w[v]
			}
			dhr[c] = acc
		}
	}

	// B2 inverts F2, h = x + MHA(x): dx = dh + MHA.Backward(dh)
	dxa, err := m.mha.Backward(ctx, s.mha, dh) // (B, T, C)
	if err != nil {
		return err
	}
	dxas, _ := dxa.Float32s()

	// B1 inverts F1: dtokEmb[tokens[b, t]] += dx[b, t], dposEmb[t] += dx[b, t]
	for r, id := range s.tokens {
		dt, dp := dtok[id*C:(id+1)*C], dpos[(r%T)*C:(r%T+1)*C]
		for c := range C {
			g := dhs[r*C+c] + dxas[r*C+c]
			dt[c] += g
			dp[c] += g
		}
	}
	return nil
}

// reversalBatch draws B random sequences of length T over [0, V) and their reversals.
func reversalBatch(rng *rand.Rand, B, T, V int) (tokens, targets []int) {
	tokens, targets = make([]int, B*T), make([]int, B*T)
	for b := range B {
		for t := range T {
			tokens[b*T+t] = rng.IntN(V)
		}
		for t := range T {
			targets[b*T+t] = tokens[b*T+T-1-t]
		}
	}
	return tokens, targets
}
