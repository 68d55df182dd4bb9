// Command smoke trains a small model built on Orchard's MultiHeadAttention to reverse
// random token sequences — a task no model can learn without attention — and fails
// (non-zero exit) unless the loss stays finite and falls by at least half. On a terminal
// it shows a progress bar (loss, tokens/s, the executors that ran, fallbacks so far);
// otherwise, as in CI logs, a line every -log-every steps. It ends with a summary: every
// executor's calls, the copies made by kind, every fallback reason.
//
//	go run ./go/app/smoke                      # auto: the best executor, the reference last
//	go run ./go/app/smoke -executor reference  # the exact reference only
//	go run ./go/app/smoke -executor cpuflash -strict
//	go run ./go/app/smoke -plot loss.png -json summary.json
//	go run ./go/app/smoke -steps 150 -checkpoint ckpt          # weights, AdamW state, step
//	go run ./go/app/smoke -steps 300 -resume ckpt              # the same bits as 300 at once
//
// -plot writes the loss curve as a PNG (800 × 450 pixels, the executors named in the
// title); -json writes a summary (steps, losses, tokens/s, executors, fallbacks with
// reasons, copies by kind). -checkpoint saves a checkpoint (package checkpoint) after the
// last step and every -checkpoint-every steps; -resume continues a run from one, and a run
// resumed at step K ends with the bits of the run that went straight through.
//
// The Engine and the layer come from go/app's fx modules.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/orchard-ml/orchard/go/app"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"go.uber.org/fx"
	"golang.org/x/term"
)

// options are the command's flags.
type options struct {
	train           trainConfig
	dim, heads, kvh int
	executor        string
	strict, verbose bool
	progress        string // auto, bar or lines
	plot, json      string // output paths; empty for none
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.train.Steps, "steps", 300, "training steps")
	fs.Int64Var(&o.train.Seed, "seed", 1, "seed of the weights, the data and the dropout stream")
	fs.IntVar(&o.train.Batch, "batch", 16, "sequences per step")
	fs.IntVar(&o.train.Seq, "seq", 64, "sequence length")
	fs.IntVar(&o.train.Vocab, "vocab", 16, "vocabulary size")
	fs.IntVar(&o.dim, "dim", 64, "model width C")
	fs.IntVar(&o.heads, "heads", 4, "query heads")
	fs.IntVar(&o.kvh, "kv-heads", 2, "key/value heads (GQA); 0 means -heads")
	fs.Float64Var(&o.train.LR, "lr", 5e-3, "AdamW learning rate")
	fs.StringVar(&o.executor, "executor", app.ExecutorAuto, "executors: "+strings.Join(app.Choices(), "|")+" (auto = every available one, the reference last)")
	fs.BoolVar(&o.strict, "strict", false, "fail on any fallback instead of falling back")
	fs.BoolVar(&o.verbose, "v", false, "verbose: fx's event log and a dispatch line per attention call")
	fs.IntVar(&o.train.LogEvery, "log-every", 20, "print a progress line every this many steps")
	fs.StringVar(&o.progress, "progress", "auto", "auto|bar|lines: a progress bar on a terminal, lines otherwise")
	fs.StringVar(&o.plot, "plot", "", "write the loss curve to this PNG file")
	fs.StringVar(&o.json, "json", "", "write a JSON summary of the run to this file")
	fs.StringVar(&o.train.Checkpoint, "checkpoint", "", "save a checkpoint into this directory after the last step")
	fs.IntVar(&o.train.CheckpointEvery, "checkpoint-every", 0, "also save the checkpoint every this many steps (0: only at the end)")
	fs.StringVar(&o.train.Resume, "resume", "", "continue the run from the checkpoint in this directory")
	fs.Float64Var(&o.train.ClipNorm, "clip", 0, "clip the gradients' joint norm to this (0: off); non-finite gradients then stop the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.progress != "auto" && o.progress != "bar" && o.progress != "lines" {
		return o, fmt.Errorf("-progress %q: want auto, bar or lines", o.progress)
	}
	o.train.Window = 5
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: 0 on success, 1 when training failed or did not learn, 2 on bad
// flags.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "smoke:", err)
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := app.Config{Executor: o.executor, Strict: o.strict, Debug: o.verbose, Logger: logger}
	lp := layer.Params{Dim: o.dim, Heads: o.heads, KVHeads: o.kvh, Causal: spec.CausalNone, Bias: true, Seed: o.train.Seed}

	var eng *attention.Engine
	var mha *layer.MultiHeadAttention
	fxApp := fx.New(
		app.Module(cfg),
		app.LayerModule(),
		fx.Supply(lp),
		app.Logger(o.verbose, stderr),
		fx.Populate(&eng, &mha),
	)
	if err := fxApp.Err(); err != nil {
		var ae *spec.ArgError
		switch {
		case errors.As(err, &ae):
			fmt.Fprintln(stderr, "smoke:", ae)
		case errors.Is(err, app.ErrMetalUnavailable):
			fmt.Fprintln(stderr, "smoke: -executor metal: the Metal executor cannot run here; -executor auto uses the best available executor")
			fmt.Fprintln(stderr, "smoke: details:", err)
		default:
			fmt.Fprintln(stderr, "smoke: wiring:", err)
		}
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fxApp.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "smoke: start:", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := fxApp.Stop(ctx); err != nil {
			fmt.Fprintln(stderr, "smoke: stop:", err)
		}
	}()

	fmt.Fprintf(stdout, "smoke: reverse %d random tokens over a vocabulary of %d; B=%d C=%d H=%d Hkv=%d, %d steps, lr %g; executors %s (strict %v)\n",
		o.train.Seq, o.train.Vocab, o.train.Batch, o.dim, o.heads, mha.Params().KVHeads, o.train.Steps, o.train.LR, strings.Join(eng.Executors(), " > "), o.strict)
	var prog progress = linesProgress{stdout}
	if o.progress == "bar" || (o.progress == "auto" && isTerminal(stdout)) {
		prog = newBarProgress(stdout, o.train.Steps) // a resumed run's bar jumps ahead at its first report
		o.train.LogEvery = 1                         // the bar moves every step
	}
	res, err := train(context.Background(), o.train, eng, mha, prog)
	if err != nil {
		fmt.Fprintln(stderr, "smoke:", err)
		if len(res.Losses) > 0 {
			res.summary(stdout, o.train.Window)
			o.write(res, err, o.train.Vocab, stderr)
		}
		return 1
	}
	res.summary(stdout, o.train.Window)
	verdict := res.check()
	if !o.write(res, verdict, o.train.Vocab, stderr) {
		return 1
	}
	if verdict != nil {
		fmt.Fprintf(stderr, "smoke: FAIL: %v: %v\n", errNotLearning, verdict)
		return 1
	}
	fmt.Fprintln(stdout, "smoke: PASS")
	return 0
}

// write writes the -plot and -json files that were asked for; false when one failed.
func (o options) write(res result, verdict error, vocab int, stderr io.Writer) bool {
	ok := true
	if o.plot != "" {
		if err := writeLossPlot(o.plot, res, vocab); err != nil {
			fmt.Fprintln(stderr, "smoke: -plot:", err)
			ok = false
		}
	}
	if o.json != "" {
		if err := writeJSON(o.json, res.json(verdict)); err != nil {
			fmt.Fprintln(stderr, "smoke: -json:", err)
			ok = false
		}
	}
	return ok
}

// isTerminal reports whether w is a terminal (a progress bar would garble a log file).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
