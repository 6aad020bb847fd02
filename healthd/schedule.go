package healthd

import (
	"container/heap"
	"context"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// Event kinds of the scheduler.
const (
	evRun    = iota // an interval check is due
	evTTL           // a TTL check's timer expires
	evDereg         // a check has been critical for DeregisterCriticalServiceAfter
	evOutput        // a deferred output-only change is due for a report
	numEvents
)

// event is one timed action. It is stale, and skipped, when its check was
// removed or re-armed since (seq no longer matches the check's).
type event struct {
	at   time.Time
	c    *checkState
	kind int
	seq  uint64
}

// eventHeap orders events by time. Guarded by Daemon.mu.
type eventHeap []event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = event{}
	*h = old[:n-1]
	return e
}

// pushLocked adds an event and wakes the scheduler, whose timer may be
// set for a later one.
func (d *Daemon) pushLocked(e event) {
	heap.Push(&d.events, e)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// schedule is the scheduler: it fires due events and hands due runs to
// at most MaxRunning workers. Runs that find every worker busy wait in a
// FIFO queue, so a burst of due checks is worked off in due order and
// nothing else (TTL expiry, reports) waits behind it. It returns when ctx
// ends; the runs it started are waited for by Run.
func (d *Daemon) schedule(ctx context.Context) {
	timer := d.c.Clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		d.mu.Lock()
		next, ok := d.dispatchLocked(ctx)
		d.mu.Unlock()
		timer.Stop()
		if ok {
			timer.Reset(max(next.Sub(d.c.Clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-d.wake:
		}
	}
}

// dispatchLocked fires every due event, starts queued runs while workers
// are free, and returns the time of the next event.
func (d *Daemon) dispatchLocked(ctx context.Context) (time.Time, bool) {
	now := d.c.Clock.Now()
	for len(d.events) > 0 && !d.events[0].at.After(now) {
		e := heap.Pop(&d.events).(event)
		c := e.c
		if c.removed || c.seq[e.kind] != e.seq {
			continue
		}
		switch e.kind {
		case evRun:
			d.queue = append(d.queue, c)
		case evTTL:
			d.expireTTLLocked(c, now)
		case evDereg:
			if c.status == structs.HealthCritical && !c.deregSent {
				d.log.Info("check critical too long; asking to deregister its service", "check", c.id, "service", c.serviceID, "since", c.criticalSince)
				c.deregPending = true
				d.dirtyLocked(c)
			}
		case evOutput:
			c.outputDeferred = false
			if c.output != c.baseOutput {
				d.addPendingLocked(c)
			}
		}
	}
	for d.nrunning < d.c.MaxRunning && len(d.queue) > 0 {
		c := d.queue[0]
		d.queue[0] = nil
		d.queue = d.queue[1:]
		if len(d.queue) == 0 {
			d.queue = d.queue[:0:0] // let the backing array go
		}
		if c.removed {
			continue
		}
		d.startRunLocked(ctx, c)
	}
	if len(d.events) == 0 {
		return time.Time{}, false
	}
	return d.events[0].at, true
}

// startRunLocked runs c once on a worker goroutine.
func (d *Daemon) startRunLocked(ctx context.Context, c *checkState) {
	d.nrunning++
	c.running = true
	d.runs.Add(1)
	go func() {
		defer d.runs.Done()
		status, output := c.runner.run(ctx)
		d.finishRun(ctx, c, status, output)
	}()
}

// finishRun records a run's result and schedules the next run one
// interval after this one ended, as Consul does.
func (d *Daemon) finishRun(ctx context.Context, c *checkState, status, output string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nrunning--
	c.running = false
	select {
	case d.wake <- struct{}{}: // a worker is free
	default:
	}
	if c.removed || ctx.Err() != nil {
		return
	}
	now := d.c.Clock.Now()
	c.lastRun = now
	d.recordLocked(c, status, output, now)
	c.nextRun = now.Add(c.interval)
	d.pushLocked(event{at: c.nextRun, c: c, kind: evRun, seq: c.seq[evRun]})
}
