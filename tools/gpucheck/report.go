package main

import (
	"fmt"
	"io"
	"strings"
)

// report is everything gpucheck found.
type report struct {
	backend   string
	device    [][2]string
	pipelines map[string][]pipelineRow // by family
	famOrder  []string
	probe     []probeCheck
	probeErr  error
	outcomes  map[string][]outcome // by family
	timings   []string             // Markdown table rows, already formatted
	timingHdr string
}

// failures counts everything that makes the verdict FAIL.
func (r *report) failures() int {
	n := 0
	for _, rows := range r.pipelines {
		for _, p := range rows {
			if !p.ok() {
				n++
			}
		}
	}
	if r.probeErr != nil {
		n++
	}
	for _, p := range r.probe {
		if !p.ok {
			n++
		}
	}
	for _, os := range r.outcomes {
		for _, o := range os {
			if !o.ok() {
				n++
			}
		}
	}
	return n
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func known(v int) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprint(v)
}

func (r *report) write(w io.Writer) {
	fails := r.failures()
	fmt.Fprintf(w, "# Orchard gpucheck report\n\n")
	if fails == 0 {
		fmt.Fprintf(w, "**Verdict: PASS** — every pipeline, the lane-layout probe and every catalogue problem match (backend: %s).\n\n", r.backend)
	} else {
		fmt.Fprintf(w, "**Verdict: FAIL** — %d mismatch(es) (backend: %s); each is marked FAIL below.\n\n", fails, r.backend)
	}
	fmt.Fprintf(w, "## Device\n\n| | |\n|---|---|\n")
	for _, kv := range r.device {
		fmt.Fprintf(w, "| %s | %s |\n", cell(kv[0]), cell(kv[1]))
	}
	fmt.Fprintf(w, "\n## Lane-layout probe\n\n")
	fmt.Fprintf(w, "native/msl/lane_probe.metal, one SIMD group, against the layout the kernels assume (MLX's BaseMMAFrag: qid = lane/4, row = (qid & 4) + (lane/2) %% 4, col = (qid & 2)·2 + (lane %% 2)·2).\n\n")
	if r.probeErr != nil {
		fmt.Fprintf(w, "FAIL: the probe did not run: %s\n\n", cell(r.probeErr.Error()))
	}
	if len(r.probe) > 0 {
		fmt.Fprintf(w, "| check | verdict | note |\n|---|---|---|\n")
		for _, p := range r.probe {
			v := "ok"
			if !p.ok {
				v = "FAIL"
			}
			fmt.Fprintf(w, "| %s | %s | %s |\n", cell(p.what), v, cell(p.note))
		}
	}
	for _, f := range r.famOrder {
		fmt.Fprintf(w, "\n## Pipelines, %s tile table\n\n", f)
		fmt.Fprintf(w, "threads: per threadgroup as dispatched; plan TG memory and registers: go/attention/mslplan's figures (registers is its model, not the compiler's count); max threads, static TG memory and SIMD width: the pipeline's (– where not known: under emulation). A pipeline whose maxTotalThreadsPerThreadgroup is below the threads dispatched cannot run (it spills registers).\n\n")
		fmt.Fprintf(w, "| kernel | constants | threads | plan TG memory | registers (model) | max threads | static TG memory | SIMD width | verdict |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.pipelines[f] {
			v := "ok"
			if !p.ok() {
				v = "FAIL: " + p.err.Error()
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s | %s | %s | %s |\n", p.name, cell(p.constants), p.threads, p.planTGMem, p.registers,
				known(p.maxThreads), known(p.staticTGMem), known(p.simdWidth), cell(v))
		}
		fmt.Fprintf(w, "\n## Catalogue against the reference, %s tile table\n\n", f)
		fmt.Fprintf(w, "Relative L2 error of each output against go/fallback in float64 (bound in brackets: refcheck's tolerance for the dtype; dQ and dK also get a rounding allowance for cancelling terms).\n\n")
		fmt.Fprintf(w, "| problem | kernels | O | L | dQ | dK | dV | verdict |\n|---|---|---|---|---|---|---|---|\n")
		for _, o := range r.outcomes[f] {
			cells := make([]string, 5)
			for i, res := range o.results {
				if i < 5 {
					cells[i] = fmt.Sprintf("%.2g (%.0g)", res.Err, res.Tol)
				}
			}
			v := "ok"
			if !o.ok() {
				var why []string
				if o.err != nil {
					why = append(why, o.err.Error())
				}
				for _, res := range o.results {
					if !res.OK {
						why = append(why, res.String())
					}
				}
				v = "FAIL: " + strings.Join(why, "; ")
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", cell(o.problem), strings.Join(o.kernels, "<br>"),
				cells[0], cells[1], cells[2], cells[3], cells[4], cell(v))
		}
	}
	fmt.Fprintf(w, "\n## Timings\n\n")
	if r.timingHdr == "" {
		fmt.Fprintf(w, "Omitted (%s backend).\n", r.backend)
		return
	}
	fmt.Fprintf(w, "%s\n", r.timingHdr)
	for _, row := range r.timings {
		fmt.Fprintf(w, "%s\n", row)
	}
}
