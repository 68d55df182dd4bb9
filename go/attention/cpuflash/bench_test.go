package cpuflash

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
)

type benchShape struct {
	B, H, N, D int
	causal     bool
}

func (s benchShape) String() string {
	c := ""
	if s.causal {
		c = "_causal"
	}
	return fmt.Sprintf("B%d_H%d_N%d_D%d%s", s.B, s.H, s.N, s.D, c)
}

// shapesFlag replaces the benchmark shapes: comma-separated N x D with B = 1, H = 8 and a
// trailing c for causal, e.g. -cpuflash.shapes 2048x64,2048x64c (tools/bench uses it).
var shapesFlag = flag.String("cpuflash.shapes", "", "benchmark shapes NxD[c],… (B1 H8); default: the issue's six")

// blocksFlag overrides the block sizes of the benchmarks' executor, e.g.
// -cpuflash.blocks 144x96 (queries × keys), for tuning defaultBlocks.
var blocksFlag = flag.String("cpuflash.blocks", "", "benchmark block sizes QxK (default: the executor's choice)")

// intoFlag makes the timing benchmarks pass destinations (allocated once, as a training
// loop that reuses its buffers or PyTorch's out= does); false allocates outputs per call.
var intoFlag = flag.Bool("cpuflash.into", true, "benchmarks write into preallocated outputs")

// benchExecutor returns the executor the benchmarks time.
func benchExecutor(b *testing.B) *Executor {
	p := Params{}
	if *blocksFlag != "" {
		_, err := fmt.Sscanf(*blocksFlag, "%dx%d", &p.BlockQ, &p.BlockK)
		require.NoError(b, err, "-cpuflash.blocks %q", *blocksFlag)
	}
	return New(p)
}

// benchShapes are the issue's: B1 H8 D64 with N = 512, 1024, 2048, 4096; N2048 D128; N2048
// D64 causal — or those of -cpuflash.shapes.
func benchShapes(b *testing.B) []benchShape {
	if *shapesFlag == "" {
		return []benchShape{
			{1, 8, 512, 64, false}, {1, 8, 1024, 64, false}, {1, 8, 2048, 64, false}, {1, 8, 4096, 64, false},
			{1, 8, 2048, 128, false}, {1, 8, 2048, 64, true},
		}
	}
	var out []benchShape
	for _, f := range strings.Split(*shapesFlag, ",") {
		s := benchShape{B: 1, H: 8, causal: strings.HasSuffix(f, "c")}
		_, err := fmt.Sscanf(strings.TrimSuffix(f, "c"), "%dx%d", &s.N, &s.D)
		require.NoError(b, err, "-cpuflash.shapes entry %q", f)
		out = append(out, s)
	}
	return out
}

func benchProblem(b *testing.B, s benchShape) (*spec.Problem, *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := &spec.Problem{
		Q: attntest.Tensor(b, rng, tensor.Float32, s.B, s.H, s.N, s.D),
		K: attntest.Tensor(b, rng, tensor.Float32, s.B, s.H, s.N, s.D),
		V: attntest.Tensor(b, rng, tensor.Float32, s.B, s.H, s.N, s.D),
	}
	if s.causal {
		p.Causal = spec.CausalTopLeft
	}
	return p, attntest.Tensor(b, rng, tensor.Float32, s.B, s.H, s.N, s.D)
}

// report adds GFLOP/s (FLOPs over wall time) and cpu-ms/op (process CPU time per call,
// all threads; less sensitive than wall time to other processes on a shared machine).
func report(b *testing.B, flops float64, cpu time.Duration) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
	}
}

// destinations returns preallocated outputs for p, or nils without -cpuflash.into.
func destinations(b *testing.B, p *spec.Problem) (*spec.Saved, *spec.Grads) {
	if !*intoFlag {
		return nil, nil
	}
	d := p.Dims()
	mk := func(dt tensor.DType, shape ...int) *tensor.Tensor {
		t, err := tensor.New(dt, shape...)
		require.NoError(b, err)
		return t
	}
	return &spec.Saved{O: mk(tensor.Float32, d.B, d.H, d.N, d.D), L: mk(tensor.Float64, d.B, d.H, d.N)},
		&spec.Grads{DQ: mk(tensor.Float32, d.B, d.H, d.N, d.D), DK: mk(tensor.Float32, d.B, d.Hkv, d.M, d.D), DV: mk(tensor.Float32, d.B, d.Hkv, d.M, d.D)}
}

// timeCalls runs call once to warm up (scratch cache, destinations' pages), then b.N
// times, and reports GFLOP/s over the whole loop, cpu-ms/op and best-ms (the fastest
// single call, which tools/bench compares with PyTorch's best call).
func timeCalls(b *testing.B, flops float64, call func()) {
	call()
	var cpu time.Duration
	best := time.Duration(1<<63 - 1)
	for b.Loop() {
		c0, t0 := cpuTime(), time.Now()
		call()
		best = min(best, time.Since(t0))
		cpu += cpuTime() - c0
	}
	report(b, flops, cpu)
	b.ReportMetric(best.Seconds()*1e3, "best-ms")
}

// BenchmarkForward times Forward on the shapes (B1 H8 D64 with N = 512 … 4096,
// N2048 D128, N2048 D64 causal), float32, default parameters, after one warm-up call.
func BenchmarkForward(b *testing.B) {
	for _, s := range benchShapes(b) {
		b.Run(s.String(), func(b *testing.B) {
			p, _ := benchProblem(b, s)
			e := benchExecutor(b)
			into, _ := destinations(b, p)
			timeCalls(b, FLOPs(p.Dims(), s.causal, PassForward), func() {
				_, err := e.Forward(context.Background(), p, into)
				require.NoError(b, err)
			})
		})
	}
}

// BenchmarkForwardBackward times Forward followed by Backward on the same shapes.
func BenchmarkForwardBackward(b *testing.B) {
	for _, s := range benchShapes(b) {
		b.Run(s.String(), func(b *testing.B) {
			p, dO := benchProblem(b, s)
			e := benchExecutor(b)
			into, grads := destinations(b, p)
			timeCalls(b, FLOPs(p.Dims(), s.causal, PassForwardBackward), func() {
				sv, err := e.Forward(context.Background(), p, into)
				require.NoError(b, err)
				_, err = e.Backward(context.Background(), p, sv, dO, grads)
				require.NoError(b, err)
			})
		})
	}
}

// BenchmarkForwardBackwardMemory runs forward + backward at N = 16384 (B1 H8 D64) once,
// on a fresh executor (cold scratch cache), and reports what the two calls cost beyond
// their inputs and outputs (O, L, dQ, dK, dV): MiB-beyond-io, the bytes allocated
// (everything counts, freed or not, so this bounds the peak extra heap from above), and
// MiB-rss-beyond-io, the growth of the process's peak resident set (the measure used for
// PyTorch in tools/bench). Inputs are allocated and touched before the measurement.
func BenchmarkForwardBackwardMemory(b *testing.B) {
	s := benchShape{1, 8, 16384, 64, false}
	b.Run(s.String(), func(b *testing.B) {
		p, dO := benchProblem(b, s)
		var extra, rss float64
		for b.Loop() {
			e := New(Params{})
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			r0 := maxRSS()
			sv, err := e.Forward(context.Background(), p, nil)
			require.NoError(b, err)
			g, err := e.Backward(context.Background(), p, sv, dO, nil)
			require.NoError(b, err)
			runtime.ReadMemStats(&m1)
			out := sv.O.Bytes() + sv.L.Bytes() + g.DQ.Bytes() + g.DK.Bytes() + g.DV.Bytes()
			extra = float64(m1.TotalAlloc-m0.TotalAlloc-uint64(out)) / (1 << 20)
			rss = float64(maxRSS()-r0-int64(out)) / (1 << 20)
		}
		b.ReportMetric(extra, "MiB-beyond-io")
		b.ReportMetric(rss, "MiB-rss-beyond-io")
	})
}

// BenchmarkBackwardSchedules times Backward alone with each schedule forced: two-pass
// (dK/dV per key block, then dQ per query block: 7 tile products) and fused (one task
// per (batch, kv head): 5 products). They return the same bits.
func BenchmarkBackwardSchedules(b *testing.B) {
	for _, s := range benchShapes(b) {
		for _, sch := range []struct {
			name string
			st   backwardStrategy
		}{{"two-pass", strategyTwoPass}, {"fused", strategyFused}} {
			b.Run(s.String()+"/"+sch.name, func(b *testing.B) {
				p, dO := benchProblem(b, s)
				e := benchExecutor(b)
				e.strategy = sch.st
				sv, err := e.Forward(context.Background(), p, nil)
				require.NoError(b, err)
				var cpu time.Duration
				for b.Loop() {
					c0 := cpuTime()
					_, err := e.Backward(context.Background(), p, sv, dO, nil)
					cpu += cpuTime() - c0
					require.NoError(b, err)
				}
				report(b, FLOPs(p.Dims(), s.causal, PassBackward), cpu)
			})
		}
	}
}
