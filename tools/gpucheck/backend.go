package main

import (
	"fmt"
	"sort"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
	"github.com/orchard-ml/orchard/tools/msltest/emuexec"
)

// backend is where the kernels run: a Metal device (macOS) or the emulator (Linux).
type backend interface {
	// kind is "metal" or "emulator".
	kind() string
	// describe returns the device facts for the report, in order.
	describe() [][2]string
	// families are the GPU families whose tile tables are checked.
	families() []mslplan.GPUFamily
	// pipelines lists every kernel of family f with what the backend knows of it.
	pipelines(f mslplan.GPUFamily) ([]pipelineRow, error)
	// probe runs the lane-layout probe and returns its output.
	probe() ([]float32, error)
	// executor returns the spec.Executor that runs the kernels with f's tile table.
	executor(f mslplan.GPUFamily) (spec.Executor, error)
	// timed returns the executor to time on the GPU, or nil for no timings, with the
	// GPU's peak in gigainstructions per second and where it comes from (0: unknown).
	timed() (ex spec.Executor, peakGinstr float64, peakSource string)
	close()
}

// pipelineRow is one kernel in the pipelines table.
type pipelineRow struct {
	name        string
	constants   string // which function constants it was specialised on
	threads     int    // threads per threadgroup the plan dispatches
	planTGMem   int    // static threadgroup memory the plan computes (mslplan.ThreadgroupMemory)
	registers   int    // mslplan's register estimate
	maxThreads  int    // pipeline's maxTotalThreadsPerThreadgroup (-1: not known here)
	staticTGMem int    // pipeline's staticThreadgroupMemoryLength (-1: not known here)
	simdWidth   int    // threadExecutionWidth (-1: not known here)
	err         error  // the pipeline could not be built, or cannot be dispatched
}

func (r pipelineRow) ok() bool { return r.err == nil }

// kernelInfo is a kernel of one family's tile table, with the plan's figures.
type kernelInfo struct {
	name      string
	kernel    mslplan.Kernel
	dt        tensor.DType
	threads   int
	tgMem     int
	registers int
}

// familyKernels lists every kernel the tile table of family f selects, over every dtype
// and head dim, from plans of a one-row MQA problem with two query heads (so the threads
// and memory are the plan's, and its small dK/dV grid adds the head split's reduction).
func familyKernels(f mslplan.GPUFamily) ([]kernelInfo, error) {
	seen := map[string]kernelInfo{}
	for _, dt := range dtypes {
		for _, d := range mslplan.HeadDims() {
			q, err := tensor.New(dt, 1, 2, 1, d)
			if err != nil {
				return nil, err
			}
			k, err := tensor.New(dt, 1, 1, 1, d)
			if err != nil {
				return nil, err
			}
			pl, err := mslplan.New(mslplan.Request{Problem: &spec.Problem{Q: q, K: k, V: k}, Family: f})
			if err != nil {
				return nil, fmt.Errorf("planning %v D=%d for %v: %w", dt, d, f, err)
			}
			for _, ds := range pl.Dispatches() {
				seen[ds.Name] = kernelInfo{name: ds.Name, kernel: ds.Kernel, dt: dt, threads: ds.Threads[0] * ds.Threads[1] * ds.Threads[2],
					tgMem: ds.ThreadgroupMemory, registers: mslplan.Registers(ds.Kernel, ds.Tile)}
			}
		}
	}
	out := make([]kernelInfo, 0, len(seen))
	for _, k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// emuBackend runs the kernels under the emulator: the same catalogue, no timings.
type emuBackend struct {
	fams []mslplan.GPUFamily
}

func newEmuBackend(fams []mslplan.GPUFamily) (*emuBackend, error) {
	if !mslemu.Available() {
		return nil, fmt.Errorf("gpucheck: no Metal device and %w", mslemu.ErrUnavailable)
	}
	return &emuBackend{fams: fams}, nil
}

func (b *emuBackend) kind() string { return "emulator" }

func (b *emuBackend) describe() [][2]string {
	return [][2]string{
		{"device", "none: the kernels run under the MSL emulator (tools/mslemu), compiled as C++ on the CPU"},
		{"GPU families checked", fmt.Sprint(b.fams)},
		{"timings", "omitted: emulated kernels say nothing about GPU speed"},
	}
}

func (b *emuBackend) families() []mslplan.GPUFamily { return b.fams }

func (b *emuBackend) pipelines(f mslplan.GPUFamily) ([]pipelineRow, error) {
	ks, err := familyKernels(f)
	if err != nil {
		return nil, err
	}
	compiled := map[string]bool{}
	for _, k := range mslemu.Kernels() {
		compiled[k] = true
	}
	rows := make([]pipelineRow, 0, len(ks))
	for _, k := range ks {
		r := pipelineRow{name: k.name, constants: "per problem", threads: k.threads, planTGMem: k.tgMem, registers: k.registers,
			maxThreads: -1, staticTGMem: -1, simdWidth: -1}
		if !compiled[k.name] {
			r.err = fmt.Errorf("not compiled into the emulator")
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (b *emuBackend) probe() ([]float32, error) {
	out := make([]byte, 4*probeFloats)
	if err := mslemu.Launch(probeKernel, [3]int{1, 1, 1}, [3]int{32, 1, 1}, []mslemu.Buffer{{Data: out}}); err != nil {
		return nil, err
	}
	return mslemu.BytesFloat32(out), nil
}

func (b *emuBackend) executor(f mslplan.GPUFamily) (spec.Executor, error) {
	return emuexec.New(emuexec.Params{Family: f})
}

func (b *emuBackend) timed() (spec.Executor, float64, string) { return nil, 0, "" }
func (b *emuBackend) close()                                  {}
