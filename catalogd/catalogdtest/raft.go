// Package catalogdtest holds in-memory fakes for testing catalogd and its
// clients. Raft is a tiny raftd: it numbers applied commands, delivers
// them through Feed, answers ReadIndex and Status, and can be told there
// is no leader, be cut off, or go down. It serves the real raftapi
// protocol over ipctest's in-memory connections, so catalogd talks to it
// through a real *raftapi.Client.
package catalogdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/ipc/ipctest"
	"github.com/consort-io/consort/pkg/raftapi"
)

// Raft is an in-memory raftd implementing raftapi.Server. Safe for
// concurrent use.
type Raft struct {
	l *ipctest.Listener

	mu        sync.Mutex // guards every field below
	entries   []raftapi.Entry
	last      uint64        // last index handed out
	changed   chan struct{} // closed and replaced when entries or leadership change
	leader    bool
	down      bool
	applyErr  error
	snap      []byte // compacted state, delivered before entries above snapIndex
	snapIndex uint64
	reads     [2]int // ReadIndex calls: [default, consistent]
	feeds     int    // Feed calls
	snapsSent int    // snapshots delivered through Feed
}

// Start returns a running fake raftd with a leader; it stops when the
// test ends.
func Start(tb testing.TB) *Raft {
	r := &Raft{l: ipctest.NewListener(), changed: make(chan struct{}), leader: true}
	mux := ipc.NewMux()
	raftapi.Register(mux, r)
	srv := ipc.NewServer(ipc.ServerConfig{Mux: mux})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, r.l)
	}()
	tb.Cleanup(func() {
		cancel()
		r.l.Cut()
		<-done
	})
	return r
}

// Client returns a raftd client connected to r through the real framing.
func (r *Raft) Client() *raftapi.Client {
	dial := r.l.Dialer()
	return raftapi.NewClient(ipc.NewClient("fake-raftd", func(ctx context.Context) (net.Conn, error) {
		r.mu.Lock()
		down := r.down
		r.mu.Unlock()
		if down {
			return nil, errors.New("connect: connection refused")
		}
		return dial(ctx)
	}))
}

// SetLeader says whether a leader is known. Without one, Apply and
// ReadIndex fail with raftapi.ErrNoLeader; Status and Feed still work.
func (r *Raft) SetLeader(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader = ok
	r.wakeLocked()
}

// SetDown stops (true) or restarts (false) the fake: while down every
// connection is cut and dials fail, as when raftd is not running.
func (r *Raft) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.wakeLocked()
	r.mu.Unlock()
	if down {
		r.l.Cut()
	}
}

// Cut breaks every open connection, as a raftd restart would.
func (r *Raft) Cut() { r.l.Cut() }

// SetApplyErr makes every Apply fail with err (nil restores success).
func (r *Raft) SetApplyErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyErr = err
}

// Skip advances the index by n without a command, as raft's own
// configuration and no-op entries do.
func (r *Raft) Skip(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last += n
}

// Compact drops the entries at or below index and makes Feed start with
// snapshot (a state.Store snapshot at index) for readers behind it.
func (r *Raft) Compact(snapshot []byte, index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap, r.snapIndex = snapshot, index
	keep := r.entries[:0:0]
	for _, e := range r.entries {
		if e.Index > index {
			keep = append(keep, e)
		}
	}
	r.entries = keep
}

// LastIndex returns the last index handed out.
func (r *Raft) LastIndex() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// ReadIndexCalls returns how many ReadIndex calls asked for consistent
// (true) or default (false) reads.
func (r *Raft) ReadIndexCalls(consistent bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if consistent {
		return r.reads[1]
	}
	return r.reads[0]
}

// FeedCalls returns how many feeds were opened.
func (r *Raft) FeedCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.feeds
}

// SnapshotsSent returns how many snapshots Feed delivered.
func (r *Raft) SnapshotsSent() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapsSent
}

func (r *Raft) wakeLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Apply implements raftapi.Server: it commits data at the next index.
func (r *Raft) Apply(ctx context.Context, req *raftapi.ApplyRequest) (*raftapi.ApplyResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.applyErr != nil:
		return nil, r.applyErr
	case !r.leader:
		return nil, raftapi.ErrNoLeader
	case len(req.Data) > raftapi.MaxCommandSize:
		return nil, raftapi.ErrTooLarge
	}
	r.last++
	r.entries = append(r.entries, raftapi.Entry{Index: r.last, Data: req.Data})
	r.wakeLocked()
	return &raftapi.ApplyResponse{Index: r.last}, nil
}

// Feed implements raftapi.Server: a snapshot when the caller is behind the
// compacted log, then entries after req.After as they commit.
func (r *Raft) Feed(ctx context.Context, req *raftapi.FeedRequest, send func(*raftapi.FeedItem) error) error {
	r.mu.Lock()
	r.feeds++
	after := req.After
	snap, snapIndex := r.snap, r.snapIndex
	r.mu.Unlock()
	if snap != nil && after < snapIndex {
		items := []*raftapi.FeedItem{{Kind: raftapi.FeedSnapshotBegin, Index: snapIndex}}
		// Small chunks, to exercise reassembly.
		for len(snap) > 0 {
			n := min(len(snap), 100)
			items = append(items, &raftapi.FeedItem{Kind: raftapi.FeedSnapshotChunk, Data: snap[:n]})
			snap = snap[n:]
		}
		items = append(items, &raftapi.FeedItem{Kind: raftapi.FeedSnapshotEnd, Index: snapIndex})
		for _, it := range items {
			if err := send(it); err != nil {
				return err
			}
		}
		after = snapIndex
		r.mu.Lock()
		r.snapsSent++
		r.mu.Unlock()
	}
	for {
		r.mu.Lock()
		var batch []raftapi.Entry
		for _, e := range r.entries {
			if e.Index > after {
				batch = append(batch, e)
			}
		}
		ch, down := r.changed, r.down
		r.mu.Unlock()
		if down {
			return errors.New("raftd shutting down")
		}
		if len(batch) > 0 {
			if err := send(&raftapi.FeedItem{Kind: raftapi.FeedEntries, Entries: batch}); err != nil {
				return err
			}
			after = batch[len(batch)-1].Index
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

// ReadIndex implements raftapi.Server: the last committed index.
func (r *Raft) ReadIndex(ctx context.Context, req *raftapi.ReadIndexRequest) (*raftapi.ReadIndexResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Consistent {
		r.reads[1]++
	} else {
		r.reads[0]++
	}
	if !r.leader {
		return nil, raftapi.ErrNoLeader
	}
	return &raftapi.ReadIndexResponse{Index: r.last, KnownLeader: true, LastContact: 0}, nil
}

// Addresses the fake reports for itself and its two peers.
const (
	LeaderAddr = "127.0.0.1:8300"
	ServerID   = "fake-raft-1"
)

// Status implements raftapi.Server: a three-server cluster this node leads.
func (r *Raft) Status(ctx context.Context, req *raftapi.StatusRequest) (*raftapi.StatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &raftapi.StatusResponse{
		ID: ServerID, Address: LeaderAddr, State: "Follower",
		CommitIndex: r.last, AppliedIndex: r.last, LastIndex: r.last,
		LastContact: 20 * time.Millisecond,
		Peers: []raftapi.Peer{
			{ID: ServerID, Address: LeaderAddr, Voter: true},
			{ID: "fake-raft-2", Address: "127.0.0.2:8300", Voter: true},
			{ID: "fake-raft-3", Address: "127.0.0.3:8300", Voter: true},
		},
	}
	if r.leader {
		st.State, st.LeaderID, st.LeaderAddr, st.KnownLeader, st.LastContact = "Leader", ServerID, LeaderAddr, true, 0
	}
	return st, nil
}

// String describes r for test failures.
func (r *Raft) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("fake raft: last=%d entries=%d leader=%v down=%v", r.last, len(r.entries), r.leader, r.down)
}
