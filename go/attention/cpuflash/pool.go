package cpuflash

import (
	"cmp"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
)

// task is one unit of parallel work: a (batch, head, block) triple and its estimated cost.
// Which worker runs a task never changes what it computes, so results are bitwise the
// same for any number of workers.
type task struct {
	b, h, blk int
	cost      int
}

// run executes every task on up to e.workers goroutines, each with its own scratch from
// newScratch. Tasks go out head by head, so that the workers share the K and V (or Q and
// dO) of one head while it is in cache, and within a head costliest first, so that the
// last tasks to finish are short ones. A panic in a task (a bug) stops the remaining tasks
// and comes back as an error instead of crashing the caller.
func run[S any](e *Executor, tasks []task, newScratch func() S, do func(w S, t task)) error {
	if len(tasks) == 0 {
		return nil
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
	worker := func() {
		defer wg.Done()
		defer func() {
			if r := recover(); r != nil {
				failed.Store(true)
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("cpuflash: internal error: %v\n%s", r, debug.Stack())
				}
				mu.Unlock()
			}
		}()
		w := newScratch()
		for !failed.Load() {
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
	return first
}
