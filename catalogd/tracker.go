package catalogd

import (
	"context"
	"sync"
)

// maxResults bounds how many apply results are kept for writers waiting
// on their index; the oldest is evicted first.
const maxResults = 16 << 10

// tracker records how far the store has applied the log and the result of
// each applied command, and wakes goroutines waiting for an index. The
// feed loop is its only writer. Safe for concurrent use.
type tracker struct {
	mu      sync.Mutex // guards every field below
	index   uint64
	advance chan struct{}  // closed when index changes, then replaced
	results map[uint64]any // raft index → bool or error
	ring    []uint64       // indexes in results, in insertion order, circular
	next    int            // ring slot the next record overwrites
}

func newTracker(max int) *tracker {
	return &tracker{
		advance: make(chan struct{}),
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
	if old := t.ring[t.next]; old != 0 {
		delete(t.results, old)
	}
	t.ring[t.next] = index
	t.next = (t.next + 1) % len(t.ring)
	t.results[index] = res
}

// set moves the applied index (backwards too, after restoring an older
// snapshot) and wakes every waiter.
func (t *tracker) set(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if index == t.index {
		return
	}
	t.index = index
	close(t.advance)
	t.advance = make(chan struct{})
}

// wait blocks until the applied index reaches index or ctx ends, and
// returns ctx's error then.
func (t *tracker) wait(ctx context.Context, index uint64) error {
	for {
		t.mu.Lock()
		cur, ch := t.index, t.advance
		t.mu.Unlock()
		if cur >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
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
