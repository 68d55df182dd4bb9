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
	"strconv"
	"strings"
	"time"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/checkpoint"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/optim"
)

// trainConfig is the training run; the layer's shape comes with the layer.
type trainConfig struct {
	Steps, Batch, Seq, Vocab int // Steps counts from the run's start, resumed or not
	LR                       float64
	Seed                     int64
	LogEvery                 int // a progress line every LogEvery steps (and on the last)
	Window                   int // steps averaged for the first and last loss
	// ClipNorm > 0 clips the gradients' joint norm (optim.ClipGradNorm); a step whose
	// gradients hold NaN or ±Inf is then refused with an error.
	ClipNorm float64
	// Checkpoint, when set, is a directory where the run saves its state after the last
	// step, and every CheckpointEvery steps when that is > 0.
	Checkpoint      string
	CheckpointEvery int
	// Resume, when set, is a checkpoint directory to continue from: the run restores the
	// weights, the optimizer and the dropout offset and goes on to step Steps.
	Resume string
}

// result is what a run measured.
type result struct {
	FirstStep   int       // the first step this process ran (1 unless resumed)
	Losses      []float64 // one per step run here
	First, Last float64   // mean loss over the first and the last Window steps of the whole run
	Accuracy    float64   // on the last batch
	Calls       map[string]int64
	Fallbacks   map[string]int64
	Detail      map[string]string // the latest error text per fallback key
	Copies      allocator.CopyStats
	Elapsed     time.Duration
	Tokens      int
}

// check is the smoke test's verdict: the loss must be finite and fall by at least half.
func (r result) check() error {
	for i, l := range r.Losses {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return fmt.Errorf("loss is %v at step %d", l, r.FirstStep+i)
		}
	}
	if !(r.Last <= r.First/2) {
		return fmt.Errorf("loss fell from %.4f to %.4f, less than half", r.First, r.Last)
	}
	return nil
}

// statser is the part of the Engine the loop reports from.
type statser interface{ Stats() attention.Stats }

// progress shows the run as it goes: a bar on a terminal, lines elsewhere.
type progress interface {
	// update reports step (of total) with its loss, the tokens/s since the last report,
	// the executors that ran since then, and the fallbacks so far.
	update(step, total int, loss, tokPerSec float64, executors string, fallbacks int64)
	finish()
}

// firstLossKey keeps the run's initial mean loss in a checkpoint, so a resumed run's
// verdict compares with where the whole run started.
const firstLossKey = "first_loss"

// train runs the reversal task on a model around mha, whose attention goes through eng.
func train(ctx context.Context, cfg trainConfig, eng statser, mha *layer.MultiHeadAttention, prog progress) (result, error) {
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
	res := result{FirstStep: 1, First: math.NaN()}
	if cfg.Resume != "" {
		meta, err := checkpoint.Restore(cfg.Resume, params, opt)
		if err != nil {
			return res, fmt.Errorf("smoke: resume: %w", err)
		}
		if meta.Seed != cfg.Seed {
			return res, fmt.Errorf("smoke: resume: the checkpoint's run has seed %d, this one %d; the data would differ", meta.Seed, cfg.Seed)
		}
		if meta.Step >= cfg.Steps {
			return res, fmt.Errorf("smoke: resume: the checkpoint is at step %d, nothing left of -steps %d", meta.Step, cfg.Steps)
		}
		mha.SetDropoutOffset(meta.DropoutOffset)
		res.FirstStep = meta.Step + 1
		if f, err := strconv.ParseFloat(meta.Extra[firstLossKey], 64); err == nil {
			res.First = f
		}
	}
	save := func(step int) error {
		first := res.First
		if math.IsNaN(first) {
			first = mean(res.Losses[:min(w, len(res.Losses))])
		}
		meta := checkpoint.Meta{Step: step, Seed: cfg.Seed, DropoutOffset: mha.DropoutOffset(),
			Extra: map[string]string{firstLossKey: strconv.FormatFloat(first, 'g', -1, 64)}}
		if err := checkpoint.Save(cfg.Checkpoint, params, opt, meta); err != nil {
			return fmt.Errorf("smoke: checkpoint at step %d: %w", step, err)
		}
		return nil
	}

	start := eng.Stats()
	prev := start
	t0 := time.Now()
	var stepTokens, lastCorrect int
	tick := time.Now()
	defer prog.finish()
	for step := res.FirstStep; step <= cfg.Steps; step++ {
		tokens, targets := reversalBatch(batchRNG(cfg.Seed, step), cfg.Batch, cfg.Seq, cfg.Vocab)
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
		if cfg.ClipNorm > 0 {
			if _, err := optim.ClipGradNorm(params, cfg.ClipNorm); err != nil {
				return res, fmt.Errorf("step %d: %w", step, err)
			}
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
			prog.update(step, cfg.Steps, loss, float64(stepTokens)/el.Seconds(), callDelta(prev.Calls, now.Calls), sum(now.Fallbacks)-sum(start.Fallbacks))
			prev, tick, stepTokens = now, time.Now(), 0
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			break // check reports it
		}
		if cfg.Checkpoint != "" && (step == cfg.Steps || (cfg.CheckpointEvery > 0 && step%cfg.CheckpointEvery == 0)) {
			if err := save(step); err != nil {
				return res, err
			}
		}
	}
	res.Elapsed = time.Since(t0)
	end := eng.Stats()
	res.Calls = diff(start.Calls, end.Calls)
	res.Fallbacks = diff(start.Fallbacks, end.Fallbacks)
	res.Detail = map[string]string{}
	for k := range res.Fallbacks {
		res.Detail[k] = end.FallbackDetail[k]
	}
	res.Copies = diffCopies(start.CopiesByKind, end.CopiesByKind)
	if math.IsNaN(res.First) {
		res.First = mean(res.Losses[:min(w, len(res.Losses))])
	}
	res.Last = mean(res.Losses[max(0, len(res.Losses)-w):])
	res.Accuracy = float64(lastCorrect) / float64(cfg.Batch*cfg.Seq)
	return res, nil
}

// batchRNG is the data stream of one step, derived from the seed and the step alone, so a
// resumed run draws the batches the uninterrupted run would have.
func batchRNG(seed int64, step int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)^0x64617461, uint64(step))) // "data"
}

// linesProgress prints a line per report: for logs and pipes.
type linesProgress struct{ out io.Writer }

func (p linesProgress) update(step, total int, loss, tokPerSec float64, executors string, fallbacks int64) {
	fmt.Fprintf(p.out, "step %4d/%d  loss %.4f  %7.0f tok/s  executor %s  fallbacks %d\n", step, total, loss, tokPerSec, executors, fallbacks)
}

func (linesProgress) finish() {}

// summary prints the run's outcome: losses, executors, copies, every fallback reason.
func (r result) summary(out io.Writer, window int) {
	fmt.Fprintf(out, "summary: loss %.4f → %.4f (means of the first and last %d steps), last-batch accuracy %.1f%%, %d steps in %v (%.0f tok/s)\n",
		r.First, r.Last, max(1, min(window, len(r.Losses)/2)), 100*r.Accuracy, len(r.Losses), r.Elapsed.Round(time.Millisecond), float64(r.Tokens)/r.Elapsed.Seconds())
	fmt.Fprintf(out, "executors: %s\n", formatCounts(r.Calls, "calls"))
	if len(r.Copies) == 0 {
		fmt.Fprintln(out, "copies: none")
	} else {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Copies)) {
			parts = append(parts, fmt.Sprintf("%s %d (%d bytes)", k, r.Copies[k].Count, r.Copies[k].Bytes))
		}
		fmt.Fprintf(out, "copies: %s\n", strings.Join(parts, ", "))
	}
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

func diffCopies(before, after allocator.CopyStats) allocator.CopyStats {
	out := allocator.CopyStats{}
	for k, v := range after {
		b := before[k]
		if v.Count != b.Count || v.Bytes != b.Bytes {
			out[k] = allocator.Copy{Count: v.Count - b.Count, Bytes: v.Bytes - b.Bytes}
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
