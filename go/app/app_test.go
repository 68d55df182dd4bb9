package app

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/attention"
	"github.com/orchard-ml/orchard/go/attention/attntest"
	"github.com/orchard-ml/orchard/go/attention/layer"
	"github.com/orchard-ml/orchard/go/attention/metal"
	"github.com/orchard-ml/orchard/go/attention/spec"
	"github.com/orchard-ml/orchard/go/fallback"
	"github.com/orchard-ml/orchard/go/tensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

// recorder notes which executors were asked, in order, and which were closed.
type recorder struct {
	mu     sync.Mutex
	asked  []string
	closed []string
}

func (r *recorder) ask(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, name)
}

func (r *recorder) close(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = append(r.closed, name)
}

// fake is an executor that records Supports calls and either declines or runs the
// reference.
type fake struct {
	name     string
	priority int
	accept   bool
	rec      *recorder
}

func (f *fake) Name() string  { return f.name }
func (f *fake) Priority() int { return f.priority }
func (f *fake) Supports(*spec.Problem) error {
	f.rec.ask(f.name)
	if !f.accept {
		return spec.Unsupported(f.name, "declines on purpose")
	}
	return nil
}
func (f *fake) Forward(_ context.Context, p *spec.Problem, _ *spec.Saved) (*spec.Saved, error) {
	return fallback.Forward(p)
}
func (f *fake) Backward(_ context.Context, p *spec.Problem, s *spec.Saved, dO *tensor.Tensor, _ *spec.Grads) (*spec.Grads, error) {
	return fallback.Backward(p, s, dO)
}
func (f *fake) Close() error { f.rec.close(f.name); return nil }

func provideFake(f *fake) fx.Option {
	return fx.Provide(fx.Annotate(func() spec.Executor { return f }, fx.ResultTags(executorsGroup)))
}

func problem(t *testing.T) *spec.Problem {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	mk := func(shape ...int) *tensor.Tensor { return attntest.Tensor(t, rng, tensor.Float32, shape...) }
	return &spec.Problem{Q: mk(1, 2, 3, 4), K: mk(1, 2, 5, 4), V: mk(1, 2, 5, 4)}
}

// The executors group arrives in no particular order; the engine must still ask by
// priority, highest first, and the reference last. The fakes are registered lowest first
// so that registration order and priority order differ.
func TestGraphRunsExecutorsInPriorityOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		accepting string // the fake that runs; "" for none (the reference runs)
		asked     []string
	}{
		{"all decline", "", []string{"high", "mid", "low"}},
		{"mid runs", "mid", []string{"high", "mid"}},
		{"high runs", "high", []string{"high"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			fakes := []*fake{
				{name: "low", priority: 10, rec: rec},
				{name: "high", priority: 30, rec: rec},
				{name: "mid", priority: 20, rec: rec},
			}
			opts := []fx.Option{
				fx.Supply(Config{Executor: ExecutorReference}),
				AllocatorModule(),
				EngineModule(),
				Logger(false, nil),
			}
			for _, f := range fakes {
				f.accept = f.name == tc.accepting
				opts = append(opts, provideFake(f))
			}
			var eng *attention.Engine
			app := fxtest.New(t, append(opts, fx.Populate(&eng))...)
			app.RequireStart()

			assert.Equal(t, []string{"high", "mid", "low", "reference"}, eng.Executors())
			_, err := eng.Forward(context.Background(), problem(t), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.asked, rec.asked)
			ran := tc.accepting
			if ran == "" {
				ran = "reference"
			}
			st := eng.Stats()
			assert.Equal(t, map[string]int64{ran: 1}, st.Calls)
			assert.Len(t, st.Fallbacks, len(tc.asked)-boolInt(tc.accepting != ""))

			app.RequireStop()
			slices.Sort(rec.closed)
			assert.Equal(t, []string{"high", "low", "mid"}, rec.closed, "OnStop closes the engine, which closes its executors")
			_, err = eng.Forward(context.Background(), problem(t), nil)
			assert.ErrorIs(t, err, attention.ErrClosed)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The full module with the layer: the executor choices give the expected executor lists,
// and the layer trains through the engine.
func TestModuleChoices(t *testing.T) {
	for _, tc := range []struct {
		choice string
		want   []string
	}{
		{"", []string{"cpuflash", "reference"}},
		{ExecutorAuto, []string{"cpuflash", "reference"}},
		{ExecutorCPUFlash, []string{"cpuflash", "reference"}},
		{ExecutorReference, []string{"reference"}},
	} {
		t.Run(tc.choice, func(t *testing.T) {
			var eng *attention.Engine
			var mha *layer.MultiHeadAttention
			app := fxtest.New(t,
				Module(Config{Executor: tc.choice}),
				LayerModule(),
				fx.Supply(layer.Params{Dim: 8, Heads: 2, Seed: 1}),
				Logger(false, nil),
				fx.Populate(&eng, &mha),
			)
			app.RequireStart()
			defer app.RequireStop()
			if tc.choice == ExecutorAuto || tc.choice == "" {
				assert.Equal(t, tc.want, filterMetal(eng.Executors()))
			} else {
				assert.Equal(t, tc.want, eng.Executors())
			}
			x, err := tensor.New(tensor.Float32, 1, 4, 8)
			require.NoError(t, err)
			y, s, err := mha.Forward(context.Background(), x)
			require.NoError(t, err)
			_, err = mha.Backward(context.Background(), s, y)
			require.NoError(t, err)
			var calls int64
			for _, c := range eng.Stats().Calls {
				calls += c
			}
			assert.Equal(t, int64(2), calls)
		})
	}
}

// filterMetal drops "metal", which auto includes only on machines that have it.
func filterMetal(names []string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "metal" })
}

func TestModuleRejectsBadChoices(t *testing.T) {
	app := fx.New(Module(Config{Executor: "gpu"}), Logger(false, nil), fx.Invoke(func(*attention.Engine) {}))
	var ae *spec.ArgError
	require.ErrorAs(t, app.Err(), &ae)
	assert.Equal(t, "Config.Executor", ae.Arg)

	_, err := Executors(Config{Executor: "gpu"})
	assert.ErrorIs(t, err, spec.ErrInvalid)
}

func TestMetalByNameFailsWithoutMetal(t *testing.T) {
	m, err := MetalExecutors(false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for _, x := range m {
		if c, ok := x.(io.Closer); ok {
			require.NoError(t, c.Close())
		}
	}
	if len(m) > 0 {
		t.Skip("this machine has a Metal executor")
	}
	app := fx.New(Module(Config{Executor: ExecutorMetal}), Logger(false, nil), fx.Invoke(func(*attention.Engine) {}))
	assert.ErrorIs(t, app.Err(), ErrMetalUnavailable)
	_, err = Executors(Config{Executor: ExecutorMetal})
	assert.ErrorIs(t, err, ErrMetalUnavailable)
	assert.ErrorIs(t, err, metal.ErrUnavailable, "the reason from package metal is kept")
}

// The same graph without fx: plain constructors give the same engine.
func TestWithoutFx(t *testing.T) {
	prep, err := NewPreparer([]Strategy{HostStrategy()})
	require.NoError(t, err)
	execs, err := Executors(Config{Executor: ExecutorCPUFlash})
	require.NoError(t, err)
	eng, err := NewEngine(Config{Strict: true}, prep, execs)
	require.NoError(t, err)
	defer func() { assert.NoError(t, eng.Close()) }()
	assert.Equal(t, []string{"cpuflash", "reference"}, eng.Executors())
	mha, err := NewLayer(layer.Params{Dim: 8, Heads: 4, KVHeads: 2}, eng)
	require.NoError(t, err)
	x, err := tensor.New(tensor.Float32, 2, 3, 8)
	require.NoError(t, err)
	_, _, err = mha.Forward(context.Background(), x)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"cpuflash": 1}, eng.Stats().Calls, "strict: the CPU flash executor ran, nothing fell back")
}

// sharedStorage pretends to be device memory the CPU can read, to tell strategies apart.
type sharedStorage struct{ b []byte }

func (s sharedStorage) Kind() tensor.StorageKind { return tensor.Shared }
func (s sharedStorage) Len() int                 { return len(s.b) }
func (s sharedStorage) Bytes() []byte            { return s.b }

type sharedStrategy struct{}

func (sharedStrategy) Kind() tensor.StorageKind { return tensor.Shared }
func (sharedStrategy) Alloc(n int) (tensor.Storage, error) {
	return sharedStorage{make([]byte, n)}, nil
}

func TestNewPreparerPicksHighestPriority(t *testing.T) {
	_, err := NewPreparer(nil)
	assert.ErrorIs(t, err, spec.ErrInvalid)
	_, err = NewPreparer([]Strategy{{Name: "broken"}})
	assert.ErrorIs(t, err, spec.ErrInvalid)

	// A transposed tensor must be copied, and only a shared-memory strategy can satisfy a
	// request for shared memory: the copy's storage shows which strategy was chosen.
	x, err := tensor.New(tensor.Float32, 2, 3)
	require.NoError(t, err)
	xt, err := x.Transpose(0, 1)
	require.NoError(t, err)
	needs := allocator.Needs{Contiguous: true, Storage: []tensor.StorageKind{tensor.Shared}}
	for _, tc := range []struct {
		name       string
		strategies []Strategy
		shared     bool // the shared strategy should be the one chosen
	}{
		{"shared has the higher priority", []Strategy{HostStrategy(), {Name: "shared", Priority: 5, Strategy: sharedStrategy{}}}, true},
		{"host has the higher priority", []Strategy{{Name: "shared", Priority: -1, Strategy: sharedStrategy{}}, HostStrategy()}, false},
		{"ties go by name", []Strategy{{Name: "zz", Strategy: allocator.NewHost()}, {Name: "aa", Strategy: sharedStrategy{}}}, true},
		{"ties go by name, reversed", []Strategy{{Name: "aa", Strategy: allocator.NewHost()}, {Name: "zz", Strategy: sharedStrategy{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPreparer(tc.strategies)
			require.NoError(t, err)
			out, err := p.Prepare(xt, needs)
			if tc.shared {
				require.NoError(t, err)
				assert.Equal(t, tensor.Shared, out.Storage().Kind())
			} else {
				assert.ErrorIs(t, err, allocator.ErrCannotPrepare)
			}
		})
	}
}

func TestBuildWithoutFx(t *testing.T) {
	eng, err := Build(Config{Executor: ExecutorCPUFlash})
	require.NoError(t, err)
	defer eng.Close()
	assert.Equal(t, []string{"cpuflash", "reference"}, eng.Executors())
	_, err = eng.Forward(context.Background(), problem(t), nil)
	require.NoError(t, err)

	_, err = Build(Config{Executor: "gpu"})
	assert.ErrorIs(t, err, spec.ErrInvalid)
}
