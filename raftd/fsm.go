package raftd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/ipc"
)

// Snapshot envelope. A raft snapshot written by raftd is
//
//	"csnp" | uint32 big-endian header length | msgpack snapshotHeader | state
//
// where state is catalogd's opaque bytes, exactly as its Snapshot stream
// sent them. raftd reads only the header.
const (
	snapshotMagic     = "csnp"
	snapshotVersion   = 1
	maxSnapshotHeader = 64 << 10
)

// snapshotHeader describes the state inside a raft snapshot.
type snapshotHeader struct {
	Version int `codec:"version"`
	// StateIndex is the raft index catalogd's state reflects: every command
	// at or below it, none above. It is the Index feeds announce.
	StateIndex uint64 `codec:"state_index"`
	// RaftIndex is the last index raftd's FSM had been handed when the
	// snapshot was taken (a command or configuration entry).
	RaftIndex uint64 `codec:"raft_index"`
}

// writeSnapshotHeader writes the envelope's magic and header.
func writeSnapshotHeader(w io.Writer, h snapshotHeader) error {
	b, err := ipc.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode snapshot header: %w", err)
	}
	buf := make([]byte, 0, len(snapshotMagic)+4+len(b))
	buf = append(buf, snapshotMagic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
	buf = append(buf, b...)
	_, err = w.Write(buf)
	return err
}

// readSnapshotHeader reads the envelope's magic and header, leaving r at
// the first byte of state.
func readSnapshotHeader(r io.Reader) (snapshotHeader, error) {
	var h snapshotHeader
	var pre [len(snapshotMagic) + 4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return h, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(pre[:len(snapshotMagic)]) != snapshotMagic {
		return h, errors.New("read snapshot header: not a consort raft snapshot (bad magic)")
	}
	n := binary.BigEndian.Uint32(pre[len(snapshotMagic):])
	if n > maxSnapshotHeader {
		return h, fmt.Errorf("read snapshot header: header of %d bytes exceeds %d", n, maxSnapshotHeader)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, fmt.Errorf("read snapshot header: %w", err)
	}
	if err := ipc.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("read snapshot header: decode: %w", err)
	}
	if h.Version != snapshotVersion {
		return h, fmt.Errorf("read snapshot header: version %d unsupported (want %d)", h.Version, snapshotVersion)
	}
	// StateIndex may be below RaftIndex: the entries between are not
	// commands (configuration changes), so the state still covers them.
	return h, nil
}

// fsmState is a consistent view of the FSM's progress.
type fsmState struct {
	applied uint64          // raft index of the last entry handed to the FSM
	lastCmd uint64          // last command index applied, or the restored StateIndex
	gen     uint64          // restore generation: bumped by every Restore
	wake    <-chan struct{} // closed at the next change
	// hintIdx and hintTerm: the leader said the entry (hintIdx, hintTerm)
	// is committed (answering a forwarded Apply or ReadIndex). Where this
	// server's log holds that same entry, everything up to it is
	// committed and may be fed before raft's next append applies it.
	// Storing that entry wakes the feeds too (fsm.stored).
	hintIdx, hintTerm uint64
}

// fsm is raft's state machine. It never interprets an entry: Apply only
// records how far the log has been applied and wakes feeds. The state
// itself lives in catalogd, which reads the feed.
type fsm struct {
	log         *slog.Logger
	catalog     *catalogapi.Client
	ctx         context.Context // ends when raftd stops; bounds Persist
	snapTimeout time.Duration
	// persisted is told the header of every snapshot written, by ID.
	persisted func(id string, h snapshotHeader)

	mu       sync.Mutex // guards applied, lastCmd, gen, wake, hintIdx, hintTerm
	applied  uint64
	lastCmd  uint64
	gen      uint64
	wake     chan struct{}
	hintIdx  uint64
	hintTerm uint64
}

var _ raft.BatchingFSM = (*fsm)(nil)

// storeNotifier is raft's log store, telling the FSM which entries each
// write stored (after they are durable and readable).
type storeNotifier struct {
	raft.LogStore
	stored func(first, last uint64)
}

// IsMonotonic passes on the store's answer (raft.MonotonicLogStore).
func (s *storeNotifier) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// StoreLog stores one entry.
func (s *storeNotifier) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries, then reports their range.
func (s *storeNotifier) StoreLogs(logs []*raft.Log) error {
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	if len(logs) > 0 {
		s.stored(logs[0].Index, logs[len(logs)-1].Index)
	}
	return nil
}

func newFSM(ctx context.Context, log *slog.Logger, catalog *catalogapi.Client, snapTimeout time.Duration, persisted func(string, snapshotHeader)) *fsm {
	return &fsm{
		log: log, catalog: catalog, ctx: ctx, snapTimeout: snapTimeout,
		persisted: persisted, wake: make(chan struct{}),
	}
}

// state returns the FSM's progress and a channel closed at its next change.
func (f *fsm) state() fsmState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsmState{applied: f.applied, lastCmd: f.lastCmd, gen: f.gen, wake: f.wake, hintIdx: f.hintIdx, hintTerm: f.hintTerm}
}

// hint records that the leader reported entry (index, term) committed,
// and wakes feeds. A zero term carries no information and is ignored.
func (f *fsm) hint(index, term uint64) {
	if term == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if index <= f.hintIdx || index <= f.applied {
		return
	}
	f.hintIdx, f.hintTerm = index, term
	f.broadcastLocked()
}

// stored is told that log entries first..last reached this server's log.
// It wakes feeds when they hold the pending hint's entry, which a feed
// that found the hinted entry missing is waiting for.
func (f *fsm) stored(first, last uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hintIdx > f.applied && first <= f.hintIdx && f.hintIdx <= last {
		f.broadcastLocked()
	}
}

// broadcastLocked wakes every waiter. f.mu must be held.
func (f *fsm) broadcastLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *fsm) recordLocked(l *raft.Log) {
	if l.Index > f.applied {
		f.applied = l.Index
	}
	if l.Type == raft.LogCommand && l.Index > f.lastCmd {
		f.lastCmd = l.Index
	}
}

// Apply records one committed entry.
func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recordLocked(l)
	f.broadcastLocked()
	return nil
}

// ApplyBatch records a batch of committed entries and wakes feeds once.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range logs {
		f.recordLocked(l)
	}
	f.broadcastLocked()
	return make([]any, len(logs))
}

// Snapshot remembers how far the FSM got; Persist asks catalogd for its
// state at that point.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	st := f.state()
	return &fsmSnapshot{f: f, raftIndex: st.applied, feedIndex: st.lastCmd}, nil
}

// Restore records a snapshot's indexes and bumps the restore generation so
// feeds resend the snapshot. The bytes stay in raft's snapshot store; Feed
// reopens them, so nothing is kept in memory.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	h, err := readSnapshotHeader(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = h.RaftIndex
	f.lastCmd = h.StateIndex
	f.gen++
	f.broadcastLocked()
	f.log.Info("restored snapshot", "state_index", h.StateIndex, "raft_index", h.RaftIndex, "generation", f.gen)
	return nil
}

// fsmSnapshot is one snapshot in the making.
type fsmSnapshot struct {
	f         *fsm
	raftIndex uint64 // the FSM's applied index when taken
	feedIndex uint64 // the last command index: catalogd's state must reach it
}

// Persist asks catalogd for its state at feedIndex or later and writes it
// behind the envelope header. When catalogd cannot answer, the sink is
// cancelled and raft tries again at its next snapshot interval; until
// then the log grows and nothing is lost.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	h, err := s.persist(sink)
	if err != nil {
		sink.Cancel()
		s.f.log.Warn("raft snapshot postponed: cannot get state from catalogd; the raft log grows until catalogd serves its socket and has applied the index",
			"min_index", s.feedIndex, "err", err)
		return fmt.Errorf("persist snapshot at index %d: %w", s.feedIndex, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot at index %d: close: %w", s.feedIndex, err)
	}
	if s.f.persisted != nil {
		s.f.persisted(sink.ID(), h)
	}
	s.f.log.Info("raft snapshot written", "id", sink.ID(), "state_index", h.StateIndex, "raft_index", h.RaftIndex)
	return nil
}

func (s *fsmSnapshot) persist(sink raft.SnapshotSink) (snapshotHeader, error) {
	ctx, cancel := context.WithTimeout(s.f.ctx, s.f.snapTimeout)
	defer cancel()
	st, err := s.f.catalog.Snapshot(ctx, s.feedIndex)
	if err != nil {
		return snapshotHeader{}, err
	}
	defer st.Close()
	first, err := st.Recv()
	if err != nil {
		if err == io.EOF {
			err = errors.New("catalogd ended the snapshot stream without a chunk")
		}
		return snapshotHeader{}, err
	}
	if first.Index < s.feedIndex {
		return snapshotHeader{}, fmt.Errorf("catalogd sent state at index %d, below the requested %d", first.Index, s.feedIndex)
	}
	h := snapshotHeader{Version: snapshotVersion, StateIndex: first.Index, RaftIndex: s.raftIndex}
	if err := writeSnapshotHeader(sink, h); err != nil {
		return h, fmt.Errorf("write header: %w", err)
	}
	if _, err := sink.Write(first.Data); err != nil {
		return h, fmt.Errorf("write state: %w", err)
	}
	for {
		c, err := st.Recv()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if _, err := sink.Write(c.Data); err != nil {
			return h, fmt.Errorf("write state: %w", err)
		}
	}
}

// Release has nothing to free.
func (s *fsmSnapshot) Release() {}
