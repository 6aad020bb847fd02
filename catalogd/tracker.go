package catalogd

import (
	"container/heap"
	"context"
	"sync"
)

// maxResults bounds how many apply results are kept for writers waiting
// on their index; the oldest is evicted first.
const maxResults = 16 << 10

// tracker records how far the store has applied the log and the result of
// each applied command, and wakes goroutines waiting for an index. The
// feed loop is its only writer. Safe for concurrent use.
//
// Each waiter waits on its own channel, woken only once the applied index
// reaches what it waits for: under write load many writers wait at once,
// for indexes a few feed batches apart, and waking all of them at every
// batch would mostly wake goroutines that go straight back to sleep.
type tracker struct {
	mu      sync.Mutex // guards every field below
	index   uint64
	waiters waitHeap       // goroutines waiting for an index above index
	results map[uint64]any // raft index → bool or error
	ring    []uint64       // indexes in results, in insertion order, circular
	next    int            // ring slot the next record overwrites
}

func newTracker(max int) *tracker {
	return &tracker{
		results: make(map[uint64]any, 1024),
		ring:    make([]uint64, max),
	}
}

// applied returns the last applied index.
func (t *tracker) applied() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.index
}

// record keeps the result of the command at index, evicting the oldest
// kept result when full. It does not move the applied index.
func (t *tracker) record(index uint64, res any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recordLocked(index, res)
}

func (t *tracker) recordLocked(index uint64, res any) {
	if old := t.ring[t.next]; old != 0 {
		delete(t.results, old)
	}
	t.ring[t.next] = index
	t.next = (t.next + 1) % len(t.ring)
	t.results[index] = res
}

// applyResult is one applied command's result, for advance.
type applyResult struct {
	index uint64
	res   any
}

// advance records a batch of results and moves the applied index to
// index, under one lock, then wakes the waiters it satisfies.
func (t *tracker) advance(results []applyResult, index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range results {
		t.recordLocked(r.index, r.res)
	}
	t.setLocked(index)
}

// set moves the applied index (backwards too, after restoring an older
// snapshot) and wakes the waiters it satisfies.
func (t *tracker) set(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setLocked(index)
}

func (t *tracker) setLocked(index uint64) {
	t.index = index
	for len(t.waiters) > 0 && t.waiters[0].index <= index {
		w := heap.Pop(&t.waiters).(*waiter)
		close(w.done)
	}
}

// wait blocks until the applied index reaches index or ctx ends, and
// returns ctx's error then.
func (t *tracker) wait(ctx context.Context, index uint64) error {
	t.mu.Lock()
	if t.index >= index {
		t.mu.Unlock()
		return nil
	}
	w := &waiter{index: index, done: make(chan struct{})}
	heap.Push(&t.waiters, w)
	t.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		defer t.mu.Unlock()
		if w.pos < 0 {
			return nil // woken meanwhile: the index was reached
		}
		heap.Remove(&t.waiters, w.pos)
		return ctx.Err()
	}
}

// take returns and forgets the result recorded for index.
func (t *tracker) take(index uint64) (any, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res, ok := t.results[index]
	if ok {
		delete(t.results, index)
	}
	return res, ok
}

// waiter is one goroutine in tracker.wait.
type waiter struct {
	index uint64
	done  chan struct{} // closed when the applied index reaches index
	pos   int           // position in the heap; -1 once popped or removed
}

// waitHeap orders waiters by the index they wait for, lowest first.
type waitHeap []*waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}

func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.pos = len(*h)
	*h = append(*h, w)
}

func (h *waitHeap) Pop() any {
	old := *h
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.pos = -1
	*h = old[:n-1]
	return w
}
