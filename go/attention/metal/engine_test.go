package metal

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// A GPU failure inside the engine is a visible fallback: the call completes on
// the next executor with the reference's result, and the reason is counted and
// logged. A decline is quiet.
func TestEngineFallsBackVisiblyOnGPUFailure(t *testing.T) {
	dev := newFakeDevice()
	dev.failRun = &metalrt.Error{Op: "Queue.Run", Kind: metalrt.ErrCommandBuffer, Detail: "fake: GPU hang"}
	e, err := newExecutor(dev, Params{Source: testSource})
	require.NoError(t, err)
	var logs bytes.Buffer
	eng, err := attention.NewEngine(attention.Params{
		Executors: []spec.Executor{e},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	defer eng.Close()

	p := testProblem(t, tensor.Float32, 1, 2, 1, 8, 8, 16)
	got, err := eng.Forward(context.Background(), p, nil)
	require.NoError(t, err)
	want, err := fallback.Forward(p)
	require.NoError(t, err)
	assert.Equal(t, want.O.Storage().Bytes(), got.O.Storage().Bytes(), "the reference's result, not the fake GPU's bytes")
	st := eng.Stats()
	assert.Equal(t, int64(1), st.Calls["reference"])
	require.Len(t, st.Fallbacks, 1)
	for key := range st.Fallbacks {
		assert.Contains(t, st.FallbackDetail[key], "command buffer failed")
	}
	assert.Contains(t, logs.String(), "GPU hang")
	assert.Equal(t, pooled(e), dev.liveBuffers(), "only pooled buffers remain")

	// Strict mode turns the same failure into an error.
	strict, err := attention.NewEngine(attention.Params{Executors: []spec.Executor{e}, Strict: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	_, err = strict.Forward(context.Background(), p, nil)
	assert.ErrorIs(t, err, attention.ErrFallback)
	assert.ErrorIs(t, err, metalrt.ErrCommandBuffer)

	// A problem the kernels cannot run is declined without a warning.
	logs.Reset()
	_, err = eng.Forward(context.Background(), testProblem(t, tensor.Float64, 1, 1, 1, 4, 4, 8), nil)
	require.NoError(t, err)
	assert.NotContains(t, logs.String(), "WARN")
}
