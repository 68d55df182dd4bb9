// Command bench times attention forward and forward+backward on the CPU and prints one
// row per (executor, shape): the median time and GFLOP/s under FlashAttention's counting —
// forward 4·B·H·N·M·D, backward 2.5× that (so forward+backward 3.5×), halved when causal.
//
//	go run ./go/app/bench                                   # the default rows, cpuflash
//	go run ./go/app/bench -executors cpuflash,reference     # the reference on small shapes too
//	go run ./go/app/bench -shapes b1h8n1024d64,b2h8k2n512m2048d64c -iters 5
//	go run ./go/app/bench -big                              # adds N=16384 H8 D64 fwd+bwd with peak memory
//
// Each executor runs alone behind a strict Engine, so a row is never silently computed
// by another executor. This is a benchmark command, not a test.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/orchard-ml/orchard/go/app"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

// defaultShapes are the rows of the issue: N = 512…4096 at D = 64, N = 2048 at D = 128,
// and N = 2048 causal.
const defaultShapes = "b1h8n512d64,b1h8n1024d64,b1h8n2048d64,b1h8n4096d64,b1h8n2048d128,b1h8n2048d64c"

// shape is one benchmark problem.
type shape struct {
	B, H, Hkv, N, M, D int
	Causal             bool
}

func (s shape) String() string {
	out := fmt.Sprintf("B%d H%d", s.B, s.H)
	if s.Hkv != s.H {
		out += fmt.Sprintf(" Hkv%d", s.Hkv)
	}
	out += fmt.Sprintf(" N%d", s.N)
	if s.M != s.N {
		out += fmt.Sprintf(" M%d", s.M)
	}
	out += fmt.Sprintf(" D%d", s.D)
	if s.Causal {
		out += " causal"
	}
	return out
}

// flops returns the forward FLOP count; forward+backward is 3.5× it.
func (s shape) flops() float64 {
	f := 4 * float64(s.B) * float64(s.H) * float64(s.N) * float64(s.M) * float64(s.D)
	if s.Causal {
		f /= 2
	}
	return f
}

// parseShape reads a shape like "b1h8n2048d64c": letters b, h, k (KV heads, default h),
// n, m (keys, default n), d each followed by a number, and an optional trailing "c" for
// causal (top-left).
func parseShape(str string) (shape, error) {
	s := shape{B: 1, H: 8, D: 64}
	rest := strings.ToLower(strings.TrimSpace(str))
	if strings.HasSuffix(rest, "c") {
		s.Causal, rest = true, strings.TrimSuffix(rest, "c")
	}
	for rest != "" {
		key := rest[0]
		i := 1
		for i < len(rest) && unicode.IsDigit(rune(rest[i])) {
			i++
		}
		v, err := strconv.Atoi(rest[1:i])
		if err != nil || v <= 0 {
			return shape{}, fmt.Errorf("shape %q: %q needs a positive number", str, string(key))
		}
		switch key {
		case 'b':
			s.B = v
		case 'h':
			s.H = v
		case 'k':
			s.Hkv = v
		case 'n':
			s.N = v
		case 'm':
			s.M = v
		case 'd':
			s.D = v
		default:
			return shape{}, fmt.Errorf("shape %q: unknown letter %q (want b, h, k, n, m, d and an optional trailing c)", str, string(key))
		}
		rest = rest[i:]
	}
	if s.N == 0 {
		return shape{}, fmt.Errorf("shape %q: n is required", str)
	}
	if s.Hkv == 0 {
		s.Hkv = s.H
	}
	if s.M == 0 {
		s.M = s.N
	}
	if s.H%s.Hkv != 0 {
		return shape{}, fmt.Errorf("shape %q: k = %d must divide h = %d", str, s.Hkv, s.H)
	}
	return s, nil
}

type config struct {
	shapes    []shape
	executors []string
	iters     int
	warmup    int
	refMaxN   int
	big       bool
	bigN      int
	fwdOnly   bool
	seed      uint64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var shapes, execs string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&shapes, "shapes", defaultShapes, "comma-separated shapes: b<B>h<H>[k<Hkv>]n<N>[m<M>]d<D>[c] (c = causal)")
	fs.StringVar(&execs, "executors", app.ExecutorCPUFlash, "comma-separated executors to time: cpuflash, reference")
	fs.IntVar(&c.iters, "iters", 3, "timed iterations per row (the median is reported)")
	fs.IntVar(&c.warmup, "warmup", 1, "untimed iterations before timing")
	fs.IntVar(&c.refMaxN, "reference-max-n", 1024, "run the reference only on shapes with N and M at most this")
	fs.BoolVar(&c.big, "big", false, "add a B1 H8 N=-big-n D64 forward+backward row with peak memory")
	fs.IntVar(&c.bigN, "big-n", 16384, "N of the -big row")
	fs.BoolVar(&c.fwdOnly, "fwd-only", false, "time the forward pass only")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random inputs")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.iters < 1 || c.warmup < 0 {
		return c, errors.New("-iters must be ≥ 1 and -warmup ≥ 0")
	}
	for _, s := range strings.Split(shapes, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		sh, err := parseShape(s)
		if err != nil {
			return c, err
		}
		c.shapes = append(c.shapes, sh)
	}
	for _, e := range strings.Split(execs, ",") {
		e = strings.TrimSpace(e)
		if e != app.ExecutorCPUFlash && e != app.ExecutorReference {
			return c, fmt.Errorf("-executors: unknown executor %q (want cpuflash or reference)", e)
		}
		c.executors = append(c.executors, e)
	}
	return c, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	fmt.Fprintf(out, "bench: %s/%s, GOMAXPROCS %d, %d warm-up + %d timed iterations (median), FLOPs: fwd 4·B·H·N·M·D, fwd+bwd 3.5×, causal ½\n",
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), c.warmup, c.iters)
	fmt.Fprintln(out, "GFLOP/s is FLOPs over wall time; GFLOP/cpu-s is FLOPs over the CPU time of all threads (robust when other processes share the cores; ×GOMAXPROCS estimates an idle machine)")
	fmt.Fprintf(out, "%-10s %-28s %10s %9s %11s %12s %9s %11s\n", "executor", "shape", "fwd ms", "GFLOP/s", "GFLOP/cpu-s", "fwd+bwd ms", "GFLOP/s", "GFLOP/cpu-s")
	out.Flush()
	failed := false
	for _, name := range c.executors {
		eng, err := engineFor(name)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		for _, s := range c.shapes {
			if name == app.ExecutorReference && max(s.N, s.M) > c.refMaxN {
				continue
			}
			r, err := measure(eng, s, c, false)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s %v: %v\n", name, s, err)
				failed = true
				continue
			}
			fmt.Fprintf(out, "%-10s %-28s %10.2f %9.1f %11s %12s %9s %11s\n", name, s, ms(r.fwd), gflops(s.flops(), r.fwd), perCPU(s.flops(), r.fwdCPU),
				orDash(!c.fwdOnly, fmt.Sprintf("%.2f", ms(r.fwdBwd))), orDash(!c.fwdOnly, fmt.Sprintf("%.1f", gflops(3.5*s.flops(), r.fwdBwd))),
				orDash(!c.fwdOnly, perCPU(3.5*s.flops(), r.fwdBwdCPU)))
			out.Flush()
		}
		if err := eng.Close(); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}
	if c.big {
		eng, err := engineFor(app.ExecutorCPUFlash)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		s := shape{B: 1, H: 8, Hkv: 8, N: c.bigN, M: c.bigN, D: 64}
		one := c
		one.iters, one.warmup = 1, 0
		r, err := measure(eng, s, one, true)
		if err != nil {
			fmt.Fprintf(stderr, "bench: big row %v: %v\n", s, err)
			failed = true
		} else {
			fmt.Fprintf(out, "%-10s %-28s %10s %9s %11s %12.2f %9.1f %11s\n", app.ExecutorCPUFlash, s, "-", "-", "-", ms(r.fwdBwd), gflops(3.5*s.flops(), r.fwdBwd), perCPU(3.5*s.flops(), r.fwdBwdCPU))
			fmt.Fprintf(out, "  memory beyond inputs and outputs (%.1f MiB): peak heap %.1f MiB (sampled every ms; includes garbage not yet collected); process peak RSS %s\n",
				mib(r.inOutBytes), mib(r.peakHeap), r.peakRSS)
		}
		_ = eng.Close()
	}
	if failed {
		return 1
	}
	return 0
}

func orDash(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

// perCPU formats GFLOP per CPU-second, or "-" when the CPU time is unknown or too short
// to measure.
func perCPU(f float64, cpu time.Duration) string {
	if cpu <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", f/cpu.Seconds()/1e9)
}

func ms(d time.Duration) float64                { return float64(d) / 1e6 }
func gflops(f float64, d time.Duration) float64 { return f / d.Seconds() / 1e9 }
func mib(b int64) float64                       { return float64(b) / (1 << 20) }

// engineFor returns a strict Engine whose only executor before the reference is name;
// for "reference", the reference alone.
func engineFor(name string) (*attention.Engine, error) {
	var execs []spec.Executor
	if name == app.ExecutorCPUFlash {
		x, err := app.CPUFlashExecutor()
		if err != nil {
			return nil, err
		}
		execs = append(execs, x)
	}
	return app.NewEngine(app.Config{Strict: true}, nil, execs)
}

type timing struct {
	fwd, fwdBwd       time.Duration // wall
	fwdCPU, fwdBwdCPU time.Duration // CPU time of all threads
	inOutBytes        int64
	peakHeap          int64
	peakRSS           string
}

// measure times forward (unless memory is set: then only forward+backward, once, with
// the memory sampler running).
func measure(eng *attention.Engine, s shape, c config, memory bool) (timing, error) {
	var t timing
	rng := rand.New(rand.NewPCG(c.seed, uint64(s.N)))
	mk := func(shape ...int) (*tensor.Tensor, error) {
		x, err := tensor.New(tensor.Float32, shape...)
		if err != nil {
			return nil, err
		}
		v, _ := x.Float32s()
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return x, nil
	}
	q, err := mk(s.B, s.H, s.N, s.D)
	if err != nil {
		return t, err
	}
	k, err := mk(s.B, s.Hkv, s.M, s.D)
	if err != nil {
		return t, err
	}
	v, err := mk(s.B, s.Hkv, s.M, s.D)
	if err != nil {
		return t, err
	}
	dO, err := mk(s.B, s.H, s.N, s.D)
	if err != nil {
		return t, err
	}
	p := &spec.Problem{Q: q, K: k, V: v}
	if s.Causal {
		p.Causal = spec.CausalTopLeft
	}
	ctx := context.Background()
	fwdBwd := func() error {
		sv, err := eng.Forward(ctx, p, nil)
		if err != nil {
			return err
		}
		_, err = eng.Backward(ctx, p, sv, dO, nil)
		return err
	}
	fwd := func() error {
		_, err := eng.Forward(ctx, p, nil)
		return err
	}
	if memory {
		// outputs O, L, dQ, dK and dV, allocated during the call; inputs Q, K, V and dO
		outputs := int64(2*q.Bytes()+k.Bytes()+v.Bytes()) + int64(s.B*s.H*s.N*4)
		t.inOutBytes = int64(q.Bytes()+k.Bytes()+v.Bytes()+dO.Bytes()) + outputs
		runtime.GC()
		base := heapBytes()
		stop := make(chan struct{})
		var peak int64
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				peak = max(peak, heapBytes())
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		c0, start := cpuTime(), time.Now()
		err := fwdBwd()
		t.fwdBwd, t.fwdBwdCPU = time.Since(start), cpuTime()-c0
		close(stop)
		wg.Wait()
		if err != nil {
			return t, err
		}
		// The inputs are in base; the outputs count in the peak: take them off.
		t.peakHeap = max(0, peak-base-outputs)
		t.peakRSS = peakRSS()
		return t, nil
	}
	if t.fwd, t.fwdCPU, err = median(fwd, c.warmup, c.iters); err != nil {
		return t, err
	}
	if !c.fwdOnly {
		if t.fwdBwd, t.fwdBwdCPU, err = median(fwdBwd, c.warmup, c.iters); err != nil {
			return t, err
		}
	}
	return t, nil
}

// median returns the median wall time and the median CPU time (user + system, all
// threads) of iters calls of f after warmup untimed ones.
func median(f func() error, warmup, iters int) (wall, cpu time.Duration, err error) {
	for range warmup {
		if err := f(); err != nil {
			return 0, 0, err
		}
	}
	ws, cs := make([]time.Duration, iters), make([]time.Duration, iters)
	for i := range ws {
		c0, start := cpuTime(), time.Now()
		if err := f(); err != nil {
			return 0, 0, err
		}
		ws[i], cs[i] = time.Since(start), cpuTime()-c0
	}
	slices.Sort(ws)
	slices.Sort(cs)
	return ws[len(ws)/2], cs[len(cs)/2], nil
}

// heapBytes is the memory occupied by heap objects, live or not yet swept.
func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// peakRSS reads the process's peak resident set size (VmHWM) on Linux.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "n/a"
}
