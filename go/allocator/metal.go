package allocator

import (
	"errors"
	"fmt"
	"sync"

	"github.com/orchard-ml/orchard/go/tensor"
	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// MetalBuffer is a Metal buffer as the Metal strategies see it. *metalrt.Buffer
// implements it; tests use fakes that record what a device would be asked.
type MetalBuffer interface {
	// Len is the buffer's length in bytes (Metal may round the requested length up).
	Len() int
	Mode() metalrt.StorageMode
	// Bytes is the CPU view of a shared or managed buffer; nil for private ones. It is
	// valid only while the buffer is open and reachable.
	Bytes() []byte
	// DidModify tells Metal the CPU wrote [off, off+n) of a managed buffer
	// (didModifyRange:); it does nothing for other modes.
	DidModify(off, n int) error
	Close() error
}

// Transfer is one step of MetalDevice.Transfer: a blit copy of Size bytes from Src at
// SrcOffset to Dst at DstOffset, or, with Sync set, synchronizeResource: on the managed
// buffer Src, so the CPU copy matches the GPU's. Offsets and Size are multiples of 4.
type Transfer struct {
	Src       MetalBuffer
	SrcOffset int
	Dst       MetalBuffer
	DstOffset int
	Size      int
	Sync      bool
}

// MetalDevice is the device the Metal strategies allocate from.
type MetalDevice interface {
	// ID identifies the GPU (metalrt.Device.RegistryID): buffers of devices with the same
	// ID can be used with each other.
	ID() uint64
	Name() string
	HasUnifiedMemory() bool
	NewBuffer(n int, mode metalrt.StorageMode) (MetalBuffer, error)
	// Transfer runs the steps in order in one command buffer and waits for it.
	Transfer(steps ...Transfer) error
}

// NewMetalDevice wraps d for the Metal strategies; it creates a command queue for
// staging blits and synchronizations. Close releases the queue (not d). Outside macOS,
// d cannot exist and every call fails with metalrt.ErrUnavailable.
func NewMetalDevice(d *metalrt.Device) (*MetalRuntime, error) {
	if d == nil {
		return nil, fmt.Errorf("allocator: NewMetalDevice: %w", metalrt.ErrUnavailable)
	}
	q, err := d.NewQueue()
	if err != nil {
		return nil, fmt.Errorf("allocator: NewMetalDevice: %w", err)
	}
	return &MetalRuntime{d: d, q: q}, nil
}

// MetalRuntime is the MetalDevice of a real device (NewMetalDevice), with one command
// queue for transfers.
type MetalRuntime struct {
	d *metalrt.Device
	q *metalrt.Queue
}

var _ MetalDevice = (*MetalRuntime)(nil)

// Device is the wrapped device.
func (m *MetalRuntime) Device() *metalrt.Device { return m.d }

// ID implements MetalDevice.
func (m *MetalRuntime) ID() uint64 { return m.d.RegistryID() }

// Name implements MetalDevice.
func (m *MetalRuntime) Name() string { return m.d.Name() }

// HasUnifiedMemory implements MetalDevice.
func (m *MetalRuntime) HasUnifiedMemory() bool { return m.d.HasUnifiedMemory() }

// NewBuffer implements MetalDevice.
func (m *MetalRuntime) NewBuffer(n int, mode metalrt.StorageMode) (MetalBuffer, error) {
	b, err := m.d.NewBuffer(n, mode)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Transfer implements MetalDevice. Every buffer must be a *metalrt.Buffer.
func (m *MetalRuntime) Transfer(steps ...Transfer) error {
	cmds := make([]metalrt.Command, 0, len(steps))
	for i, s := range steps {
		src, ok := s.Src.(*metalrt.Buffer)
		if !ok {
			return fmt.Errorf("allocator: transfer %d: source %T is not a Metal buffer", i, s.Src)
		}
		if s.Sync {
			cmds = append(cmds, metalrt.Synchronize{Buffer: src})
			continue
		}
		dst, ok := s.Dst.(*metalrt.Buffer)
		if !ok {
			return fmt.Errorf("allocator: transfer %d: destination %T is not a Metal buffer", i, s.Dst)
		}
		cmds = append(cmds, metalrt.Copy{Src: src, SrcOffset: s.SrcOffset, Dst: dst, DstOffset: s.DstOffset, Size: s.Size})
	}
	return m.q.Run(cmds...)
}

// Close releases the transfer queue; nil-safe.
func (m *MetalRuntime) Close() error {
	if m == nil {
		return nil
	}
	return m.q.Close()
}

// Copy kinds the Metal storage counts (fixed strings, so CopyStats stays bounded).
const (
	CopyStageIn       = "metal: host→staging→private (blit)" // WriteAt on private storage
	CopyStageOut      = "metal: private→staging→host (blit)" // ReadAt on private storage
	CopyHostRead      = "metal: host read"                   // ReadAt on shared or managed storage
	CopyHostWrite     = "metal: host write"                  // WriteAt on shared or managed storage
	CopyManagedSync   = "metal: synchronizeResource"         // a managed buffer synchronised for the CPU
	CopyManagedModify = "metal: didModifyRange"              // a managed range marked written by the CPU
)

// ErrMetalStorage is wrapped by MetalStorage errors.
var ErrMetalStorage = errors.New("allocator: metal storage")

// MetalStorage is tensor storage in a Metal buffer: shared (Bytes is the buffer's
// contents, read and written by the CPU with no copy), managed (Bytes too, kept in step
// by SyncForHost before the CPU reads what the GPU wrote, and DidModify after the CPU
// writes) or private (no Bytes; ReadAt and WriteAt go through a shared staging buffer
// and a blit, and are counted). It holds its buffer, so the memory lives as long as the
// storage (and so the tensors over it) is reachable, or until Close.
type MetalStorage struct {
	dev    MetalDevice
	buf    MetalBuffer
	n      int
	counts *CopyCounter
	mu     sync.Mutex // serialises staging
	closed bool
}

var _ tensor.DeviceStorage = (*MetalStorage)(nil)

// NewMetalStorage wraps buf, a buffer of dev, as storage of n bytes (n ≤ buf.Len()),
// counting its staging copies in counts (nil: not counted). The storage owns buf: Close
// closes it.
func NewMetalStorage(dev MetalDevice, buf MetalBuffer, n int, counts *CopyCounter) (*MetalStorage, error) {
	if dev == nil || buf == nil {
		return nil, fmt.Errorf("%w: device and buffer must not be nil", ErrMetalStorage)
	}
	if n < 0 || n > buf.Len() {
		return nil, fmt.Errorf("%w: %d bytes do not fit a %d-byte buffer", ErrMetalStorage, n, buf.Len())
	}
	if counts == nil {
		counts = &CopyCounter{}
	}
	return &MetalStorage{dev: dev, buf: buf, n: n, counts: counts}, nil
}

// KindOf maps a Metal storage mode to a tensor storage kind.
func KindOf(m metalrt.StorageMode) tensor.StorageKind {
	switch m {
	case metalrt.Private:
		return tensor.Private
	case metalrt.Managed:
		return tensor.Managed
	}
	return tensor.Shared
}

// ModeOf maps a device storage kind to a Metal storage mode; false for tensor.Host.
func ModeOf(k tensor.StorageKind) (metalrt.StorageMode, bool) {
	switch k {
	case tensor.Shared:
		return metalrt.Shared, true
	case tensor.Private:
		return metalrt.Private, true
	case tensor.Managed:
		return metalrt.Managed, true
	}
	return 0, false
}

// Kind implements tensor.Storage.
func (s *MetalStorage) Kind() tensor.StorageKind { return KindOf(s.buf.Mode()) }

// Len implements tensor.Storage.
func (s *MetalStorage) Len() int { return s.n }

// Bytes implements tensor.Storage: the buffer's contents for shared and managed
// storage (for managed, call SyncForHost first to see what the GPU wrote), nil for
// private storage and after Close.
func (s *MetalStorage) Bytes() []byte {
	b := s.buf.Bytes()
	if b == nil {
		return nil
	}
	return b[:s.n:s.n]
}

// Buffer is the Metal buffer under the storage; the tensor's bytes start at its offset 0.
func (s *MetalStorage) Buffer() MetalBuffer { return s.buf }

// Device is the device the buffer belongs to.
func (s *MetalStorage) Device() MetalDevice { return s.dev }

// SyncForHost makes the CPU copy of managed storage match the GPU's
// (synchronizeResource:); it does nothing for other modes.
func (s *MetalStorage) SyncForHost() error {
	if s.buf.Mode() != metalrt.Managed {
		return nil
	}
	if err := s.dev.Transfer(Transfer{Src: s.buf, Sync: true}); err != nil {
		return fmt.Errorf("%w: synchronizing for the host: %w", ErrMetalStorage, err)
	}
	s.counts.Add(CopyManagedSync, int64(s.n))
	return nil
}

// DidModify tells Metal the CPU wrote [off, off+n) of managed storage (didModifyRange:);
// it does nothing for other modes.
func (s *MetalStorage) DidModify(off, n int) error {
	if off < 0 || n < 0 || off > s.n-n {
		return fmt.Errorf("%w: range [%d, %d+%d) is outside %d bytes", ErrMetalStorage, off, off, n, s.n)
	}
	if s.buf.Mode() != metalrt.Managed || n == 0 {
		return nil
	}
	if err := s.buf.DidModify(off, n); err != nil {
		return fmt.Errorf("%w: %w", ErrMetalStorage, err)
	}
	s.counts.Add(CopyManagedModify, int64(n))
	return nil
}

func (s *MetalStorage) checkRange(op string, p []byte, off int64) error {
	if s.closed {
		return fmt.Errorf("%w: %s after Close", ErrMetalStorage, op)
	}
	if off < 0 || off > int64(s.n) || int64(len(p)) > int64(s.n)-off {
		return fmt.Errorf("%w: %s of %d bytes at %d is outside %d bytes", ErrMetalStorage, op, len(p), off, s.n)
	}
	return nil
}

// ReadAt copies [off, off+len(p)) of the storage into p: directly for shared storage,
// after SyncForHost for managed storage, and for private storage by a blit into a shared
// staging buffer that is then copied (counted as CopyStageOut).
func (s *MetalStorage) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRange("ReadAt", p, off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch s.buf.Mode() {
	case metalrt.Private:
		lo, hi := int(off)/4*4, (int(off)+len(p)+3)/4*4 // blits move multiples of 4 bytes
		if hi > s.buf.Len() {
			return 0, fmt.Errorf("%w: a blit of [%d, %d) passes the buffer's %d bytes", ErrMetalStorage, lo, hi, s.buf.Len())
		}
		stage, err := s.dev.NewBuffer(hi-lo, metalrt.Shared)
		if err != nil {
			return 0, fmt.Errorf("%w: staging buffer: %w", ErrMetalStorage, err)
		}
		defer stage.Close()
		if err := s.dev.Transfer(Transfer{Src: s.buf, SrcOffset: lo, Dst: stage, Size: hi - lo}); err != nil {
			return 0, fmt.Errorf("%w: blit to staging: %w", ErrMetalStorage, err)
		}
		copy(p, stage.Bytes()[int(off)-lo:])
		s.counts.Add(CopyStageOut, int64(len(p)))
	case metalrt.Managed:
		if err := s.dev.Transfer(Transfer{Src: s.buf, Sync: true}); err != nil {
			return 0, fmt.Errorf("%w: synchronizing for the host: %w", ErrMetalStorage, err)
		}
		s.counts.Add(CopyManagedSync, int64(s.n))
		copy(p, s.buf.Bytes()[off:])
		s.counts.Add(CopyHostRead, int64(len(p)))
	default:
		copy(p, s.buf.Bytes()[off:])
		s.counts.Add(CopyHostRead, int64(len(p)))
	}
	return len(p), nil
}

// WriteAt copies p into [off, off+len(p)) of the storage: directly for shared storage,
// followed by DidModify for managed storage, and for private storage through a shared
// staging buffer and a blit (counted as CopyStageIn). Do not call it while a command
// buffer that uses the storage runs.
func (s *MetalStorage) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRange("WriteAt", p, off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch s.buf.Mode() {
	case metalrt.Private:
		lo, hi := int(off)/4*4, (int(off)+len(p)+3)/4*4
		if hi > s.buf.Len() {
			return 0, fmt.Errorf("%w: a blit of [%d, %d) passes the buffer's %d bytes", ErrMetalStorage, lo, hi, s.buf.Len())
		}
		stage, err := s.dev.NewBuffer(hi-lo, metalrt.Shared)
		if err != nil {
			return 0, fmt.Errorf("%w: staging buffer: %w", ErrMetalStorage, err)
		}
		defer stage.Close()
		var steps []Transfer
		if lo != int(off) || hi != int(off)+len(p) {
			// The blit writes whole 4-byte words: read the edges first so the bytes
			// around p keep their values.
			steps = append(steps, Transfer{Src: s.buf, SrcOffset: lo, Dst: stage, Size: hi - lo})
			if err := s.dev.Transfer(steps...); err != nil {
				return 0, fmt.Errorf("%w: blit to staging: %w", ErrMetalStorage, err)
			}
		}
		copy(stage.Bytes()[int(off)-lo:], p)
		if err := s.dev.Transfer(Transfer{Src: stage, Dst: s.buf, DstOffset: lo, Size: hi - lo}); err != nil {
			return 0, fmt.Errorf("%w: blit from staging: %w", ErrMetalStorage, err)
		}
		s.counts.Add(CopyStageIn, int64(len(p)))
	default:
		copy(s.buf.Bytes()[off:], p)
		s.counts.Add(CopyHostWrite, int64(len(p)))
		if s.buf.Mode() == metalrt.Managed {
			if err := s.buf.DidModify(int(off), len(p)); err != nil {
				return 0, fmt.Errorf("%w: %w", ErrMetalStorage, err)
			}
			s.counts.Add(CopyManagedModify, int64(len(p)))
		}
	}
	return len(p), nil
}

// Close releases the buffer; later reads and writes fail. Tensors over the storage must
// not be used afterwards. Nil-safe and idempotent.
func (s *MetalStorage) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.buf.Close()
}

// MetalStrategy allocates MetalStorage of one storage mode on one device. It counts the
// staging copies of the storage it allocates (CopyStats).
type MetalStrategy struct {
	dev    MetalDevice
	mode   metalrt.StorageMode
	counts CopyCounter
}

// NewMetalStrategy returns the strategy for mode on dev. Managed storage is for devices
// without unified memory; it works on Apple GPUs too (Metal treats it as shared there).
func NewMetalStrategy(dev MetalDevice, mode metalrt.StorageMode) (*MetalStrategy, error) {
	if dev == nil {
		return nil, fmt.Errorf("allocator: NewMetalStrategy: %w", metalrt.ErrUnavailable)
	}
	if mode != metalrt.Shared && mode != metalrt.Private && mode != metalrt.Managed {
		return nil, fmt.Errorf("allocator: NewMetalStrategy: unknown storage mode %v", mode)
	}
	return &MetalStrategy{dev: dev, mode: mode}, nil
}

// Kind implements Strategy.
func (s *MetalStrategy) Kind() tensor.StorageKind { return KindOf(s.mode) }

// Mode is the strategy's Metal storage mode.
func (s *MetalStrategy) Mode() metalrt.StorageMode { return s.mode }

// Device is the strategy's device.
func (s *MetalStrategy) Device() MetalDevice { return s.dev }

// Alloc implements Strategy: n zeroed bytes in a new buffer (at least 16 bytes, rounded
// up to a multiple of 16, so that blits of whole words stay inside it).
func (s *MetalStrategy) Alloc(n int) (tensor.Storage, error) {
	st, err := s.AllocMetal(n)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AllocMetal is Alloc with the concrete type.
func (s *MetalStrategy) AllocMetal(n int) (*MetalStorage, error) {
	if n < 0 || n > maxAlloc {
		return nil, fmt.Errorf("allocator: Alloc(%d): size must be in [0, %d]", n, maxAlloc)
	}
	b, err := s.dev.NewBuffer(max(16, (n+15)/16*16), s.mode)
	if err != nil {
		return nil, fmt.Errorf("allocator: Alloc(%d) in %v memory of %s: %w", n, s.mode, s.dev.Name(), err)
	}
	return NewMetalStorage(s.dev, b, n, &s.counts)
}

// maxAlloc keeps n+15 from overflowing.
const maxAlloc = 1<<62 - 1

// CopyStats returns the staging copies and synchronisations of the storage this
// strategy allocated.
func (s *MetalStrategy) CopyStats() CopyStats { return s.counts.Snapshot() }

// Counter is where the strategy's storage counts its copies.
func (s *MetalStrategy) Counter() *CopyCounter { return &s.counts }

// Role is what a buffer is for in one attention call, for Policy.
type Role int

// Roles.
const (
	// RoleHostVisible buffers are touched by the host: inputs uploaded or bound, the
	// outputs O, L, dQ, dK, dV.
	RoleHostVisible Role = iota
	// RoleIntermediate buffers only the GPU reads and writes within a call: Delta,
	// scratch, bindings a kernel does not use.
	RoleIntermediate
)

// Policy chooses the storage mode of each buffer an executor allocates. The zero value
// chooses: for what the host touches, shared on unified memory and managed on a discrete
// GPU; for intermediates, private. Outputs and Intermediates, when set (a device kind:
// tensor.Shared, tensor.Private or tensor.Managed), force a mode instead.
type Policy struct {
	Outputs       tensor.StorageKind
	Intermediates tensor.StorageKind
}

// Validate checks the forced kinds.
func (p Policy) Validate() error {
	for _, f := range []struct {
		name string
		k    tensor.StorageKind
	}{{"Outputs", p.Outputs}, {"Intermediates", p.Intermediates}} {
		if f.k == 0 {
			continue
		}
		if _, ok := ModeOf(f.k); !ok {
			return fmt.Errorf("allocator: Policy.%s is %v; want shared, private or managed (or 0 to choose)", f.name, f.k)
		}
	}
	return nil
}

// Mode returns the storage mode for a buffer of the given role on a device with or
// without unified memory.
func (p Policy) Mode(r Role, unified bool) metalrt.StorageMode {
	forced := p.Outputs
	if r == RoleIntermediate {
		forced = p.Intermediates
	}
	if m, ok := ModeOf(forced); ok {
		return m
	}
	switch {
	case r == RoleIntermediate:
		return metalrt.Private
	case unified:
		return metalrt.Shared
	}
	return metalrt.Managed
}
