package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// fakeMetal is the little a Metal strategy needs of a device.
type fakeMetal struct{ unified bool }

type fakeMetalBuffer struct {
	mode metalrt.StorageMode
	b    []byte
}

func (f fakeMetal) ID() uint64             { return 1 }
func (f fakeMetal) Name() string           { return "fake" }
func (f fakeMetal) HasUnifiedMemory() bool { return f.unified }
func (f fakeMetal) NewBuffer(n int, mode metalrt.StorageMode) (allocator.MetalBuffer, error) {
	return &fakeMetalBuffer{mode: mode, b: make([]byte, n)}, nil
}
func (f fakeMetal) Transfer(...allocator.Transfer) error { return nil }

func (b *fakeMetalBuffer) Len() int                  { return len(b.b) }
func (b *fakeMetalBuffer) Mode() metalrt.StorageMode { return b.mode }
func (b *fakeMetalBuffer) Bytes() []byte {
	if b.mode == metalrt.Private {
		return nil
	}
	return b.b
}
func (b *fakeMetalBuffer) DidModify(int, int) error { return nil }
func (b *fakeMetalBuffer) Close() error             { return nil }

// Asked for device memory, the preparer copies into shared Metal memory on unified
// memory; on a discrete GPU host memory stays its strategy (so it cannot); private
// memory is never its choice, but a caller can name it.
func TestMetalStrategies(t *testing.T) {
	x, err := tensor.New(tensor.Float32, 2, 3)
	require.NoError(t, err)
	xt, err := x.Transpose(0, 1)
	require.NoError(t, err)
	for _, c := range []struct {
		unified bool
		want    tensor.StorageKind
	}{{true, tensor.Shared}, {false, tensor.Host}} {
		ss, err := MetalStrategies(fakeMetal{unified: c.unified})
		require.NoError(t, err)
		require.Len(t, ss, 3)
		prep, err := NewPreparer(append(ss, HostStrategy()))
		require.NoError(t, err)
		out, err := prep.Prepare(xt, allocator.Needs{Contiguous: true, Storage: []tensor.StorageKind{tensor.Shared, tensor.Managed}})
		if c.want == tensor.Host {
			assert.ErrorIs(t, err, allocator.ErrCannotPrepare)
		} else {
			require.NoError(t, err)
			assert.Equal(t, c.want, out.Storage().Kind(), "unified %v", c.unified)
		}

		priv, err := StrategyNamed(ss, StrategyMetalPrivate)
		require.NoError(t, err)
		assert.Equal(t, tensor.Private, priv.Kind())
		managed, err := StrategyNamed(ss, StrategyMetalManaged)
		require.NoError(t, err)
		assert.Equal(t, tensor.Managed, managed.Kind())
	}
	_, err = StrategyNamed([]Strategy{HostStrategy()}, "metal-shared")
	assert.ErrorIs(t, err, spec.ErrInvalid)
	_, err = MetalStrategies(nil)
	assert.ErrorIs(t, err, spec.ErrInvalid)
	// Only private memory: nothing the preparer can fill.
	ss, err := MetalStrategies(fakeMetal{unified: true})
	require.NoError(t, err)
	_, err = NewPreparer(ss[2:])
	assert.ErrorIs(t, err, spec.ErrInvalid)
}

// Without Metal, MetalModule contributes nothing to either group and the graph builds.
func TestMetalModuleWithoutMetal(t *testing.T) {
	if _, err := metalrt.OpenDefault(); err == nil {
		t.Skip("this machine has a Metal device")
	}
	var got struct {
		execs      []spec.Executor
		strategies []Strategy
	}
	app := fx.New(MetalModule(false, nil, metal.Params{}), Logger(false, nil),
		fx.Provide(fx.Annotate(HostStrategy, fx.ResultTags(strategiesGroup))),
		fx.Invoke(fx.Annotate(func(e []spec.Executor, s []Strategy) {
			got.execs, got.strategies = e, s
		}, fx.ParamTags(`group:"orchard.executors"`, strategiesGroup))))
	require.NoError(t, app.Err())
	assert.Empty(t, got.execs)
	require.Len(t, got.strategies, 1)
	assert.Equal(t, StrategyHost, got.strategies[0].Name)

	app = fx.New(MetalModule(true, nil, metal.Params{}), Logger(false, nil), fx.Invoke(func(Metal) {}))
	assert.ErrorIs(t, app.Err(), ErrMetalUnavailable)
}
