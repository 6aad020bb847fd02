package raftd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/raftapi"
)

// maxForwarders bounds the cached connections to leaders.
const maxForwarders = 16

// errQueueFull answers a write raft could not even queue in time. It was
// not applied, so it does not carry ErrTimeout's "outcome unknown".
func errQueueFull(wait time.Duration) error {
	return &ipc.Error{Code: ipc.CodeUnavailable, Message: fmt.Sprintf(
		"raft apply queue stayed full for %s (leader overloaded); the write was not applied", wait)}
}

// localAPI serves raftapi on the Unix socket.
type localAPI struct{ d *Daemon }

var _ raftapi.Server = localAPI{}

// Apply appends data to the log, forwarding to the leader from a follower.
func (a localAPI) Apply(ctx context.Context, req *raftapi.ApplyRequest) (*raftapi.ApplyResponse, error) {
	idx, err := a.d.apply(ctx, req.Data)
	if err != nil {
		return nil, err
	}
	return &raftapi.ApplyResponse{Index: idx}, nil
}

// Feed streams the state machine feed.
func (a localAPI) Feed(ctx context.Context, req *raftapi.FeedRequest, send func(*raftapi.FeedItem) error) error {
	return a.d.feed(ctx, req.After, send)
}

// ReadIndex returns a read index from the leader.
func (a localAPI) ReadIndex(ctx context.Context, req *raftapi.ReadIndexRequest) (*raftapi.ReadIndexResponse, error) {
	return a.d.readIndex(ctx, req.Consistent)
}

// Status describes this server's view; it never forwards.
func (a localAPI) Status(ctx context.Context, _ *raftapi.StatusRequest) (*raftapi.StatusResponse, error) {
	return a.d.status(), nil
}

// remoteAPI serves other servers on the raft port: the leader's side of a
// forwarded Apply or ReadIndex, and Status. It never forwards again: a
// server that is not the (established) leader answers ErrNotLeader and the
// calling server retries, so a call cannot bounce between servers.
type remoteAPI struct{ d *Daemon }

// registerRemote adds the methods other servers may call. Feed is left
// out: the log is for the local state machine only.
func registerRemote(m *ipc.Mux, a remoteAPI) {
	ipc.Unary(m, raftapi.MethodApply, a.Apply)
	ipc.Unary(m, raftapi.MethodReadIndex, a.ReadIndex)
	ipc.Unary(m, raftapi.MethodStatus, a.Status)
}

func (a remoteAPI) Apply(ctx context.Context, req *raftapi.ApplyRequest) (*raftapi.ApplyResponse, error) {
	if len(req.Data) > raftapi.MaxCommandSize {
		return nil, tooLarge(len(req.Data))
	}
	if a.d.raft.State() != raft.Leader {
		return nil, raftapi.ErrNotLeader
	}
	idx, notQueued, err := a.d.applyLocal(req.Data)
	if notQueued {
		return nil, raftapi.ErrNotLeader
	}
	if err != nil {
		return nil, err
	}
	return &raftapi.ApplyResponse{Index: idx, Term: a.d.termAt(idx)}, nil
}

func (a remoteAPI) ReadIndex(ctx context.Context, req *raftapi.ReadIndexRequest) (*raftapi.ReadIndexResponse, error) {
	if !a.d.leaderReady() {
		return nil, raftapi.ErrNotLeader
	}
	r, err := a.d.readIndexLocal(req.Consistent)
	if err != nil {
		return nil, raftapi.ErrNotLeader
	}
	r.Term = a.d.termAt(r.Index)
	return r, nil
}

func (a remoteAPI) Status(ctx context.Context, _ *raftapi.StatusRequest) (*raftapi.StatusResponse, error) {
	return a.d.status(), nil
}

func tooLarge(n int) error {
	return fmt.Errorf("%w: %d bytes, limit %d", raftapi.ErrTooLarge, n, raftapi.MaxCommandSize)
}

// apply writes data through the leader. It waits up to HoldTimeout for a
// leader. Errors:
//   - raftapi.ErrTooLarge, raftapi.ErrNoLeader, errQueueFull: not applied;
//   - raftapi.ErrTimeout: handed to raft (or sent to the leader) but not
//     confirmed, because leadership was lost while committing, raftd shut
//     down, or the connection to the leader broke after sending: the
//     outcome is unknown and the call is never silently retried.
func (d *Daemon) apply(ctx context.Context, data []byte) (uint64, error) {
	if len(data) > raftapi.MaxCommandSize {
		return 0, tooLarge(len(data))
	}
	var idx uint64
	err := d.hold(ctx, func() (bool, error) {
		if d.raft.State() == raft.Leader {
			i, notQueued, err := d.applyLocal(data)
			if notQueued {
				return true, fmt.Errorf("%w (leadership changing)", raftapi.ErrNoLeader)
			}
			idx = i
			return false, err
		}
		addr, _ := d.leaderWithID()
		if addr == "" {
			return true, raftapi.ErrNoLeader
		}
		c, err := d.fwd.get(addr)
		if err != nil {
			return false, err
		}
		r, err := c.ApplyFull(ctx, data)
		switch {
		case err == nil:
			idx = r.Index
			d.fsm.hint(r.Index, r.Term)
			return false, nil
		case ctx.Err() != nil:
			// The request may have reached the leader.
			return false, fmt.Errorf("%w (call ended while forwarded to leader %s)", raftapi.ErrTimeout, addr)
		case errors.Is(err, raftapi.ErrNotLeader):
			return true, fmt.Errorf("%w (%s is no longer the leader)", raftapi.ErrNoLeader, addr)
		case notSent(err):
			return true, fmt.Errorf("%w (leader %s unreachable: %v)", raftapi.ErrNoLeader, addr, err)
		case errors.Is(err, ipc.ErrUnavailable):
			return false, fmt.Errorf("%w (forwarding to leader %s: %v)", raftapi.ErrTimeout, addr, err)
		default:
			return false, err
		}
	})
	return idx, err
}

// applyLocal applies data on this server as leader. notQueued reports an
// error that proves the entry never entered the log (this server was not
// the leader, or a leadership transfer was under way), so the write may be
// retried elsewhere.
func (d *Daemon) applyLocal(data []byte) (idx uint64, notQueued bool, err error) {
	f := d.raft.Apply(data, d.c.ApplyTimeout)
	err = f.Error()
	switch {
	case err == nil:
		return f.Index(), false, nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return 0, true, err
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return 0, false, errQueueFull(d.c.ApplyTimeout)
	case errors.Is(err, raft.ErrLeadershipLost):
		return 0, false, fmt.Errorf("%w (leadership lost while committing)", raftapi.ErrTimeout)
	case errors.Is(err, raft.ErrRaftShutdown):
		return 0, false, fmt.Errorf("%w (raftd shut down while committing)", raftapi.ErrTimeout)
	default:
		return 0, false, fmt.Errorf("%w (%v)", raftapi.ErrTimeout, err)
	}
}

// notSent reports whether a forwarded call failed before its request
// left this server: the ipc client could not connect. Only such calls are
// retried; any later failure leaves a write's outcome unknown.
func notSent(err error) bool {
	return ipc.NotSent(err)
}

// readIndex returns an index that covers every write acknowledged before
// the call, from the leader (forwarded from a follower). It waits up to
// HoldTimeout for an established leader.
func (d *Daemon) readIndex(ctx context.Context, consistent bool) (*raftapi.ReadIndexResponse, error) {
	var resp *raftapi.ReadIndexResponse
	err := d.hold(ctx, func() (bool, error) {
		if d.raft.State() == raft.Leader {
			if !d.leaderReady() {
				return true, fmt.Errorf("%w (leadership not yet established)", raftapi.ErrNoLeader)
			}
			r, err := d.readIndexLocal(consistent)
			if err != nil {
				return true, err
			}
			resp = r
			return false, nil
		}
		addr, _ := d.leaderWithID()
		if addr == "" {
			return true, raftapi.ErrNoLeader
		}
		c, err := d.fwd.get(addr)
		if err != nil {
			return false, err
		}
		r, err := c.ReadIndex(ctx, consistent)
		switch {
		case err == nil:
			d.fsm.hint(r.Index, r.Term)
			r.KnownLeader = true
			r.LastContact = d.lastContact()
			resp = r
			return false, nil
		case ctx.Err() != nil:
			return false, d.ctxErr(ctx)
		case errors.Is(err, raftapi.ErrNotLeader), errors.Is(err, ipc.ErrUnavailable):
			// Reads change nothing: any failure may be retried.
			return true, fmt.Errorf("%w (leader %s: %v)", raftapi.ErrNoLeader, addr, err)
		default:
			return false, err
		}
	})
	return resp, err
}

// readIndexLocal answers ReadIndex on an established leader.
//
// The index returned is the FSM's last applied command, not raft's commit
// index. It covers every acknowledged write: a write of an earlier term is
// below the barrier this leader committed (and applied) before becoming
// ready, and a write of this term was acknowledged by this server's Apply
// future, which completes only after the FSM applied it. And unlike the
// commit index, which may point at a noop or configuration entry the feed
// never carries, it is always an index a reader's feed reaches (an entry
// or a snapshot's state index), so a reader waiting for it does not wait
// forever.
func (d *Daemon) readIndexLocal(consistent bool) (*raftapi.ReadIndexResponse, error) {
	if consistent {
		if err := d.raft.VerifyLeader().Error(); err != nil {
			return nil, fmt.Errorf("%w (leadership not confirmed: %v)", raftapi.ErrNoLeader, err)
		}
	}
	if !d.leaderReady() {
		return nil, fmt.Errorf("%w (leadership lost)", raftapi.ErrNoLeader)
	}
	return &raftapi.ReadIndexResponse{Index: d.fsm.state().lastCmd, KnownLeader: true}, nil
}

// termAt returns the term of the log entry at index, or 0 when it is not
// in the log (compacted): a zero term gives followers no commit hint.
func (d *Daemon) termAt(index uint64) uint64 {
	var l raft.Log
	if index == 0 || d.logs.GetLog(index, &l) != nil {
		return 0
	}
	return l.Term
}

// lastContact is the time since this server last heard from a leader; 0
// on the leader or before any contact.
func (d *Daemon) lastContact() time.Duration {
	if d.raft.State() == raft.Leader {
		return 0
	}
	lc := d.raft.LastContact()
	if lc.IsZero() {
		return 0
	}
	return time.Since(lc)
}

// status reports this server's view of the cluster.
func (d *Daemon) status() *raftapi.StatusResponse {
	addr, id := d.leaderWithID()
	s := &raftapi.StatusResponse{
		ID:           d.c.ID,
		Address:      d.addr,
		State:        d.raft.State().String(),
		LeaderID:     id,
		LeaderAddr:   addr,
		KnownLeader:  addr != "",
		Term:         d.raft.CurrentTerm(),
		CommitIndex:  d.raft.CommitIndex(),
		AppliedIndex: d.raft.AppliedIndex(),
		LastIndex:    d.raft.LastIndex(),
		LastContact:  d.lastContact(),
	}
	if fi, err := d.logs.FirstIndex(); err == nil {
		s.FirstIndex = fi
	}
	if list, err := d.snaps.List(); err == nil && len(list) > 0 {
		s.SnapshotIndex = list[0].Index
	}
	if f := d.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Peers = append(s.Peers, raftapi.Peer{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
		}
	}
	return s
}

// forwarders caches one ipc client per leader address.
type forwarders struct {
	mu     sync.Mutex // guards m and closed
	m      map[string]*raftapi.Client
	closed bool
}

// get returns the client for addr, creating it (it dials lazily).
func (f *forwarders) get(addr string) (*raftapi.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, raftapi.ErrShutdown
	}
	if c, ok := f.m[addr]; ok {
		return c, nil
	}
	if len(f.m) >= maxForwarders {
		for a, c := range f.m {
			c.Close()
			delete(f.m, a)
		}
	}
	c := dialRaftd(addr)
	f.m[addr] = c
	return c, nil
}

// closeAll closes every client; later gets fail.
func (f *forwarders) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for a, c := range f.m {
		c.Close()
		delete(f.m, a)
	}
}

// dialRaftd returns a client for another server's raftd on its raft port.
func dialRaftd(addr string) *raftapi.Client {
	return raftapi.NewClient(ipc.NewClient(addr, ipc.TCPDialer(addr, []byte{RPCPreamble})))
}
