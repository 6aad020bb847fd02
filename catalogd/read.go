package catalogd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/consort-io/consort/pkg/raftapi"
	"github.com/hashicorp/go-memdb"
)

// readWait bounds how long a read waits for the store to reach its read
// index (or a snapshot request its minimum index).
const readWait = 5 * time.Second

// queryMeta is what every read reports in its X-Consul-* headers.
type queryMeta struct {
	index       uint64
	knownLeader bool
	lastContact time.Duration
	mode        mode // effective consistency
}

// setHeaders writes m's headers. The index is never 0: a client blocking
// on ?index=0 would not block at all and would spin.
func (m queryMeta) setHeaders(h http.Header) {
	idx := max(m.index, 1)
	h.Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(m.knownLeader))
	h.Set("X-Consul-LastContact", strconv.FormatInt(max(m.lastContact, 0).Milliseconds(), 10))
	h.Set("X-Consul-Effective-Consistency", m.mode.header())
}

// barrier makes local state fresh enough for q's consistency mode and
// returns the leader facts to report. Stale reads need nothing (and no
// leader) unless ?max_stale is exceeded, which turns them into default
// reads as in Consul. Other reads wait for raftd's read index.
func (d *Daemon) barrier(ctx context.Context, q queryOptions) (queryMeta, error) {
	m := q.mode
	if m == modeStale {
		known, lc := d.status.view()
		if q.maxStale <= 0 || lc <= q.maxStale {
			return queryMeta{knownLeader: known, lastContact: lc, mode: modeStale}, nil
		}
		m = modeDefault
	}
	ri, err := d.cfg.Raft.ReadIndex(ctx, m == modeConsistent)
	switch {
	case errors.Is(err, raftapi.ErrTimeout):
		// Not a write: nothing is unknown, the leader was just slow.
		return queryMeta{mode: m}, fmt.Errorf("rpc error: timed out getting a read index from the leader; retry")
	case err != nil:
		return queryMeta{mode: m}, fmt.Errorf("read index: %w", err)
	}
	if err := d.waitApplied(ctx, ri.Index); err != nil {
		return queryMeta{mode: m}, err
	}
	return queryMeta{knownLeader: ri.KnownLeader, lastContact: ri.LastContact, mode: m}, nil
}

// errBehind: the store did not reach an index within readWait.
var errBehind = errors.New("catalogd is behind raft")

// waitApplied waits, at most readWait, until the store applied index.
func (d *Daemon) waitApplied(ctx context.Context, index uint64) error {
	wctx, cancel := context.WithTimeout(ctx, d.readWait)
	defer cancel()
	if err := d.track.wait(wctx, index); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: applied index %d, needed %d after waiting %s; is the feed from raftd (%s) flowing?",
			errBehind, d.track.applied(), index, d.readWait, d.cfg.RaftSocket)
	}
	return nil
}

// query runs a read with q's consistency and blocking semantics. run
// queries the store, adding what it read to ws (which may be nil), and
// returns its result's index. For a blocking query run is repeated until
// its index exceeds q.minIndex or the wait ends; the last run's result
// stands either way.
func (d *Daemon) query(ctx context.Context, q queryOptions, run func(ws memdb.WatchSet) (uint64, error)) (queryMeta, error) {
	meta, err := d.barrier(ctx, q)
	if err != nil {
		return meta, err
	}
	if !q.blocking() {
		meta.index, err = run(nil)
		return meta, err
	}
	timeout := q.timeout()
	timeout += rand.N(timeout/jitterFraction + 1)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		// A snapshot restore replaces every table; watchers must re-run.
		ws.Add(d.store.AbandonCh())
		idx, err := run(ws)
		if err != nil {
			return meta, err
		}
		meta.index = max(idx, 1)
		if meta.index > q.minIndex {
			break
		}
		if ws.WatchCtx(tctx) != nil {
			if ctx.Err() != nil {
				return meta, ctx.Err()
			}
			break
		}
	}
	if meta.mode == modeStale {
		meta.knownLeader, meta.lastContact = d.status.view()
	}
	return meta, nil
}
