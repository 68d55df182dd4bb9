package allocator_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchard-ml/orchard/go/allocator"
	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// fakeGPU records what the Metal strategies ask of a device. Its buffers keep a GPU copy
// and, for managed ones, a separate CPU copy, so a test sees stale data exactly where a
// real discrete GPU would show it.
type fakeGPU struct {
	unified   bool
	allocs    []metalrt.StorageMode
	transfers [][]allocator.Transfer
	live      map[*fakeBuf]bool
	failAlloc bool
}

func newFakeGPU(unified bool) *fakeGPU { return &fakeGPU{unified: unified, live: map[*fakeBuf]bool{}} }

type fakeBuf struct {
	dev      *fakeGPU
	mode     metalrt.StorageMode
	gpu, cpu []byte // shared: one slice for both
	modified [][2]int
	closed   bool
}

func (g *fakeGPU) ID() uint64             { return 7 }
func (g *fakeGPU) Name() string           { return "fake" }
func (g *fakeGPU) HasUnifiedMemory() bool { return g.unified }
func (g *fakeGPU) NewBuffer(n int, mode metalrt.StorageMode) (allocator.MetalBuffer, error) {
	if g.failAlloc {
		return nil, &metalrt.Error{Op: "NewBuffer", Kind: metalrt.ErrOutOfMemory}
	}
	g.allocs = append(g.allocs, mode)
	b := &fakeBuf{dev: g, mode: mode, gpu: make([]byte, n)}
	switch mode {
	case metalrt.Shared:
		b.cpu = b.gpu
	case metalrt.Managed:
		b.cpu = make([]byte, n)
	}
	g.live[b] = true
	return b, nil
}

func (g *fakeGPU) Transfer(steps ...allocator.Transfer) error {
	g.transfers = append(g.transfers, steps)
	for _, s := range steps {
		src := s.Src.(*fakeBuf)
		if src.closed {
			return fmt.Errorf("fake: transfer from a closed buffer")
		}
		if s.Sync {
			copy(src.cpu, src.gpu)
			continue
		}
		if s.SrcOffset%4 != 0 || s.DstOffset%4 != 0 || s.Size%4 != 0 {
			return fmt.Errorf("fake: blit offsets and sizes must be multiples of 4: %+v", s)
		}
		dst := s.Dst.(*fakeBuf)
		copy(dst.gpu[s.DstOffset:s.DstOffset+s.Size], src.gpu[s.SrcOffset:s.SrcOffset+s.Size])
	}
	return nil
}

func (b *fakeBuf) Len() int                  { return len(b.gpu) }
func (b *fakeBuf) Mode() metalrt.StorageMode { return b.mode }
func (b *fakeBuf) Bytes() []byte {
	if b.closed {
		return nil
	}
	return b.cpu
}
func (b *fakeBuf) DidModify(off, n int) error {
	b.modified = append(b.modified, [2]int{off, n})
	if b.mode == metalrt.Managed {
		copy(b.gpu[off:off+n], b.cpu[off:off+n])
	}
	return nil
}
func (b *fakeBuf) Close() error {
	b.closed = true
	delete(b.dev.live, b)
	return nil
}

func randBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestMetalStrategies(t *testing.T) {
	for _, c := range []struct {
		mode metalrt.StorageMode
		kind tensor.StorageKind
	}{{metalrt.Shared, tensor.Shared}, {metalrt.Private, tensor.Private}, {metalrt.Managed, tensor.Managed}} {
		t.Run(c.mode.String(), func(t *testing.T) {
			g := newFakeGPU(c.mode != metalrt.Managed)
			s, err := allocator.NewMetalStrategy(g, c.mode)
			require.NoError(t, err)
			assert.Equal(t, c.kind, s.Kind())
			st, err := s.Alloc(37)
			require.NoError(t, err)
			assert.Equal(t, c.kind, st.Kind())
			assert.Equal(t, 37, st.Len())
			assert.Equal(t, []metalrt.StorageMode{c.mode}, g.allocs, "the device is asked for exactly this mode")
			ms := st.(*allocator.MetalStorage)
			assert.Equal(t, 48, ms.Buffer().Len(), "rounded up to 16 bytes")
			if c.mode == metalrt.Private {
				assert.Nil(t, st.Bytes(), "private memory has no host view")
			} else {
				assert.Len(t, st.Bytes(), 37)
			}
			require.NoError(t, ms.Close())
			assert.Empty(t, g.live, "Close releases the buffer")
			_, err = ms.ReadAt(make([]byte, 1), 0)
			assert.ErrorIs(t, err, allocator.ErrMetalStorage)
		})
	}
	_, err := allocator.NewMetalStrategy(newFakeGPU(true), metalrt.StorageMode(9))
	assert.Error(t, err)
	_, err = allocator.NewMetalStrategy(nil, metalrt.Shared)
	assert.ErrorIs(t, err, metalrt.ErrUnavailable)
	s, err := allocator.NewMetalStrategy(newFakeGPU(true), metalrt.Shared)
	require.NoError(t, err)
	_, err = s.Alloc(-1)
	assert.Error(t, err)
}

// Shared storage: the host's bytes are the buffer's; reads and writes touch no GPU.
func TestMetalSharedReadWrite(t *testing.T) {
	g := newFakeGPU(true)
	s, _ := allocator.NewMetalStrategy(g, metalrt.Shared)
	ms, err := s.AllocMetal(64)
	require.NoError(t, err)
	data := randBytes(21)
	_, err = ms.WriteAt(data, 5)
	require.NoError(t, err)
	assert.Equal(t, data, ms.Buffer().(*fakeBuf).gpu[5:26], "the GPU sees the host's write with no copy")
	got := make([]byte, 21)
	_, err = ms.ReadAt(got, 5)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Empty(t, g.transfers, "no blit, no synchronisation")
	assert.Equal(t, allocator.CopyStats{allocator.CopyHostWrite: {Count: 1, Bytes: 21}, allocator.CopyHostRead: {Count: 1, Bytes: 21}}, s.CopyStats())
}

// Private storage: the host reaches it only through a staging buffer and a blit, at
// word-aligned offsets, keeping the bytes around the range; each staging buffer is freed.
func TestMetalPrivateStaging(t *testing.T) {
	g := newFakeGPU(true)
	s, _ := allocator.NewMetalStrategy(g, metalrt.Private)
	ms, err := s.AllocMetal(64)
	require.NoError(t, err)
	before := randBytes(64)
	copy(ms.Buffer().(*fakeBuf).gpu, before)
	data := randBytes(21)
	_, err = ms.WriteAt(data, 5) // bytes [5, 26): words [4, 28)
	require.NoError(t, err)
	want := append([]byte(nil), before...)
	copy(want[5:], data)
	assert.Equal(t, want, ms.Buffer().(*fakeBuf).gpu, "only [5, 26) changed")
	require.Len(t, g.transfers, 2, "read the edge words, then write back")
	assert.Equal(t, 4, g.transfers[0][0].SrcOffset)
	assert.Equal(t, 24, g.transfers[0][0].Size)
	assert.Equal(t, 4, g.transfers[1][0].DstOffset)
	assert.Equal(t, metalrt.Shared, g.transfers[1][0].Src.Mode(), "staged through shared memory")

	got := make([]byte, 21)
	_, err = ms.ReadAt(got, 5)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Len(t, g.live, 1, "staging buffers are closed")
	assert.Equal(t, allocator.CopyStats{allocator.CopyStageIn: {Count: 1, Bytes: 21}, allocator.CopyStageOut: {Count: 1, Bytes: 21}}, s.CopyStats())

	// Aligned writes need no read first.
	g.transfers = nil
	_, err = ms.WriteAt(randBytes(16), 8)
	require.NoError(t, err)
	assert.Len(t, g.transfers, 1)
}

// Managed storage: the CPU copy is synchronised before host reads and marked modified
// after host writes; without that the fake, like a discrete GPU, shows stale bytes.
func TestMetalManagedSync(t *testing.T) {
	g := newFakeGPU(false)
	s, _ := allocator.NewMetalStrategy(g, metalrt.Managed)
	ms, err := s.AllocMetal(32)
	require.NoError(t, err)
	buf := ms.Buffer().(*fakeBuf)
	data := randBytes(12)
	_, err = ms.WriteAt(data, 4)
	require.NoError(t, err)
	assert.Equal(t, [][2]int{{4, 12}}, buf.modified, "didModifyRange over exactly the written range")
	assert.Equal(t, data, buf.gpu[4:16], "the GPU copy is current")

	gpuWrite := randBytes(32)
	copy(buf.gpu, gpuWrite) // a kernel wrote the buffer
	assert.NotEqual(t, gpuWrite, ms.Bytes(), "stale until synchronised")
	got := make([]byte, 32)
	_, err = ms.ReadAt(got, 0)
	require.NoError(t, err)
	assert.Equal(t, gpuWrite, got)
	require.Len(t, g.transfers, 1)
	assert.True(t, g.transfers[0][0].Sync, "synchronizeResource before the host reads")

	copy(buf.gpu, randBytes(31))
	require.NoError(t, ms.SyncForHost())
	assert.Equal(t, buf.gpu, ms.Bytes())
	assert.Equal(t, int64(2), s.CopyStats()[allocator.CopyManagedSync].Count)
	assert.ErrorIs(t, ms.DidModify(30, 4), allocator.ErrMetalStorage)
}

func TestPolicy(t *testing.T) {
	for _, c := range []struct {
		name    string
		p       allocator.Policy
		role    allocator.Role
		unified bool
		want    metalrt.StorageMode
	}{
		{"unified: host-visible is shared", allocator.Policy{}, allocator.RoleHostVisible, true, metalrt.Shared},
		{"discrete: host-visible is managed", allocator.Policy{}, allocator.RoleHostVisible, false, metalrt.Managed},
		{"intermediates are private", allocator.Policy{}, allocator.RoleIntermediate, true, metalrt.Private},
		{"intermediates are private (discrete)", allocator.Policy{}, allocator.RoleIntermediate, false, metalrt.Private},
		{"forced private outputs", allocator.Policy{Outputs: tensor.Private}, allocator.RoleHostVisible, true, metalrt.Private},
		{"forced managed outputs", allocator.Policy{Outputs: tensor.Managed}, allocator.RoleHostVisible, true, metalrt.Managed},
		{"forced shared intermediates", allocator.Policy{Intermediates: tensor.Shared}, allocator.RoleIntermediate, true, metalrt.Shared},
		{"output force leaves intermediates", allocator.Policy{Outputs: tensor.Shared}, allocator.RoleIntermediate, true, metalrt.Private},
	} {
		assert.Equal(t, c.want, c.p.Mode(c.role, c.unified), c.name)
	}
	assert.NoError(t, allocator.Policy{Outputs: tensor.Private}.Validate())
	assert.Error(t, allocator.Policy{Outputs: tensor.Host}.Validate())
	assert.Error(t, allocator.Policy{Intermediates: 42}.Validate())
}

// A tensor placed in private memory, then prepared for a host executor: the preparer reads
// it through a staging blit (counted by the storage) and copies it (counted by itself).
func TestPlaceAndPreparePrivate(t *testing.T) {
	g := newFakeGPU(true)
	s, _ := allocator.NewMetalStrategy(g, metalrt.Private)
	x := seq(t, tensor.Float32, 3, 5)
	tr, err := x.Transpose(0, 1)
	require.NoError(t, err)
	priv, err := allocator.Place(s, tr)
	require.NoError(t, err)
	assert.Equal(t, tensor.Private, priv.Storage().Kind())
	assert.True(t, priv.IsContiguous())
	assert.Equal(t, int64(60), s.CopyStats()[allocator.CopyStageIn].Bytes)

	p := allocator.NewPreparer(allocator.NewHost())
	host, err := p.Prepare(priv, allocator.Needs{})
	require.NoError(t, err)
	assert.Equal(t, tensor.Host, host.Storage().Kind())
	assert.Equal(t, vals(t, tr), vals(t, host))
	copies, n := p.Counts()
	assert.Equal(t, int64(1), copies)
	assert.Equal(t, int64(60), n)
	assert.Equal(t, int64(60), s.CopyStats()[allocator.CopyStageOut].Bytes)

	// A strided view of private memory is read over its span only.
	row, err := priv.Slice(0, 2, 4)
	require.NoError(t, err)
	hv, copied, err := allocator.HostView(row)
	require.NoError(t, err)
	assert.True(t, copied)
	assert.Equal(t, vals(t, must(tr.Slice(0, 2, 4))), vals(t, hv))
	assert.Equal(t, int64(60+6*4), s.CopyStats()[allocator.CopyStageOut].Bytes)

	// Host tensors are their own host view.
	same, copied, err := allocator.HostView(x)
	require.NoError(t, err)
	assert.False(t, copied)
	assert.Same(t, x, same)
}

func must(x *tensor.Tensor, err error) *tensor.Tensor {
	if err != nil {
		panic(err)
	}
	return x
}
