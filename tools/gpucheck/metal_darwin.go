//go:build darwin

package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	msl "github.com/orchard-ml/orchard/native/msl"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// metalBackend runs the kernels on the system's default Metal device.
type metalBackend struct {
	dev   *metalrt.Device
	ex    *metal.Executor
	fam   mslplan.GPUFamily
	cores int // GPU cores from system_profiler (0: unknown)
}

func newMetalBackend() (backend, error) {
	dev, err := metalrt.OpenDefault()
	if err != nil {
		return nil, err
	}
	ex, err := metal.New(metal.Params{})
	if err != nil {
		dev.Close()
		return nil, err
	}
	return &metalBackend{dev: dev, ex: ex, fam: ex.Family(), cores: gpuCores()}, nil
}

// gpuCores reads "Total Number of Cores: N" from system_profiler SPDisplaysDataType.
func gpuCores() int {
	out, err := exec.Command("system_profiler", "SPDisplaysDataType").Output()
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`Total Number of Cores:\s*(\d+)`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func (b *metalBackend) kind() string { return "metal" }

func (b *metalBackend) describe() [][2]string {
	osv, err := metalrt.SystemVersion()
	osText := osv.String()
	if err != nil {
		osText = err.Error()
	}
	var fams []string
	for _, f := range b.dev.Families() {
		fams = append(fams, f.String())
	}
	cores := "unknown"
	if b.cores > 0 {
		cores = strconv.Itoa(b.cores)
	}
	return [][2]string{
		{"device", b.dev.Name()},
		{"GPU families", strings.Join(fams, ", ")},
		{"tile table", b.fam.String()},
		{"GPU cores", cores},
		{"macOS", osText},
		{"unified memory", fmt.Sprint(b.dev.HasUnifiedMemory())},
		{"max threadgroup memory", fmt.Sprintf("%d bytes", b.dev.MaxThreadgroupMemory())},
		{"recommended working set", fmt.Sprintf("%d MiB", b.dev.RecommendedWorkingSet()>>20)},
	}
}

func (b *metalBackend) families() []mslplan.GPUFamily { return []mslplan.GPUFamily{b.fam} }

// constantSets are the specialisations each pipeline is built with: every option off
// (the plain kernel) and every option on (the most code; aligned and vector staging off).
func constantSets() map[string][]metalrt.BoolConstant {
	plain := make([]metalrt.BoolConstant, mslplan.NumConstants)
	full := make([]metalrt.BoolConstant, mslplan.NumConstants)
	for i := range plain {
		plain[i] = metalrt.BoolConstant{Index: i}
		full[i] = metalrt.BoolConstant{Index: i, Value: i != mslplan.FCAligned && i != mslplan.FCVec4}
	}
	return map[string][]metalrt.BoolConstant{"all off": plain, "all options on": full}
}

func (b *metalBackend) pipelines(f mslplan.GPUFamily) ([]pipelineRow, error) {
	ks, err := familyKernels(f)
	if err != nil {
		return nil, err
	}
	src, err := msl.Source("attention.metal")
	if err != nil {
		return nil, err
	}
	libs := map[string]*metalrt.Library{}
	libErr := map[string]error{}
	defer func() {
		for _, l := range libs {
			l.Close()
		}
	}()
	var rows []pipelineRow
	for _, k := range ks {
		ls := mslplan.LibraryFor(k.dt)
		lib, ok := libs[ls.Name]
		if !ok && libErr[ls.Name] == nil {
			lib, err = b.dev.NewLibrary(src, metalrt.CompileOptions{
				Language: metalrt.LanguageVersion{Major: ls.LanguageMajor, Minor: ls.LanguageMinor},
				Math:     metalrt.MathSafe, Macros: ls.Macros})
			if err != nil {
				libErr[ls.Name] = err
			} else {
				libs[ls.Name] = lib
			}
		}
		for _, name := range []string{"all off", "all options on"} {
			r := pipelineRow{name: k.name, constants: name, threads: k.threads, planTGMem: k.tgMem, registers: k.registers,
				maxThreads: -1, staticTGMem: -1, simdWidth: -1}
			if e := libErr[ls.Name]; e != nil {
				r.err = fmt.Errorf("library %s: %w", ls.Name, e)
				rows = append(rows, r)
				continue
			}
			fn, err := lib.SpecializedFunction(k.name, constantSets()[name])
			if err == nil {
				var p *metalrt.Pipeline
				p, err = b.dev.NewPipeline(fn)
				fn.Close()
				if err == nil {
					r.maxThreads, r.staticTGMem, r.simdWidth = p.MaxTotalThreadsPerThreadgroup(), p.StaticThreadgroupMemory(), p.ThreadExecutionWidth()
					p.Close()
					switch {
					case r.maxThreads < r.threads:
						err = fmt.Errorf("maxTotalThreadsPerThreadgroup %d < %d threads dispatched", r.maxThreads, r.threads)
					case r.staticTGMem > b.dev.MaxThreadgroupMemory():
						err = fmt.Errorf("static threadgroup memory %d > the device's %d", r.staticTGMem, b.dev.MaxThreadgroupMemory())
					}
				}
			}
			r.err = err
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func (b *metalBackend) probe() ([]float32, error) {
	src, err := msl.Source(probeFile)
	if err != nil {
		return nil, err
	}
	lib, err := b.dev.NewLibrary(src, metalrt.CompileOptions{Language: metalrt.MSL3_0, Math: metalrt.MathSafe})
	if err != nil {
		return nil, err
	}
	defer lib.Close()
	fn, err := lib.Function(probeKernel)
	if err != nil {
		return nil, err
	}
	defer fn.Close()
	p, err := b.dev.NewPipeline(fn)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	buf, err := b.dev.NewBuffer(4*probeFloats, metalrt.Shared)
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	q, err := b.dev.NewQueue()
	if err != nil {
		return nil, err
	}
	defer q.Close()
	if err := q.Run(metalrt.Dispatch{Pipeline: p, Grid: metalrt.Size{X: 1, Y: 1, Z: 1}, Group: metalrt.Size{X: 32, Y: 1, Z: 1},
		Buffers: []metalrt.BufferArg{{Index: 0, Buffer: buf}}}); err != nil {
		return nil, err
	}
	return bytesFloat32(buf.Bytes()), nil
}

func (b *metalBackend) executor(mslplan.GPUFamily) (spec.Executor, error) { return b.ex, nil }

func (b *metalBackend) timed() (spec.Executor, float64, string) {
	peak, source := peakFor(b.dev.Name(), b.cores)
	return b.ex, peak, source
}

func (b *metalBackend) close() {
	b.ex.Close()
	b.dev.Close()
}

func bytesFloat32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
