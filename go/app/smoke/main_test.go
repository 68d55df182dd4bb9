package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	_ "image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchard-ml/orchard/go/app"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/checkpoint"
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
			res, err := train(context.Background(), cfg, eng, mha, linesProgress{&out})
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

// newRun wires an engine (cpuflash, strict) and a layer with dropout for the run tests.
func newRun(t *testing.T) (*attention.Engine, *layer.MultiHeadAttention) {
	t.Helper()
	execs, err := app.Executors(app.Config{Executor: app.ExecutorCPUFlash})
	require.NoError(t, err)
	eng, err := app.NewEngine(app.Config{Strict: true}, nil, execs)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, eng.Close()) })
	mha, err := app.NewLayer(layer.Params{Dim: 32, Heads: 4, KVHeads: 2, Bias: true, Dropout: 0.1, Seed: 3}, eng)
	require.NoError(t, err)
	return eng, mha
}

// A run of 2K steps and a run of K steps, a checkpoint, and a resumed run of K more end
// with the same bits: weights, optimizer moments, dropout offset and the last K losses.
func TestResumeIsBitForBit(t *testing.T) {
	const K = 12
	ctx := context.Background()
	straight, resumed, half := t.TempDir(), t.TempDir(), t.TempDir()

	eng, mha := newRun(t)
	cfg := small(2 * K)
	cfg.Checkpoint = straight
	all, err := train(ctx, cfg, eng, mha, linesProgress{io.Discard})
	require.NoError(t, err)

	eng, mha = newRun(t)
	cfg = small(K)
	cfg.Checkpoint = half
	first, err := train(ctx, cfg, eng, mha, linesProgress{io.Discard})
	require.NoError(t, err)
	assert.Equal(t, all.Losses[:K], first.Losses)

	eng, mha = newRun(t) // a fresh process: new weights until restored
	cfg = small(2 * K)
	cfg.Resume, cfg.Checkpoint = half, resumed
	second, err := train(ctx, cfg, eng, mha, linesProgress{io.Discard})
	require.NoError(t, err)
	assert.Equal(t, K+1, second.FirstStep)
	assert.Equal(t, all.Losses[K:], second.Losses, "the same losses, bit for bit")
	assert.Equal(t, all.First, second.First, "the verdict compares with the whole run's start")
	for _, name := range []string{checkpoint.WeightsFile, checkpoint.OptimizerFile, checkpoint.StateFile} {
		a, err := os.ReadFile(filepath.Join(straight, name))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(resumed, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(a, b), "%s: identical bytes", name)
	}

	// Resuming with another seed, or past the end, is refused.
	eng, mha = newRun(t)
	cfg = small(2 * K)
	cfg.Resume, cfg.Seed = half, 4
	_, err = train(ctx, cfg, eng, mha, linesProgress{io.Discard})
	assert.ErrorContains(t, err, "seed")
	cfg = small(K)
	cfg.Resume = half
	_, err = train(ctx, cfg, eng, mha, linesProgress{io.Discard})
	assert.ErrorContains(t, err, "nothing left")
}

// -plot and -json: the PNG decodes with the stated size; the JSON holds the run.
func TestPlotAndJSON(t *testing.T) {
	dir := t.TempDir()
	png, js := filepath.Join(dir, "loss.png"), filepath.Join(dir, "summary.json")
	args := []string{"-steps", "40", "-batch", "16", "-seq", "8", "-vocab", "8", "-dim", "32", "-heads", "4", "-kv-heads", "2", "-lr", "1e-2", "-seed", "3",
		"-executor", "cpuflash", "-plot", png, "-json", js, "-progress", "bar", "-clip", "1"}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(args, &out, &errOut), "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "40/40", "the bar reached the end")
	assert.NotContains(t, out.String(), "step   20/40", "a bar, not lines")

	f, err := os.Open(png)
	require.NoError(t, err)
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	require.NoError(t, err)
	assert.Equal(t, "png", format)
	assert.Equal(t, [2]int{plotWidth, plotHeight}, [2]int{cfg.Width, cfg.Height})
	_, err = f.Seek(0, io.SeekStart)
	require.NoError(t, err)
	_, _, err = image.Decode(f)
	require.NoError(t, err, "the whole image decodes")

	b, err := os.ReadFile(js)
	require.NoError(t, err)
	var s struct {
		Pass         bool              `json:"pass"`
		Steps        int               `json:"steps"`
		Losses       []float64         `json:"losses"`
		LossFirst    float64           `json:"loss_first"`
		LossLast     float64           `json:"loss_last"`
		TokensPerSec float64           `json:"tokens_per_second"`
		Executors    map[string]int64  `json:"executors"`
		Fallbacks    []map[string]any  `json:"fallbacks"`
		Copies       map[string]copyJS `json:"copies"`
	}
	require.NoError(t, json.Unmarshal(b, &s))
	assert.True(t, s.Pass)
	assert.Equal(t, 40, s.Steps)
	assert.Len(t, s.Losses, 40)
	assert.Less(t, s.LossLast, s.LossFirst/2)
	assert.Positive(t, s.TokensPerSec)
	assert.Equal(t, map[string]int64{"cpuflash": 80}, s.Executors)
	assert.NotNil(t, s.Fallbacks)
	assert.Empty(t, s.Fallbacks)
	assert.NotNil(t, s.Copies)

	// Not a terminal: lines. (Four steps cannot learn, so the verdict is a failure.)
	out.Reset()
	run([]string{"-steps", "4", "-batch", "2", "-seq", "8", "-vocab", "8", "-dim", "16", "-executor", "cpuflash", "-log-every", "2"}, &out, &errOut)
	assert.Contains(t, out.String(), "step    2/4")
	assert.Contains(t, out.String(), "step    4/4")
}

// Fallbacks reach the JSON with their reasons: float64 is beyond cpuflash, so the
// reference runs every call.
func TestJSONFallbackReasons(t *testing.T) {
	r := result{FirstStep: 1, Losses: []float64{2, math.NaN()}, Calls: map[string]int64{"reference": 2},
		Fallbacks: map[string]int64{"cpuflash: unsupported": 2}, Detail: map[string]string{"cpuflash: unsupported": "dtype float64"}}
	s := r.json(r.check())
	b, err := json.Marshal(s)
	require.NoError(t, err, "NaN losses marshal as null")
	assert.Contains(t, string(b), `"losses":[2,null]`)
	assert.Contains(t, string(b), `"reason":"cpuflash: unsupported","count":2,"detail":"dtype float64"`)
	assert.False(t, s.Pass)
}
