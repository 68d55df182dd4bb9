package cpuflash

import (
	"cmp"
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/orchard-ml/orchard/go/attention/spec"
)

// task is one unit of parallel work: a (batch, head, block) triple and its estimated cost.
// Which worker runs a task never changes what it computes, so results are bitwise the
// same for any number of workers.
type task struct {
	b, h, blk int
	cost      int
}

// PanicError is a panic inside a worker (a bug in cpuflash), returned instead of crashing
// the caller. Its message is fixed, so that an engine's fallback record does not grow
// with per-call detail; Value and Stack hold the panic value and the worker's stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return "cpuflash: internal error: a worker panicked (a bug; PanicError.Value and .Stack hold the details)"
}

// FallbackCause reports the failure as a panic.
func (e *PanicError) FallbackCause() spec.Cause { return spec.CausePanic }

// canceled wraps the context's error: the call stopped between tiles.
func canceled(err error) error { return fmt.Errorf("cpuflash: stopped between tiles: %w", err) }

// run executes every task on up to e.workers goroutines, each with its own scratch from
// newScratch (released with free once the worker is done). Tasks go out head by head, so
// that the workers share the K and V (or Q and dO) of one head while it is in cache, and
// within a head costliest first, so that the last tasks to finish are short ones. A
// cancelled ctx stops the workers before their next task (tasks check it between tiles
// too) and comes back as an error wrapping ctx.Err(); a panic in a task (a bug) stops the
// remaining tasks and comes back as a *PanicError.
func run[S any](ctx context.Context, e *Executor, tasks []task, newScratch func() S, free func(S), do func(w S, t task)) error {
	if len(tasks) == 0 {
		return ctx.Err()
	}
	slices.SortStableFunc(tasks, func(x, y task) int {
		if c := cmp.Compare(x.b, y.b); c != 0 {
			return c
		}
		if c := cmp.Compare(x.h, y.h); c != 0 {
			return c
		}
		return cmp.Compare(y.cost, x.cost)
	})
	n := e.workers(len(tasks))
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		first  error
		wg     sync.WaitGroup
	)
	fail := func(err error) {
		failed.Store(true)
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	worker := func() {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				fail(&PanicError{Value: r, Stack: debug.Stack()})
			}
		}()
		w := newScratch()
		if free != nil {
			defer free(w)
		}
		for !failed.Load() {
			if err := ctx.Err(); err != nil {
				fail(canceled(err))
				return
			}
			i := int(next.Add(1)) - 1
			if i >= len(tasks) {
				return
			}
			do(w, tasks[i])
		}
	}
	wg.Add(n)
	for i := 1; i < n; i++ {
		go worker()
	}
	worker()
	wg.Wait()
	if first == nil {
		if err := ctx.Err(); err != nil { // a task may have cut its tiles short
			return canceled(err)
		}
	}
	return first
}

// bufCache keeps float32 buffers between calls, so that a training loop does not fault
// fresh pages in for its scratch on every step (about 1.8 ms per MiB on the virtual
// machines this was measured on). It holds at most limit bytes; buffers beyond that go
// to the garbage collector. Buffers come back uncleared.
type bufCache struct {
	mu    sync.Mutex
	free  map[int][][]float32 // by length
	bytes int64
	limit int64
}

// get returns a buffer of n elements, cached or new.
func (c *bufCache) get(n int) []float32 {
	if c != nil && c.limit > 0 {
		c.mu.Lock()
		if l := c.free[n]; len(l) > 0 {
			b := l[len(l)-1]
			c.free[n] = l[:len(l)-1]
			c.bytes -= int64(n) * 4
			c.mu.Unlock()
			return b
		}
		c.mu.Unlock()
	}
	return make([]float32, n)
}

// put hands b back for a later call, unless the cache is full.
func (c *bufCache) put(b []float32) {
	if c == nil || c.limit <= 0 || len(b) == 0 {
		return
	}
	sz := int64(len(b)) * 4
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+sz > c.limit {
		return
	}
	if c.free == nil {
		c.free = map[int][][]float32{}
	}
	c.free[len(b)] = append(c.free[len(b)], b)
	c.bytes += sz
}

// slab carves consecutive slices out of one cached buffer.
type slab struct{ buf []float32 }

func (s *slab) take(n int) []float32 {
	out := s.buf[:n:n]
	s.buf = s.buf[n:]
	return out
}
