package main

import "fmt"

// The lane-layout probe: native/msl/lane_probe.metal, one SIMD group of 32 threads. Its
// output is probeSections sections of 64 floats, two per lane (see the .metal file).
const (
	probeKernel   = "lane_layout_probe"
	probeFile     = "lane_probe.metal"
	probeSections = 6
	probeFloats   = probeSections * 64
)

// documentedLane is the layout the kernels assume (MLX's BaseMMAFrag::get_coord, MFA's
// morton order; native/msl/attention.metal's lane_coord): lane holds (row, col) and
// (row, col+1) of an 8x8 SIMD-group matrix.
func documentedLane(lane int) (row, col int) {
	qid := lane / 4
	return (qid & 4) + (lane/2)%4, (qid&2)*2 + (lane%2)*2
}

// probeCheck is one section's verdict.
type probeCheck struct {
	what string
	ok   bool
	note string // the first mismatch, or what was confirmed
}

// checkProbe decodes the probe's output against the documented layout.
func checkProbe(out []float32) []probeCheck {
	if len(out) != probeFloats {
		return []probeCheck{{"output", false, fmt.Sprintf("%d floats, want %d", len(out), probeFloats)}}
	}
	// want(section, lane, e) is the value lane's element e must hold.
	type rule struct {
		what string
		want func(r, c int) float64 // element (r, c) of the matrix the section reads
	}
	rules := []rule{
		{"simdgroup_load float, thread_elements() lane layout", func(r, c int) float64 { return float64(16*r + c) }},
		{"simdgroup_load at matrix_origin (8, 0): origin.x is the column", func(r, c int) float64 { return float64(16*r + 8 + c) }},
		{"simdgroup_load transposed", func(r, c int) float64 { return float64(16*c + r) }},
		{"simdgroup_load half: the same layout", func(r, c int) float64 { return float64(8*r + c) }},
	}
	var res []probeCheck
	for s, ru := range rules {
		pc := probeCheck{what: ru.what, ok: true, note: "all 32 lanes as documented"}
	lanes:
		for lane := 0; lane < 32; lane++ {
			r, c := documentedLane(lane)
			for e := 0; e < 2; e++ {
				got := float64(out[s*64+2*lane+e])
				if want := ru.want(r, c+e); got != want {
					pc.ok = false
					pc.note = fmt.Sprintf("lane %d element %d holds %v, the documented layout says %v (element (%d, %d))", lane, e, got, want, r, c+e)
					break lanes
				}
			}
		}
		res = append(res, pc)
	}
	// Section 4: simdgroup_store of a matrix whose lane elements were set to 2·lane and
	// 2·lane + 1 through thread_elements().
	st := probeCheck{what: "simdgroup_store after writes through thread_elements()", ok: true, note: "every element where its lane put it"}
	for lane := 0; lane < 32 && st.ok; lane++ {
		r, c := documentedLane(lane)
		for e := 0; e < 2; e++ {
			if got, want := out[4*64+8*r+c+e], float32(2*lane+e); got != want {
				st.ok = false
				st.note = fmt.Sprintf("element (%d, %d) is %v, want %v (lane %d)", r, c+e, got, want, lane)
				break
			}
		}
	}
	res = append(res, st)
	// Section 5: C = A·B with A(r, k) = 16r + k and B(k, c) = 16c + k.
	mm := probeCheck{what: "simdgroup_multiply, result read through thread_elements()", ok: true, note: "the product, in the documented layout"}
	for lane := 0; lane < 32 && mm.ok; lane++ {
		r, c := documentedLane(lane)
		for e := 0; e < 2; e++ {
			var want float64
			for k := 0; k < 8; k++ {
				want += float64(16*r+k) * float64(16*(c+e)+k)
			}
			if got := float64(out[5*64+2*lane+e]); got != want {
				mm.ok = false
				mm.note = fmt.Sprintf("lane %d element %d is %v, want %v", lane, e, got, want)
				break
			}
		}
	}
	return append(res, mm)
}
