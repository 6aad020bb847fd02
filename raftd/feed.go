package raftd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/raftapi"
)

// Feed batching limits.
const (
	feedMaxEntries = 512
	feedMaxBytes   = 1 << 20
	feedChunkSize  = 256 << 10
)

// feed streams the state machine feed after index after: the latest
// snapshot when the log no longer covers the caller, then committed
// commands in index order, then live ones. It never sends an entry above
// the FSM's applied index, so every entry sent is committed.
//
// The feed keeps a cursor pos: every command at or below pos has reached
// the caller. A snapshot is used instead of the log when
//   - the log no longer holds pos+1 (compacted), or
//   - the cursor is below the newest snapshot's raft index: after a
//     snapshot was installed from the leader, this server's log may still
//     hold entries below that index that were never committed, so the log
//     is only trusted above it. (For a snapshot this server wrote itself
//     the log below it is sound, but the two cannot be told apart after a
//     restart.) In practice a consumer below the newest snapshot is one
//     that restarted empty, and wants the snapshot anyway.
//
// A restore (the restore generation changing) re-runs that check. When the
// snapshot's state index is not above pos, nothing is resent: the entries
// up to the snapshot's raft index hold no command the caller lacks.
func (d *Daemon) feed(ctx context.Context, after uint64, send func(*raftapi.FeedItem) error) error {
	pos := after
	gen := uint64(math.MaxUint64) // forces the snapshot check first
	for {
		st := d.fsm.state()
		if st.gen != gen {
			gen = st.gen
			np, err := d.feedSnapshot(pos, send)
			if err != nil {
				return err
			}
			pos = np
			continue
		}
		if pos < st.applied {
			np, err := d.feedEntries(pos, st.applied, send)
			if errors.Is(err, raft.ErrLogNotFound) {
				sp, serr := d.feedSnapshot(np, send)
				if serr != nil {
					return serr
				}
				if sp <= np {
					return fmt.Errorf("feed: log entry %d is gone and no snapshot covers it", np+1)
				}
				pos = sp
				continue
			}
			if err != nil {
				return err
			}
			pos = np
			continue
		}
		if target, ok := d.hinted(st, pos); ok {
			np, err := d.feedEntries(pos, target, send)
			if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
				return err
			}
			pos = max(pos, np)
			continue
		}
		// A hinted entry not yet in this server's log wakes the feed when
		// it is stored (fsm.stored), as the FSM applying entries does.
		select {
		case <-st.wake:
		case <-ctx.Done():
			return d.ctxErr(ctx)
		}
	}
}

// hinted reports whether the leader's commit hint lets the feed run past
// the FSM's applied index, and to where. It does when this server's log
// holds the hinted entry with the hinted term: by raft's log matching
// property the log then equals the leader's up to it, and the leader
// said that entry is committed.
func (d *Daemon) hinted(st fsmState, pos uint64) (uint64, bool) {
	if st.hintIdx <= pos || st.hintIdx <= st.applied {
		return 0, false
	}
	var l raft.Log
	if err := d.logs.GetLog(st.hintIdx, &l); err != nil || l.Term != st.hintTerm {
		return 0, false
	}
	return st.hintIdx, true
}

// ctxErr is what a call ended by its context returns.
func (d *Daemon) ctxErr(ctx context.Context) error {
	if d.stopping() {
		return raftapi.ErrShutdown
	}
	return ctx.Err()
}

// feedEntries sends committed commands in (pos, applied], at most one
// batch, and returns the new cursor. On raft.ErrLogNotFound the cursor
// returned is the last index dealt with.
func (d *Daemon) feedEntries(pos, applied uint64, send func(*raftapi.FeedItem) error) (uint64, error) {
	var batch []raftapi.Entry
	size := 0
	idx := pos + 1
	var readErr error
	for ; idx <= applied && len(batch) < feedMaxEntries && size < feedMaxBytes; idx++ {
		var l raft.Log
		if err := d.logs.GetLog(idx, &l); err != nil {
			if !errors.Is(err, raft.ErrLogNotFound) {
				err = fmt.Errorf("feed: read log entry %d: %w", idx, err)
			}
			readErr = err
			break
		}
		if l.Type != raft.LogCommand {
			continue // noop, barrier, configuration: nothing for the state machine
		}
		batch = append(batch, raftapi.Entry{Index: l.Index, Data: l.Data})
		size += len(l.Data) + 16
	}
	if len(batch) > 0 {
		if err := send(&raftapi.FeedItem{Kind: raftapi.FeedEntries, Entries: batch}); err != nil {
			return pos, err
		}
	}
	return idx - 1, readErr
}

// latestSnapshot returns the newest snapshot's meta and header.
func (d *Daemon) latestSnapshot() (*raft.SnapshotMeta, snapshotHeader, bool, error) {
	list, err := d.snaps.List()
	if err != nil {
		return nil, snapshotHeader{}, false, fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return nil, snapshotHeader{}, false, nil
	}
	ids := map[string]bool{}
	for _, m := range list {
		ids[m.ID] = true
	}
	d.heads.keep(ids)
	meta := list[0]
	if h, ok := d.heads.get(meta.ID); ok {
		return meta, h, true, nil
	}
	_, rc, err := d.snaps.Open(meta.ID)
	if err != nil {
		return nil, snapshotHeader{}, false, fmt.Errorf("open snapshot %s: %w", meta.ID, err)
	}
	defer rc.Close()
	h, err := readSnapshotHeader(rc)
	if err != nil {
		return nil, snapshotHeader{}, false, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	d.heads.put(meta.ID, h)
	return meta, h, true, nil
}

// feedSnapshot moves the cursor past the newest snapshot when it covers
// more than pos, sending the snapshot when it holds commands the caller
// lacks. It returns the new cursor.
func (d *Daemon) feedSnapshot(pos uint64, send func(*raftapi.FeedItem) error) (uint64, error) {
	// A snapshot may be reaped between listing and opening; look again.
	for attempt := 0; ; attempt++ {
		meta, h, ok, err := d.latestSnapshot()
		if err != nil {
			if attempt < 3 {
				continue
			}
			return pos, fmt.Errorf("feed: %w", err)
		}
		if !ok {
			return pos, nil
		}
		cover := max(h.StateIndex, meta.Index)
		if cover <= pos {
			return pos, nil
		}
		if h.StateIndex <= pos {
			return cover, nil
		}
		sent, err := d.sendSnapshot(meta.ID, send)
		if err != nil {
			if !sent && attempt < 3 {
				continue
			}
			return pos, err
		}
		return cover, nil
	}
}

// sendSnapshot streams one snapshot's state as SnapshotBegin, chunks and
// SnapshotEnd. sent reports whether anything reached the caller (then the
// feed cannot simply retry).
func (d *Daemon) sendSnapshot(id string, send func(*raftapi.FeedItem) error) (sent bool, err error) {
	_, rc, err := d.snaps.Open(id)
	if err != nil {
		return false, fmt.Errorf("feed: open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	h, err := readSnapshotHeader(rc)
	if err != nil {
		return false, fmt.Errorf("feed: snapshot %s: %w", id, err)
	}
	if err := send(&raftapi.FeedItem{Kind: raftapi.FeedSnapshotBegin, Index: h.StateIndex}); err != nil {
		return true, err
	}
	buf := make([]byte, feedChunkSize)
	for {
		n, rerr := io.ReadFull(rc, buf)
		if n > 0 {
			// send encodes before returning, so buf can be reused.
			if err := send(&raftapi.FeedItem{Kind: raftapi.FeedSnapshotChunk, Data: buf[:n]}); err != nil {
				return true, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return true, fmt.Errorf("feed: read snapshot %s: %w", id, rerr)
		}
	}
	if err := send(&raftapi.FeedItem{Kind: raftapi.FeedSnapshotEnd, Index: h.StateIndex}); err != nil {
		return true, err
	}
	d.log.Debug("feed sent snapshot", "component", "feed", "id", id, "state_index", h.StateIndex)
	return true, nil
}
