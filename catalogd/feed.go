package catalogd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/raftapi"
)

// Feed retry backoff: a broken feed (raftd restarting) is reopened after
// feedBackoffMin, doubling up to feedBackoffMax while nothing arrives.
const (
	feedBackoffMin = 50 * time.Millisecond
	feedBackoffMax = 5 * time.Second
)

// runFeed follows raftd's log until ctx ends, reopening the feed after
// the applied index whenever it breaks. Nothing is lost across a break:
// raft holds every committed entry.
func (d *Daemon) runFeed(ctx context.Context) {
	log := d.log.With("component", "feed")
	backoff := feedBackoffMin
	failures := 0
	for {
		progressed, err := d.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff, failures = feedBackoffMin, 0
		}
		failures++
		// The first failures of an outage are worth a warning; later ones
		// repeat the same news.
		lvl := log.Warn
		if failures > 3 {
			lvl = log.Debug
		}
		lvl("raft feed broken, reopening", "err", err, "applied", d.track.applied(), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, feedBackoffMax)
	}
}

// follow opens one feed and applies what it delivers until it breaks. It
// reports whether anything arrived.
func (d *Daemon) follow(ctx context.Context) (bool, error) {
	after := d.track.applied()
	st, err := d.cfg.Raft.Feed(ctx, after)
	if err != nil {
		return false, fmt.Errorf("open feed after %d: %w", after, err)
	}
	defer st.Close()
	d.log.Debug("raft feed open", "after", after)
	var (
		snap      *bytes.Buffer // non-nil between SnapshotBegin and SnapshotEnd
		snapIndex uint64
		got       bool
	)
	for {
		it, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("raftd ended the feed")
			}
			return got, err
		}
		got = true
		switch it.Kind {
		case raftapi.FeedSnapshotBegin:
			snap, snapIndex = new(bytes.Buffer), it.Index
		case raftapi.FeedSnapshotChunk:
			if snap == nil {
				return got, errors.New("feed: snapshot chunk outside a snapshot")
			}
			snap.Write(it.Data)
		case raftapi.FeedSnapshotEnd:
			if snap == nil {
				return got, errors.New("feed: snapshot end without a beginning")
			}
			if err := d.restore(snap, snapIndex); err != nil {
				return got, err
			}
			snap = nil
		case raftapi.FeedEntries:
			if snap != nil {
				return got, errors.New("feed: entries inside a snapshot")
			}
			d.applyEntries(it.Entries)
		default:
			// A newer raftd may add kinds; the ones that carry state are
			// the ones above.
			d.log.Warn("raft feed: unknown item kind ignored", "kind", it.Kind)
		}
	}
}

// restore replaces the store's state with a raft snapshot. Blocking
// queries wake through the store's abandon channel.
func (d *Daemon) restore(buf *bytes.Buffer, want uint64) error {
	n := buf.Len()
	idx, err := d.store.Restore(buf)
	if err != nil {
		// Whatever the store holds now, the feed restarts from it.
		d.track.set(d.store.LastIndex())
		return fmt.Errorf("restore snapshot at index %d: %w", want, err)
	}
	d.track.set(idx)
	d.log.Info("restored raft snapshot", "index", idx, "feed_index", want, "bytes", n)
	return nil
}

// applyEntries applies committed commands in order, publishes KV and
// catalog events, then records every result for its writer and wakes the
// writers waiting for the batch, under one lock.
func (d *Daemon) applyEntries(entries []raftapi.Entry) {
	last := d.track.applied()
	results := make([]applyResult, 0, len(entries))
	for _, e := range entries {
		// After a reconnect the feed may repeat what was applied.
		if e.Index <= last {
			continue
		}
		res := d.applyOne(e)
		results = append(results, applyResult{index: e.Index, res: res})
		if ok, _ := res.(bool); ok {
			d.publish(e)
		}
		d.publishCatalog(e.Index, res)
		last = e.Index
	}
	d.track.advance(results, last)
}

// applyOne applies one command. A panic in the state machine answers that
// command with an error instead of killing the daemon: the entry stays in
// the log, so crashing would repeat on every restart.
func (d *Daemon) applyOne(e raftapi.Entry) (res any) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("state machine panic", "index", e.Index, "panic", p, "stack", string(debug.Stack()))
			res = fmt.Errorf("apply index %d: internal error: %v", e.Index, p)
		}
	}()
	return d.store.Apply(e.Index, e.Data)
}

// publish announces an applied KV write on the bus. Entries replayed at
// startup (at or below the commit index raftd reported then) are not
// announced: they are history, and subscribers resync on their own.
func (d *Daemon) publish(e raftapi.Entry) {
	if d.cfg.Bus == nil || e.Index <= d.replayUntil.Load() {
		return
	}
	_, body, err := state.DecodeCommand(e.Data)
	req, ok := body.(*state.KVSRequest)
	if err != nil || !ok {
		return
	}
	ev := bus.KV{Kind: bus.KindKV, Key: req.Entry.Key, Index: e.Index}
	switch req.Op {
	case state.KVSet, state.KVCAS, state.KVLock:
		ev.Op, ev.Flags = bus.KVOpSet, req.Entry.Flags
	case state.KVUnlock:
		// The key's value stays; its holder and ModifyIndex changed.
		ev.Op = bus.KVOpSet
	case state.KVDelete, state.KVDeleteCAS:
		ev.Op = bus.KVOpDelete
	case state.KVDeleteTree:
		ev.Op = bus.KVOpDeleteTree
	default:
		return
	}
	d.cfg.Bus.Publish(bus.Subjects{Prefix: d.cfg.BusPrefix}.KV(), ev)
}
