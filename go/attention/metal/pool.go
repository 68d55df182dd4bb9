package metal

import (
	"errors"
	"math/bits"
	"sync"

	metalrt "github.com/orchard-ml/orchard/native/objc"
)

// pool keeps the buffers of finished calls — uploads of host inputs, Delta, the dummy
// binding — for the next calls, so that a steady training loop allocates no Metal
// memory per call. Buffers come in size classes (powers of two, at least minClass
// bytes) per storage mode. At most maxFree bytes wait in the pool; a buffer that would
// pass that is closed instead. Close releases every waiting buffer.
type pool struct {
	dev     device
	maxFree int64

	mu     sync.Mutex
	free   map[poolKey][]buffer
	nfree  int64 // bytes waiting
	closed bool
	allocs int64 // buffers allocated from the device (for tests and stats)
	reuses int64 // buffers handed out again
}

type poolKey struct {
	mode  metalrt.StorageMode
	class int
}

// minClass is the smallest size class: one 16 KiB page of Apple silicon.
const minClass = 16 << 10

func newPool(dev device, maxFree int64) *pool {
	return &pool{dev: dev, maxFree: maxFree, free: map[poolKey][]buffer{}}
}

// classOf rounds n up to its size class; false when n is too large to round.
func classOf(n int) (int, bool) {
	if n <= minClass {
		return minClass, true
	}
	if n > 1<<(bits.UintSize-2) {
		return 0, false
	}
	return 1 << bits.Len(uint(n-1)), true
}

var errPoolClosed = errors.New("metal: buffer pool is closed")

// get returns a buffer of at least n bytes in mode: a waiting one of n's class, or a new
// one. Its contents are whatever the last user left.
func (p *pool) get(n int, mode metalrt.StorageMode) (buffer, error) {
	class, ok := classOf(n)
	if !ok {
		return nil, &metalrt.Error{Op: metalrt.OpNewBuffer, Kind: metalrt.ErrOutOfMemory, Detail: "size too large"}
	}
	k := poolKey{mode, class}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	if l := p.free[k]; len(l) > 0 {
		b := l[len(l)-1]
		p.free[k] = l[:len(l)-1]
		p.nfree -= int64(class)
		p.reuses++
		p.mu.Unlock()
		return b, nil
	}
	p.allocs++
	p.mu.Unlock()
	return p.dev.NewBuffer(class, mode)
}

// put gives b back for reuse, or closes it when the pool is full or closed. Its class
// is the largest power of two its length holds, so every buffer of a class holds at
// least the class's bytes.
func (p *pool) put(b buffer, mode metalrt.StorageMode) {
	if b.Len() < minClass {
		b.Close()
		return
	}
	class := 1 << (bits.Len(uint(b.Len())) - 1)
	p.mu.Lock()
	if p.closed || p.nfree+int64(class) > p.maxFree {
		p.mu.Unlock()
		b.Close()
		return
	}
	k := poolKey{mode, class}
	p.free[k] = append(p.free[k], b)
	p.nfree += int64(class)
	p.mu.Unlock()
}

// counts returns how many buffers were allocated and reused so far, and the bytes
// waiting.
func (p *pool) counts() (allocs, reuses, waiting int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allocs, p.reuses, p.nfree
}

// close releases every waiting buffer; later puts close their buffer.
func (p *pool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for k, l := range p.free {
		for _, b := range l {
			if err := b.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		delete(p.free, k)
	}
	p.nfree = 0
	return errors.Join(errs...)
}
