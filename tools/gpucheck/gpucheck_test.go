package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention/mslplan"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/orchard-ml/orchard/tools/mslemu"
	"github.com/orchard-ml/orchard/tools/msltest/emuexec"
)

func requireEmulator(t *testing.T) {
	t.Helper()
	if !mslemu.Available() {
		t.Skip("the MSL emulator is unavailable (cgo on Linux): gpucheck cannot run here")
	}
}

// The program end to end under the emulator: a small catalogue on both tile tables, the
// probe and the pipelines, a PASS report and status 0.
func TestRunSmallCatalogue(t *testing.T) {
	requireEmulator(t)
	out := filepath.Join(t.TempDir(), "report.md")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-emulate", "-small", "-o", out}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	md := string(b)
	assert.Contains(t, md, "**Verdict: PASS**")
	assert.NotContains(t, md, "FAIL")
	assert.Contains(t, md, "## Pipelines, apple7 tile table")
	assert.Contains(t, md, "## Catalogue against the reference, apple9 tile table")
	probe := md[strings.Index(md, "## Lane-layout probe"):strings.Index(md, "## Pipelines")]
	assert.Equal(t, probeSections, strings.Count(probe, "| ok |"), "the six probe checks")
	cat, err := catalogue(1, true)
	require.NoError(t, err)
	for _, p := range cat {
		assert.Equal(t, 2, strings.Count(md, "| "+p.name+" |"), "problem %q once per family", p.name)
	}
	for _, f := range []mslplan.GPUFamily{mslplan.Apple7, mslplan.Apple9} {
		ks, err := familyKernels(f)
		require.NoError(t, err)
		for _, k := range ks {
			assert.Contains(t, md, "| "+k.name+" | per problem |", "pipeline row of %s", k.name)
		}
	}
	assert.Contains(t, md, "Omitted (emulator backend)")
	assert.Contains(t, stdout.String(), "0 mismatch(es)")
}

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"-family", "apple5"}, &stdout, &stderr))
	assert.Equal(t, 2, run([]string{"-nonsense"}, &stdout, &stderr))
}

// The catalogue covers what the issue asks: each option in each dtype, odd head dims,
// N ≠ M, GQA, and every kernel of both tile tables.
func TestCatalogueCoverage(t *testing.T) {
	cat, err := catalogue(1, false)
	require.NoError(t, err)
	kernels := map[string]bool{}
	odd, gqa, nm, f32grads := false, false, false, false
	for _, p := range cat {
		d := p.p.Dims()
		odd = odd || d.D%2 == 1
		gqa = gqa || d.Hkv < d.H
		nm = nm || d.N != d.M
		f32grads = f32grads || p.p.GradDType == tensor.Float32
		for _, f := range []mslplan.GPUFamily{mslplan.Apple7, mslplan.Apple9} {
			pl, err := mslplan.New(mslplan.Request{Problem: p.p, Family: f})
			require.NoError(t, err, p.name)
			for _, ds := range pl.Dispatches() {
				kernels[ds.Name] = true
			}
		}
	}
	assert.True(t, odd && gqa && nm && f32grads)
	// The dK/dV head split in every dtype (MQA) and the serial walk for GQA, on both
	// tile tables.
	for _, f := range []mslplan.GPUFamily{mslplan.Apple7, mslplan.Apple9} {
		split := map[tensor.DType]bool{}
		serialGQA := false
		for _, p := range cat {
			pl, err := mslplan.New(mslplan.Request{Problem: p.p, Family: f})
			require.NoError(t, err, p.name)
			d := p.p.Dims()
			split[p.dt] = split[p.dt] || pl.DKDVHeads && d.Hkv == 1 && d.H >= 8
			serialGQA = serialGQA || !pl.DKDVHeads && d.Hkv < d.H
		}
		for _, dt := range dtypes {
			assert.True(t, split[dt], "%v: no MQA problem takes the dK/dV head split in %v", f, dt)
		}
		assert.True(t, serialGQA, "%v: no GQA problem takes the serial dK/dV walk", f)
	}
	for _, in := range mslplan.Instances() {
		assert.True(t, kernels[in.Name()], "no catalogue problem runs %s", in.Name())
	}
	for _, o := range options {
		for _, dt := range dtypes {
			if o.name == options[len(options)-1].name && dt == tensor.Float32 {
				continue
			}
			found := false
			for _, p := range cat {
				found = found || (p.dt == dt && strings.HasSuffix(p.name, o.name))
			}
			assert.True(t, found, "option %q in %v", o.name, dt)
		}
	}
}

// wrong is an executor whose forward output is slightly off: the check must catch it.
type wrong struct{ *emuexec.Executor }

func (w wrong) Forward(ctx context.Context, p *spec.Problem, into *spec.Saved) (*spec.Saved, error) {
	s, err := w.Executor.Forward(ctx, p, into)
	if err != nil {
		return nil, err
	}
	v, err := s.O.ToFloat64s()
	if err != nil {
		return nil, err
	}
	v[len(v)/2] += 0.5
	o, err := tensor.FromFloat64s(s.O.DType(), v, s.O.Shape()...)
	return &spec.Saved{O: o, L: s.L}, err
}

func TestMismatchFails(t *testing.T) {
	requireEmulator(t)
	ex, err := emuexec.New(emuexec.Params{Family: mslplan.Apple7})
	require.NoError(t, err)
	cat, err := catalogue(3, true)
	require.NoError(t, err)
	good := checkProblem(context.Background(), ex, mslplan.Apple7, cat[0])
	assert.True(t, good.ok(), "%v %v", good.err, good.results)
	bad := checkProblem(context.Background(), wrong{ex}, mslplan.Apple7, cat[0])
	require.False(t, bad.ok())
	r := &report{backend: "test", outcomes: map[string][]outcome{"apple7": {good, bad}}, famOrder: []string{"apple7"}}
	assert.Equal(t, 1, r.failures())
	var md bytes.Buffer
	r.write(&md)
	assert.Contains(t, md.String(), "**Verdict: FAIL** — 1 mismatch(es)")
	assert.Contains(t, md.String(), "O: FAIL")
}

// The probe decoder accepts the documented layout and rejects any other.
func TestProbeDecoder(t *testing.T) {
	requireEmulator(t)
	b, err := newEmuBackend([]mslplan.GPUFamily{mslplan.Apple7})
	require.NoError(t, err)
	out, err := b.probe()
	require.NoError(t, err)
	for _, c := range checkProbe(out) {
		assert.True(t, c.ok, "%s: %s", c.what, c.note)
	}
	swapped := append([]float32(nil), out...)
	swapped[0], swapped[2] = swapped[2], swapped[0] // lanes 0 and 1 trade their first elements
	assert.False(t, checkProbe(swapped)[0].ok)
	assert.False(t, checkProbe(out[:10])[0].ok)
	for s := 1; s < probeSections; s++ {
		bad := append([]float32(nil), out...)
		bad[s*64+7]++
		assert.False(t, checkProbe(bad)[s].ok, "section %d", s)
	}
}
