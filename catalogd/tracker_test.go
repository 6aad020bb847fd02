package catalogd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTrackerWakesOnlyReachedWaiters: advancing wakes the writers whose
// index was reached, with their results recorded, and no others; a
// cancelled wait leaves nothing behind.
func TestTrackerWakesOnlyReachedWaiters(t *testing.T) {
	tr := newTracker(16)
	type res struct {
		index uint64
		err   error
	}
	done := make(chan res, 8)
	for _, idx := range []uint64{3, 5, 5, 9} {
		go func() { done <- res{idx, tr.wait(context.Background(), idx)} }()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { cancelled <- tr.wait(ctx, 7) }()
	waitWaiters(t, tr, 5)

	tr.advance([]applyResult{{4, true}, {5, false}}, 5)
	got := map[uint64]int{}
	for range 3 {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("wait %d: %v", r.index, r.err)
			}
			got[r.index]++
		case <-time.After(10 * time.Second):
			t.Fatalf("woken so far %v, want 3 and twice 5", got)
		}
	}
	if got[3] != 1 || got[5] != 2 {
		t.Fatalf("woken %v, want 3 and twice 5", got)
	}
	if r, ok := tr.take(5); !ok || r != false {
		t.Fatalf("result of 5: %v %v", r, ok)
	}

	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	waitWaiters(t, tr, 1)
	select {
	case r := <-done:
		t.Fatalf("wait %d returned before its index", r.index)
	default:
	}

	// Backwards (an older snapshot restored), then forwards past 9.
	tr.set(2)
	if err := tr.wait(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	tr.set(10)
	select {
	case r := <-done:
		if r.index != 9 || r.err != nil {
			t.Fatalf("last waiter: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter for 9 not woken at 10")
	}
	waitWaiters(t, tr, 0)
}

// waitWaiters waits until n goroutines wait in tr.
func waitWaiters(t *testing.T, tr *tracker, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr.mu.Lock()
		got := len(tr.waiters)
		tr.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
