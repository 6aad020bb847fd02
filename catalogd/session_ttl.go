package catalogd

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
)

// Retry bounds for writing a TTL expiry that failed (no leader, raftd
// away): the session is tried again after ttlRetryMin, doubling up to
// ttlRetryMax, for as long as this server leads.
const (
	ttlRetryMin = 500 * time.Millisecond
	ttlRetryMax = 30 * time.Second
)

// ttlTimers holds the session TTL deadlines of the leader's catalogd:
// each TTL session expires TTL × 2 after the moment this process applied
// its create or its latest renew, or after it took up leadership,
// whichever is later. Deadlines are this process's own clock readings;
// the renew times other servers stamped into commands are never used as
// deadlines. While not leading it holds nothing and arm does nothing.
// Safe for concurrent use.
type ttlTimers struct {
	mu      sync.Mutex // guards every field below
	leading bool
	byID    map[string]*ttlEntry
	queue   ttlQueue      // byID's entries, earliest deadline first
	wake    chan struct{} // capacity 1: the earliest deadline moved
}

// ttlEntry is one armed session.
type ttlEntry struct {
	id       string
	ttl      time.Duration
	deadline time.Time
	// renewedAt is the store's renew stamp when armed; it only tells
	// whether a renew happened since, never when.
	renewedAt int64
	retries   int // failed expiry writes in a row
	pos       int // index in queue
}

func newTTLTimers() *ttlTimers {
	return &ttlTimers{byID: map[string]*ttlEntry{}, wake: make(chan struct{}, 1)}
}

// start takes up leadership: it forgets every deadline and arms every
// TTL session that list returns at now + TTL × 2. list runs under the
// lock, so a create or destroy applied meanwhile is seen either by list
// or, after start, by arm and disarm.
func (t *ttlTimers) start(now time.Time, list func() []*structs.Session, renewedAt func(string) int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearLocked()
	t.leading = true
	n := 0
	for _, s := range list() {
		if ttl := sessionTTL(s); ttl > 0 {
			t.armLocked(s.ID, ttl, now, renewedAt(s.ID))
			n++
		}
	}
	t.signal()
	return n
}

// fill arms the TTL sessions of list that have no deadline, leaving the
// others alone; after a snapshot restore while leading.
func (t *ttlTimers) fill(now time.Time, list func() []*structs.Session, renewedAt func(string) int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.leading {
		return
	}
	for _, s := range list() {
		if _, ok := t.byID[s.ID]; !ok {
			if ttl := sessionTTL(s); ttl > 0 {
				t.armLocked(s.ID, ttl, now, renewedAt(s.ID))
			}
		}
	}
	t.signal()
}

// stop gives up leadership: every deadline is forgotten.
func (t *ttlTimers) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.leading = false
	t.clearLocked()
	t.signal()
}

// isLeading reports whether the timers run.
func (t *ttlTimers) isLeading() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leading
}

func (t *ttlTimers) clearLocked() {
	clear(t.byID)
	t.queue = t.queue[:0]
}

// arm sets session id's deadline to now + ttl × 2 (a create or renew was
// applied), replacing any earlier one. It does nothing while not leading
// or for ttl 0.
func (t *ttlTimers) arm(id string, ttl time.Duration, now time.Time, renewedAt int64) {
	if ttl <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.leading {
		return
	}
	t.armLocked(id, ttl, now, renewedAt)
	t.signal()
}

func (t *ttlTimers) armLocked(id string, ttl time.Duration, now time.Time, renewedAt int64) {
	at := now.Add(ttl * sessionTTLMultiplier)
	if e, ok := t.byID[id]; ok {
		e.ttl, e.deadline, e.renewedAt, e.retries = ttl, at, renewedAt, 0
		heap.Fix(&t.queue, e.pos)
		return
	}
	e := &ttlEntry{id: id, ttl: ttl, deadline: at, renewedAt: renewedAt}
	t.byID[id] = e
	heap.Push(&t.queue, e)
}

// renewed re-arms every armed session whose store renew stamp differs
// from the one seen when it was armed: the fallback for a renew whose
// result does not name its session. It scans every armed session.
func (t *ttlTimers) renewed(now time.Time, renewedAt func(string) (int64, bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.leading {
		return
	}
	for _, e := range t.byID {
		if at, ok := renewedAt(e.id); ok && at != e.renewedAt {
			t.armLocked(e.id, e.ttl, now, at)
		}
	}
	t.signal()
}

// disarm forgets session id's deadline (it was destroyed).
func (t *ttlTimers) disarm(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byID[id]; ok {
		heap.Remove(&t.queue, e.pos)
		delete(t.byID, id)
	}
}

// armed reports whether session id has a deadline.
func (t *ttlTimers) armed(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.byID[id]
	return ok
}

// len is the number of armed sessions.
func (t *ttlTimers) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// next returns the earliest deadline, false when none is armed.
func (t *ttlTimers) next() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		return time.Time{}, false
	}
	return t.queue[0].deadline, true
}

// expired removes and returns the sessions whose deadline is at or
// before now.
func (t *ttlTimers) expired(now time.Time) []ttlEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ttlEntry
	for len(t.queue) > 0 && !t.queue[0].deadline.After(now) {
		e := heap.Pop(&t.queue).(*ttlEntry)
		delete(t.byID, e.id)
		out = append(out, *e)
	}
	return out
}

// retry re-arms an expired session whose destroy could not be written,
// after a backoff growing with its failures; not when a renew re-armed it
// meanwhile, nor when no longer leading.
func (t *ttlTimers) retry(e ttlEntry, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[e.id]; ok || !t.leading {
		return 0
	}
	wait := min(ttlRetryMin<<min(e.retries, 16), ttlRetryMax)
	n := &ttlEntry{id: e.id, ttl: e.ttl, deadline: now.Add(wait), renewedAt: e.renewedAt, retries: e.retries + 1}
	t.byID[e.id] = n
	heap.Push(&t.queue, n)
	t.signal()
	return wait
}

// signal wakes the expiry loop; t.mu is held.
func (t *ttlTimers) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// ttlQueue is a min-heap of entries by deadline.
type ttlQueue []*ttlEntry

func (q ttlQueue) Len() int           { return len(q) }
func (q ttlQueue) Less(i, j int) bool { return q[i].deadline.Before(q[j].deadline) }
func (q ttlQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].pos, q[j].pos = i, j
}
func (q *ttlQueue) Push(x any) {
	e := x.(*ttlEntry)
	e.pos = len(*q)
	*q = append(*q, e)
}
func (q *ttlQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// runTTL expires sessions whose deadline passed, until ctx ends. For
// each batch of expired sessions it first makes sure the store has
// applied everything committed (a renew may be on its way), then writes a
// SessionDestroy with reason "ttl" through raft for each session the
// store does not show renewed or gone. A failure is retried with backoff
// while this server leads.
func (d *Daemon) runTTL(ctx context.Context) {
	log := d.log.With("component", "session-ttl")
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if at, ok := d.ttl.next(); ok {
			wait = max(time.Until(at), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.ttl.wake:
			continue
		case <-timer.C:
		}
		batch := d.ttl.expired(time.Now())
		if len(batch) == 0 {
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, expireWait)
		_, berr := d.barrier(bctx, queryOptions{mode: modeDefault})
		cancel()
		for _, e := range batch {
			if ctx.Err() != nil {
				return
			}
			err := berr
			if err == nil {
				err = d.expireSession(ctx, e)
			}
			if err != nil {
				wait := d.ttl.retry(e, time.Now())
				lvl := log.Warn
				if expected(err) {
					lvl = log.Debug
				}
				lvl("session ttl expiry not written, will retry", "session", e.id, "err", err, "retry_in", wait)
			}
		}
	}
}

// expireWait bounds a barrier, and the write of one expiry.
const expireWait = 10 * time.Second

// expireSession destroys an expired session through raft, unless the
// store (past the batch's barrier) shows it renewed (re-armed) or already
// gone, or this server no longer leads.
func (d *Daemon) expireSession(ctx context.Context, e ttlEntry) error {
	if d.ttl.armed(e.id) || !d.ttl.isLeading() {
		return nil
	}
	if _, s, err := d.store.SessionGet(nil, e.id); err != nil {
		return err
	} else if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, expireWait)
	defer cancel()
	res, _, err := d.applySession(ctx, state.SessionRequest{
		Op: state.SessionDestroy, Session: structs.Session{ID: e.id}, Now: d.wallNow(), Reason: state.ReasonTTL,
	})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	d.log.Debug("session ttl expired", "component", "session-ttl", "session", e.id, "ttl", e.ttl)
	return nil
}
