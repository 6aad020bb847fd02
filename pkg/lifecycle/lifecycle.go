// Package lifecycle holds the run-once, close-idempotent guard every
// consort daemon's Run and Close share (STYLE.md: "Shape of a daemon
// package").
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Guard lets Run be called once and Close any number of times, from any
// goroutine: Close cancels a running Run and waits for it to return, and
// after Close a later Run returns at once. The zero value is ready.
type Guard struct {
	mu      sync.Mutex // guards closed, running, cancel, done
	closed  bool
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Start begins a Run of the daemon named name. When ok is false Run must
// return err at once: nil after Close, an error on a second Run. When ok
// is true Run works under the returned context and must call finish when
// it returns (defer it), which lets a waiting Close return.
func (g *Guard) Start(ctx context.Context, name string) (runCtx context.Context, finish func(), ok bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, nil, false, nil
	}
	if g.running {
		return nil, nil, false, fmt.Errorf("%s: Run called twice", name)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	g.running, g.cancel, g.done = true, cancel, done
	return runCtx, func() { close(done); cancel() }, true, nil
}

// Close marks the guard closed, cancels a running Run and waits until it
// has finished. Idempotent.
func (g *Guard) Close() {
	g.mu.Lock()
	g.closed = true
	cancel, done := g.cancel, g.done
	g.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
