package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
)

// trainConfig is the training run; the layer's shape comes with the layer.
type trainConfig struct {
	Steps, Batch, Seq, Vocab int
	LR                       float64
	Seed                     int64
	LogEvery                 int // a progress line every LogEvery steps (and on the last)
	Window                   int // steps averaged for the first and last loss
}

// result is what a run measured.
type result struct {
	Losses      []float64
	First, Last float64 // mean loss over the first and the last Window steps
	Accuracy    float64 // on the last batch
	Calls       map[string]int64
	Fallbacks   map[string]int64
	Elapsed     time.Duration
	Tokens      int
}

// check is the smoke test's verdict: the loss must be finite and fall by at least half.
func (r result) check() error {
	for i, l := range r.Losses {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return fmt.Errorf("loss is %v at step %d", l, i+1)
		}
	}
	if !(r.Last <= r.First/2) {
		return fmt.Errorf("loss fell from %.4f to %.4f, less than half", r.First, r.Last)
	}
	return nil
}

// statser is the part of the Engine the loop reports from.
type statser interface{ Stats() attention.Stats }

// train runs the reversal task on a model around mha, whose attention goes through eng,
// printing progress to out.
func train(ctx context.Context, cfg trainConfig, eng statser, mha *layer.MultiHeadAttention, out io.Writer) (result, error) {
	if cfg.Steps < 1 || cfg.Batch < 1 || cfg.Seq < 2 || cfg.Vocab < 2 {
		return result{}, fmt.Errorf("smoke: need steps ≥ 1, batch ≥ 1, seq ≥ 2 and vocab ≥ 2 (got %d, %d, %d, %d)", cfg.Steps, cfg.Batch, cfg.Seq, cfg.Vocab)
	}
	w := max(1, min(cfg.Window, cfg.Steps/2))
	m, err := newModel(cfg.Vocab, cfg.Seq, mha, cfg.Seed)
	if err != nil {
		return result{}, err
	}
	params := m.parameters()
	hp := optim.DefaultAdamW(cfg.LR)
	hp.Beta2 = 0.99 // a short run: let the second moment follow the gradients faster
	opt, err := optim.New(hp)
	if err != nil {
		return result{}, err
	}
	data := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x64617461)) // "data"
	start := eng.Stats()
	prev := start
	res := result{}
	t0 := time.Now()
	var stepTokens, lastCorrect int
	tick := time.Now()
	for step := 1; step <= cfg.Steps; step++ {
		tokens, targets := reversalBatch(data, cfg.Batch, cfg.Seq, cfg.Vocab)
		if err := optim.ZeroGrad(params); err != nil {
			return res, err
		}
		loss, correct, s, err := m.forward(ctx, tokens, targets, cfg.Batch)
		if err != nil {
			return res, fmt.Errorf("step %d forward: %w", step, err)
		}
		if err := m.backward(ctx, s); err != nil {
			return res, fmt.Errorf("step %d backward: %w", step, err)
		}
		if err := opt.Step(params); err != nil {
			return res, fmt.Errorf("step %d optimizer: %w", step, err)
		}
		res.Losses = append(res.Losses, loss)
		lastCorrect = correct
		stepTokens += len(tokens)
		res.Tokens += len(tokens)
		if step%max(1, cfg.LogEvery) == 0 || step == cfg.Steps {
			now := eng.Stats()
			el := time.Since(tick)
			fmt.Fprintf(out, "step %4d/%d  loss %.4f  %7.0f tok/s  executor %s  fallbacks %d\n",
				step, cfg.Steps, loss, float64(stepTokens)/el.Seconds(), callDelta(prev.Calls, now.Calls), sum(now.Fallbacks)-sum(start.Fallbacks))
			prev, tick, stepTokens = now, time.Now(), 0
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			break // check reports it
		}
	}
	res.Elapsed = time.Since(t0)
	end := eng.Stats()
	res.Calls = diff(start.Calls, end.Calls)
	res.Fallbacks = diff(start.Fallbacks, end.Fallbacks)
	res.First = mean(res.Losses[:min(w, len(res.Losses))])
	res.Last = mean(res.Losses[max(0, len(res.Losses)-w):])
	res.Accuracy = float64(lastCorrect) / float64(cfg.Batch*cfg.Seq)
	return res, nil
}

// summary prints the run's outcome: losses, executors, every fallback reason.
func (r result) summary(out io.Writer, window int) {
	fmt.Fprintf(out, "summary: loss %.4f → %.4f (means of the first and last %d steps), last-batch accuracy %.1f%%, %d steps in %v (%.0f tok/s)\n",
		r.First, r.Last, max(1, min(window, len(r.Losses)/2)), 100*r.Accuracy, len(r.Losses), r.Elapsed.Round(time.Millisecond), float64(r.Tokens)/r.Elapsed.Seconds())
	fmt.Fprintf(out, "executors: %s\n", formatCounts(r.Calls, "calls"))
	if len(r.Fallbacks) == 0 {
		fmt.Fprintln(out, "fallbacks: none")
		return
	}
	fmt.Fprintf(out, "fallbacks: %d\n", sum(r.Fallbacks))
	for _, k := range slices.Sorted(maps.Keys(r.Fallbacks)) {
		fmt.Fprintf(out, "  %6d × %s\n", r.Fallbacks[k], k)
	}
}

func callDelta(before, after map[string]int64) string {
	d := diff(before, after)
	if len(d) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, d[k]))
	}
	return strings.Join(parts, ",")
}

func formatCounts(m map[string]int64, unit string) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d %s", k, m[k], unit))
	}
	return strings.Join(parts, ", ")
}

func diff(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func sum(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

var errNotLearning = errors.New("smoke: training did not learn")
