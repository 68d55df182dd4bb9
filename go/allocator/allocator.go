package allocator

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/orchard-ml/orchard/go/tensor"
)

// ErrCannotPrepare is wrapped when no copy can make a tensor fit (for example, it lives
// in private GPU memory and the strategy cannot read it back).
var ErrCannotPrepare = errors.New("allocator: cannot prepare tensor")

// Strategy allocates storage of one kind.
type Strategy interface {
	// Kind is the kind of storage Alloc returns.
	Kind() tensor.StorageKind
	// Alloc returns n zeroed bytes.
	Alloc(n int) (tensor.Storage, error)
}

// Host allocates ordinary Go memory.
type Host struct{}

// NewHost returns the host strategy.
func NewHost() Host { return Host{} }

// Kind implements Strategy.
func (Host) Kind() tensor.StorageKind { return tensor.Host }

// Alloc implements Strategy.
func (Host) Alloc(n int) (tensor.Storage, error) {
	if n < 0 {
		return nil, fmt.Errorf("allocator: Alloc(%d): negative size", n)
	}
	return tensor.NewHostStorage(n), nil
}

// Needs is what an executor requires of an input tensor.
type Needs struct {
	// DType, when set, is the dtype the executor reads; others are converted.
	DType tensor.DType
	// Contiguous asks for a row-major layout without gaps.
	Contiguous bool
	// Storage lists the storage kinds the executor can read; empty means any host-visible
	// kind.
	Storage []tensor.StorageKind
}

// Fits reports whether t already satisfies n.
func (n Needs) Fits(t *tensor.Tensor) bool {
	if n.DType != 0 && t.DType() != n.DType {
		return false
	}
	if n.Contiguous && !t.IsContiguous() {
		return false
	}
	k := t.Storage().Kind()
	if len(n.Storage) == 0 {
		return k.HostVisible()
	}
	return slices.Contains(n.Storage, k)
}

// Preparer makes tensors fit executors, allocating copies with a Strategy and counting
// them. It is safe for concurrent use.
type Preparer struct {
	strategy Strategy
	copies   atomic.Int64
	bytes    atomic.Int64
	byKind   CopyCounter
}

// NewPreparer returns a Preparer that allocates copies with s.
func NewPreparer(s Strategy) *Preparer { return &Preparer{strategy: s} }

// Counts returns the number of copies made so far and their total size in bytes.
func (p *Preparer) Counts() (copies, bytes int64) { return p.copies.Load(), p.bytes.Load() }

// CopyStats returns the copies made so far by kind: "prepare: " and the storage kind of
// the copy.
func (p *Preparer) CopyStats() CopyStats { return p.byKind.Snapshot() }

// Prepare returns t itself when it fits n, and otherwise a new tensor that does, in the
// strategy's storage when t's kind is not accepted. A source in memory the CPU cannot
// address is read through its storage's io.ReaderAt (see HostView). The input is never
// modified.
func (p *Preparer) Prepare(t *tensor.Tensor, n Needs) (*tensor.Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil tensor", ErrCannotPrepare)
	}
	if n.Fits(t) {
		return t, nil
	}
	// A source the CPU cannot address (Metal private memory) is first read through its
	// storage's io.ReaderAt: a staging copy the storage counts itself.
	src, _, err := HostView(t)
	if err != nil {
		return nil, err
	}
	d := t.DType()
	if n.DType != 0 {
		d = n.DType
	}
	host, err := src.Convert(d) // contiguous host copy
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
	}
	out := host
	if !n.Fits(host) {
		if !slices.Contains(n.Storage, p.strategy.Kind()) || !p.strategy.Kind().HostVisible() {
			return nil, fmt.Errorf("%w: strategy %v cannot provide any of %v", ErrCannotPrepare, p.strategy.Kind(), n.Storage)
		}
		st, err := p.strategy.Alloc(host.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
		}
		copy(st.Bytes(), host.Storage().Bytes())
		if out, err = tensor.FromStorage(st, d, host.Shape(), tensor.ContiguousStrides(host.Shape()), 0); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCannotPrepare, err)
		}
	}
	p.copies.Add(1)
	p.bytes.Add(int64(out.Bytes()))
	p.byKind.Add("prepare: "+out.Storage().Kind().String(), int64(out.Bytes()))
	return out, nil
}
