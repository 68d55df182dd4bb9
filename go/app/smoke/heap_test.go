package main

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/orchard-ml/orchard/go/app"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A thousand training steps do not grow the heap: what a step allocates (the layer's
// buffers are reused, y and dx are dropped) is collected. Measured between step 200 and
// step 1200 of one run, so warm-up allocations (pools, optimizer state) are excluded; the
// bound, 256 KiB, is what a leak of 262 bytes per step would exceed (one step's y alone is
// 1 KiB). Measured: +33 KiB, of the order of the loss history (8 bytes a step, in a slice
// that grows by doubling).
func TestThousandStepsDoNotGrowTheHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("1200 steps")
	}
	execs, err := app.Executors(app.Config{Executor: app.ExecutorCPUFlash})
	require.NoError(t, err)
	eng, err := app.NewEngine(app.Config{Strict: true}, nil, execs)
	require.NoError(t, err)
	defer func() { assert.NoError(t, eng.Close()) }()
	mha, err := app.NewLayer(layer.Params{Dim: 16, Heads: 4, KVHeads: 2, Bias: true, Dropout: 0.1, Seed: 5}, eng)
	require.NoError(t, err)
	cfg := trainConfig{Steps: 1200, Batch: 2, Seq: 8, Vocab: 8, LR: 1e-3, Seed: 5, LogEvery: 1 << 30, Window: 5}
	var at200, at1200 uint64
	prog := &heapProbe{onStep: func(step int) {
		switch step {
		case 200:
			at200 = liveHeap()
		case 1200:
			at1200 = liveHeap()
		}
	}}
	cfg.LogEvery = 1 // the probe sees every step
	_, err = train(context.Background(), cfg, eng, mha, prog)
	require.NoError(t, err)
	require.NotZero(t, at200)
	growth := int64(at1200) - int64(at200)
	t.Logf("live heap at step 200: %d bytes, at step 1200: %d bytes (growth %d)", at200, at1200, growth)
	assert.Less(t, growth, int64(256<<10), "1000 steps may not keep more than 256 KiB")
}

// heapProbe is a progress that calls onStep at every report.
type heapProbe struct{ onStep func(step int) }

func (p *heapProbe) update(step, _ int, _, _ float64, _ string, _ int64) { p.onStep(step) }
func (p *heapProbe) finish()                                             {}
