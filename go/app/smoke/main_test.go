package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"testing"

	"github.com/orchard-ml/orchard/go/app"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// small is a run that learns in a few dozen steps on two cores.
func small(steps int) trainConfig {
	return trainConfig{Steps: steps, Batch: 16, Seq: 8, Vocab: 8, LR: 1e-2, Seed: 3, LogEvery: 10, Window: 5}
}

// The training loop, without the binary or fx: the loss starts near log V (chance) and
// falls well below it.
func TestTrainingLossFalls(t *testing.T) {
	for _, choice := range []string{app.ExecutorAuto, app.ExecutorReference} {
		t.Run(choice, func(t *testing.T) {
			execs, err := app.Executors(app.Config{Executor: choice})
			require.NoError(t, err)
			eng, err := app.NewEngine(app.Config{}, nil, execs)
			require.NoError(t, err)
			defer func() { assert.NoError(t, eng.Close()) }()
			mha, err := app.NewLayer(layer.Params{Dim: 32, Heads: 4, KVHeads: 2, Bias: true, Seed: 3}, eng)
			require.NoError(t, err)
			var out bytes.Buffer
			cfg := small(60)
			res, err := train(context.Background(), cfg, eng, mha, &out)
			require.NoError(t, err)
			require.Len(t, res.Losses, cfg.Steps)
			assert.InDelta(t, math.Log(float64(cfg.Vocab)), res.First, 0.3, "an untrained model is near chance")
			assert.Less(t, res.Last, res.First/2, "loss must fall by half")
			assert.NoError(t, res.check())
			var calls int64
			for _, c := range res.Calls {
				calls += c
			}
			assert.Equal(t, int64(2*cfg.Steps), calls, "one forward and one backward per step")
			assert.Contains(t, out.String(), "step   60/60")
		})
	}
}

func TestCheckRejectsBadRuns(t *testing.T) {
	assert.Error(t, result{Losses: []float64{2, math.NaN()}, First: 2, Last: 0.1}.check())
	assert.Error(t, result{Losses: []float64{2, math.Inf(1)}, First: 2, Last: 0.1}.check())
	assert.Error(t, result{Losses: []float64{2, 1.5}, First: 2, Last: 1.5}.check())
	assert.NoError(t, result{Losses: []float64{2, 0.9}, First: 2, Last: 0.9}.check())
}

// The command end to end in-process: flags, the fx graph, training, summary, exit code.
func TestRun(t *testing.T) {
	args := []string{"-steps", "60", "-batch", "16", "-seq", "8", "-vocab", "8", "-dim", "32", "-heads", "4", "-kv-heads", "2", "-lr", "1e-2", "-seed", "3", "-executor", "cpuflash", "-strict"}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "executors: cpuflash 120 calls", "strict: every call on the CPU flash executor")
	assert.Contains(t, out.String(), "fallbacks: none")
	assert.Contains(t, out.String(), "smoke: PASS")

	out.Reset()
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"-steps", "x"}, &out, &errOut))
	assert.Equal(t, 1, run([]string{"-executor", "gpu"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "Config.Executor")
	m, err := app.MetalExecutors(false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for _, x := range m {
		if c, ok := x.(io.Closer); ok {
			require.NoError(t, c.Close())
		}
	}
	if len(m) == 0 { // no Metal here: asking for it by name fails
		errOut.Reset()
		assert.Equal(t, 1, run([]string{"-executor", "metal"}, &out, &errOut))
		assert.Contains(t, errOut.String(), "the Metal executor cannot run here")
	}
	// Too few steps to learn: the verdict is a failure.
	assert.Equal(t, 1, run([]string{"-steps", "2", "-executor", "reference"}, &out, &errOut))
}
