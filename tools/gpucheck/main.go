package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/orchard-ml/orchard/go/attention/cpuflash"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its arguments and outputs: 0 when everything matches, 1 on a
// mismatch, 2 when gpucheck could not run.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gpucheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	outPath := fs.String("o", "gpucheck-report.md", "the Markdown report to write")
	seed := fs.Uint64("seed", 1, "seed of the catalogue's random problems")
	small := fs.Bool("small", false, "a small catalogue (a few dtypes and head dims; for tests)")
	emulate := fs.Bool("emulate", false, "use the emulator even where a Metal device exists")
	family := fs.String("family", "all", "emulator only: apple7, apple9 or all")
	n := fs.Int("n", 2048, "timings: sequence length N = M")
	heads := fs.Int("heads", 8, "timings: heads (B = 1)")
	reps := fs.Int("reps", 5, "timings: timed repetitions (the median is reported) after one warm-up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var fams []mslplan.GPUFamily
	switch *family {
	case "apple7":
		fams = []mslplan.GPUFamily{mslplan.Apple7}
	case "apple9":
		fams = []mslplan.GPUFamily{mslplan.Apple9}
	case "all":
		fams = []mslplan.GPUFamily{mslplan.Apple7, mslplan.Apple9}
	default:
		fmt.Fprintf(stderr, "gpucheck: -family %q: want apple7, apple9 or all\n", *family)
		return 2
	}
	var b backend
	var err error
	if !*emulate {
		b, err = newMetalBackend()
		if err != nil {
			fmt.Fprintf(stderr, "gpucheck: no Metal device (%v); running the catalogue under the emulator\n", err)
		}
	}
	if b == nil {
		if b, err = newEmuBackend(fams); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	defer b.close()

	ctx := context.Background()
	r := &report{backend: b.kind(), device: b.describe(), pipelines: map[string][]pipelineRow{}, outcomes: map[string][]outcome{}}
	r.device = append(r.device, [2]string{"host", fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())})
	probe, err := b.probe()
	if err != nil {
		r.probeErr = err
	} else {
		r.probe = checkProbe(probe)
	}
	cat, err := catalogue(*seed, *small)
	if err != nil {
		fmt.Fprintln(stderr, "gpucheck: catalogue:", err)
		return 2
	}
	for _, f := range b.families() {
		key := f.String()
		r.famOrder = append(r.famOrder, key)
		rows, err := b.pipelines(f)
		if err != nil {
			rows = append(rows, pipelineRow{name: "(all)", err: err})
		}
		r.pipelines[key] = rows
		ex, err := b.executor(f)
		if err != nil {
			r.outcomes[key] = []outcome{{problem: "(executor)", err: err}}
			continue
		}
		for _, pr := range cat {
			o := checkProblem(ctx, ex, f, pr)
			r.outcomes[key] = append(r.outcomes[key], o)
			if !o.ok() {
				fmt.Fprintf(stderr, "gpucheck: %s %s: mismatch\n", key, pr.name)
			}
		}
	}
	if ex, peak, source := b.timed(); ex != nil {
		timings(ctx, r, ex, peak, source, *n, *heads, *reps)
	}
	f, err := os.Create(*outPath)
	if err != nil {
		fmt.Fprintln(stderr, "gpucheck:", err)
		return 2
	}
	r.write(f)
	if err := f.Close(); err != nil {
		fmt.Fprintln(stderr, "gpucheck:", err)
		return 2
	}
	fails := r.failures()
	fmt.Fprintf(stdout, "gpucheck: %s backend, %d problem run(s), %d mismatch(es); report in %s\n", b.kind(), len(cat)*len(b.families()), fails, *outPath)
	if fails > 0 {
		return 1
	}
	return 0
}

// median times fn reps times after one warm-up call and returns the median in seconds.
func median(reps int, fn func() error) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	ts := make([]float64, 0, reps)
	for i := 0; i < reps; i++ {
		t := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ts = append(ts, time.Since(t).Seconds())
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

// timings times forward and forward+backward at D = 64, 128, 256 (float16, B = 1) on the
// GPU and through the CPU executor, side by side in one run.
func timings(ctx context.Context, r *report, gpu spec.Executor, peak float64, source string, n, heads, reps int) {
	cpu := cpuflash.New(cpuflash.Params{})
	r.timingHdr = fmt.Sprintf("float16, B = 1, H = %d, N = M = %d, median of %d after a warm-up. Gigainstructions per second in metal-flash-attention's convention: forward (2D+5)·N·M, dQ (3D+5)·N·M, dK/dV (4D+5)·N·M per head. Peak: %s.\n\n"+
		"| D | pass | GPU ms | GPU Ginstr/s | %% of peak | CPU ms | CPU Ginstr/s | GPU speed-up |\n|---|---|---|---|---|---|---|---|", heads, n, reps, source)
	rng := newRand(7)
	for _, d := range []int{64, 128, 256} {
		pr, err := generate(rng, "timing", tensor.Float16, shape{1, heads, heads, n, n, d}, options[0])
		if err != nil {
			r.timings = append(r.timings, fmt.Sprintf("| %d | | error: %v | | | | | |", d, err))
			continue
		}
		for _, pass := range []string{"forward", "forward+backward"} {
			instr := float64(heads) * forwardInstr(d, n, n)
			if pass != "forward" {
				instr = float64(heads) * fwdBwdInstr(d, n, n)
			}
			run := func(ex spec.Executor) func() error {
				return func() error {
					s, err := ex.Forward(ctx, pr.p, nil)
					if err != nil || pass == "forward" {
						return err
					}
					_, err = ex.Backward(ctx, pr.p, s, pr.dO, nil)
					return err
				}
			}
			tg, errG := median(reps, run(gpu))
			tc, errC := median(reps, run(cpu))
			row := fmt.Sprintf("| %d | %s |", d, pass)
			if errG != nil {
				row += fmt.Sprintf(" error: %s | | |", cell(errG.Error()))
			} else {
				pct := "–"
				if peak > 0 {
					pct = fmt.Sprintf("%.0f %%", 100*instr/tg/1e9/peak)
				}
				row += fmt.Sprintf(" %.2f | %.0f | %s |", tg*1e3, instr/tg/1e9, pct)
			}
			if errC != nil {
				row += fmt.Sprintf(" error: %s | | |", cell(errC.Error()))
			} else {
				sp := "–"
				if errG == nil {
					sp = fmt.Sprintf("%.1f×", tc/tg)
				}
				row += fmt.Sprintf(" %.2f | %.0f | %s |", tc*1e3, instr/tc/1e9, sp)
			}
			r.timings = append(r.timings, row)
		}
	}
}
