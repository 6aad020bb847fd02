package gossipd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/consort-io/consort/pkg/gossipapi"
	"github.com/consort-io/consort/pkg/ipc"
)

// ErrSlowReader ends a WatchMembers stream whose reader fell more than
// Config.WatchBuffer changes behind; the reader reopens the stream.
var ErrSlowReader = ipc.NewError("slow_reader", "member watch fell behind; reopen it")

// userEventSizeLimit is serf's default limit on a user event's name plus
// payload, which Consul keeps.
const userEventSizeLimit = 512

// api serves gossipapi for a Daemon.
type api struct{ d *Daemon }

var _ gossipapi.Server = api{}

// Members answers one pool's members.
func (a api) Members(_ context.Context, req *gossipapi.MembersRequest) (*gossipapi.MembersResponse, error) {
	p, err := a.d.pool(req.Pool)
	if err != nil {
		return nil, err
	}
	return &gossipapi.MembersResponse{Self: p.self, Members: p.members()}, nil
}

// Join joins a pool through the given addresses. It blocks while serf
// tries each address.
func (a api) Join(_ context.Context, req *gossipapi.JoinRequest) (*gossipapi.JoinResponse, error) {
	name := gossipapi.PoolLAN
	if req.WAN {
		name = gossipapi.PoolWAN
	}
	p, err := a.d.pool(name)
	if err != nil {
		return nil, err
	}
	if len(req.Addrs) == 0 {
		return nil, fmt.Errorf("join: no addresses: %w", gossipapi.ErrBadRequest)
	}
	n, err := p.serf.Join(joinAddrs(req.Addrs, p.defaultPort), true)
	a.d.log.Info("join", "pool", name, "addrs", req.Addrs, "joined", n, "err", err)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("join %s pool: %w", name, err)
	}
	return &gossipapi.JoinResponse{Joined: n}, nil
}

// Leave leaves every pool gracefully.
func (a api) Leave(context.Context, *gossipapi.LeaveRequest) (*gossipapi.LeaveResponse, error) {
	if err := a.d.leave(); err != nil {
		return nil, err
	}
	return &gossipapi.LeaveResponse{}, nil
}

// ForceLeave moves a failed member to left (and with Prune forgets it).
func (a api) ForceLeave(_ context.Context, req *gossipapi.ForceLeaveRequest) (*gossipapi.ForceLeaveResponse, error) {
	name := gossipapi.PoolLAN
	if req.WAN {
		name = gossipapi.PoolWAN
	}
	p, err := a.d.pool(name)
	if err != nil {
		return nil, err
	}
	if req.Node == "" {
		return nil, fmt.Errorf("force leave: node name is required: %w", gossipapi.ErrBadRequest)
	}
	found := false
	for _, m := range p.serf.Members() {
		if m.Name == req.Node {
			found = true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("force leave %q: %w", req.Node, gossipapi.ErrNoNode)
	}
	if req.Prune {
		err = p.serf.RemoveFailedNodePrune(req.Node)
	} else {
		err = p.serf.RemoveFailedNode(req.Node)
	}
	if err != nil {
		return nil, fmt.Errorf("force leave %q: %w", req.Node, err)
	}
	a.d.log.Info("force leave", "pool", name, "node", req.Node, "prune", req.Prune)
	return &gossipapi.ForceLeaveResponse{}, nil
}

// UserEvent fires a user event to the LAN pool.
func (a api) UserEvent(_ context.Context, req *gossipapi.UserEventRequest) (*gossipapi.UserEventResponse, error) {
	p, err := a.d.pool(gossipapi.PoolLAN)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, fmt.Errorf("user event: name is required: %w", gossipapi.ErrBadRequest)
	}
	wire := userEventPrefix + req.Name
	if size := len(wire) + len(req.Payload); size > userEventSizeLimit {
		return nil, fmt.Errorf("user event %q: %d bytes with its name, limit %d: %w",
			req.Name, size, userEventSizeLimit, gossipapi.ErrEventTooLarge)
	}
	if err := p.serf.UserEvent(wire, req.Payload, req.Coalesce); err != nil {
		return nil, fmt.Errorf("user event %q: %w", req.Name, err)
	}
	return &gossipapi.UserEventResponse{}, nil
}

// WatchMembers streams a pool's members: all of them, then each change.
// It returns when ctx ends (nil), the pool shuts down (nil when gossipd
// stops; ErrLeft after Leave) or the reader falls behind (ErrSlowReader).
func (a api) WatchMembers(ctx context.Context, req *gossipapi.WatchRequest, send func(*gossipapi.WatchItem) error) error {
	p, err := a.d.pool(req.Pool)
	if err != nil {
		return err
	}
	// Register before listing: a change racing the list is sent again
	// after it, which a reader applying items in order absorbs.
	w := a.d.watch.add(p.name)
	defer a.d.watch.remove(w)
	if err := send(&gossipapi.WatchItem{Full: true, Self: p.self, Members: p.members()}); err != nil {
		return err
	}
	for {
		select {
		case it := <-w.ch:
			if err := send(&it); err != nil {
				return err
			}
		case <-w.overflow:
			return ErrSlowReader
		case <-p.serf.ShutdownCh():
			if _, err := a.d.pool(p.name); errors.Is(err, gossipapi.ErrLeft) {
				return gossipapi.ErrLeft
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// watcher is one WatchMembers stream's queue.
type watcher struct {
	pool     string
	ch       chan gossipapi.WatchItem
	overflow chan struct{} // closed when the queue overflowed
}

// watchers fans member changes out to WatchMembers streams without ever
// blocking the serf event loop.
type watchers struct {
	buf int
	mu  sync.Mutex // guards set
	set map[*watcher]struct{}
}

func (ws *watchers) add(pool string) *watcher {
	w := &watcher{pool: pool, ch: make(chan gossipapi.WatchItem, ws.buf), overflow: make(chan struct{})}
	ws.mu.Lock()
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
	return w
}

func (ws *watchers) remove(w *watcher) {
	ws.mu.Lock()
	delete(ws.set, w)
	ws.mu.Unlock()
}

// send queues it for every watcher of pool; a watcher whose queue is full
// is dropped and told so through its overflow channel.
func (ws *watchers) send(pool string, it gossipapi.WatchItem) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		if w.pool != pool {
			continue
		}
		select {
		case w.ch <- it:
		default:
			delete(ws.set, w)
			close(w.overflow)
		}
	}
}
