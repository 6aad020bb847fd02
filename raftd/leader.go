package raftd

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/raftapi"
)

// Leader-watch timing.
const (
	holdPoll        = 50 * time.Millisecond // retry pace while waiting for a leader
	leaderRecheck   = time.Second           // catches observations raft dropped
	barrierTimeout  = 2 * time.Minute       // as Consul's barrierWriteTimeout
	barrierRetryGap = 100 * time.Millisecond
)

// leaderState tracks whether this server leads with its leadership
// established, and wakes waiters on any leadership change.
type leaderState struct {
	mu sync.Mutex // guards readyTerm and wake
	// readyTerm is the term in which this server, as leader, committed a
	// barrier: every entry of earlier terms is then applied to the FSM.
	// 0 when not established.
	readyTerm uint64
	wake      chan struct{}
}

// changed wakes everyone waiting for a leadership change.
func (l *leaderState) changed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.wake)
	l.wake = make(chan struct{})
}

// waitCh returns a channel closed at the next change.
func (l *leaderState) waitCh() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

func (l *leaderState) setReady(term uint64) {
	l.mu.Lock()
	l.readyTerm = term
	l.mu.Unlock()
	l.changed()
}

func (l *leaderState) ready() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyTerm
}

// leaderReady reports whether this server leads and has established its
// leadership in the current term (its barrier committed).
func (d *Daemon) leaderReady() bool {
	if d.raft.State() != raft.Leader {
		return false
	}
	t := d.leader.ready()
	return t != 0 && t == d.raft.CurrentTerm()
}

// watchLeader follows leadership: it publishes leader changes on the bus,
// establishes leadership with a barrier after winning an election (as
// Consul does), and wakes calls waiting for a leader. It returns when ctx
// ends, after the barrier goroutines it started.
func (d *Daemon) watchLeader(ctx context.Context) {
	obsCh := make(chan raft.Observation, 64)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	d.raft.RegisterObserver(obs)
	defer d.raft.DeregisterObserver(obs)

	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(leaderRecheck)
	defer tick.Stop()
	var last struct{ id, addr string }
	published := false
	check := func() {
		addr, id := d.leaderWithID()
		if published && id == last.id && addr == last.addr {
			return
		}
		published = true
		last.id, last.addr = id, addr
		d.publishLeader(last.id, last.addr)
	}
	for {
		select {
		case <-obsCh:
			check()
			d.leader.changed()
		case isLeader := <-d.raft.LeaderCh():
			if isLeader {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.establishLeadership(ctx)
				}()
			} else {
				d.leader.setReady(0)
			}
			d.leader.changed()
		case <-tick.C:
			check()
		case <-ctx.Done():
			return
		}
	}
}

// establishLeadership commits a barrier in the new term so the FSM holds
// every entry of earlier terms, then marks the leadership ready. Until then
// ReadIndex on this server waits as if there were no leader.
func (d *Daemon) establishLeadership(ctx context.Context) {
	for ctx.Err() == nil && d.raft.State() == raft.Leader {
		term := d.raft.CurrentTerm()
		err := d.raft.Barrier(barrierTimeout).Error()
		if err == nil {
			if d.raft.State() == raft.Leader && d.raft.CurrentTerm() == term {
				d.leader.setReady(term)
				d.log.Info("leadership established", "component", "leader", "term", term, "applied", d.fsm.state().applied)
			}
			return
		}
		d.log.Warn("leader barrier failed; retrying", "component", "leader", "term", term, "err", err)
		select {
		case <-time.After(barrierRetryGap):
		case <-ctx.Done():
		}
	}
}

// publishLeader announces the leader this server sees ("" for none).
func (d *Daemon) publishLeader(id, addr string) {
	d.log.Info("leader changed", "component", "leader", "leader_id", id, "leader_addr", addr, "term", d.raft.CurrentTerm())
	if d.c.Bus == nil {
		return
	}
	d.c.Bus.Publish(bus.Subjects{Prefix: d.c.Subjects}.RaftLeader(), bus.RaftLeader{
		Kind:       bus.KindRaftLeader,
		LeaderID:   id,
		LeaderAddr: addr,
		Term:       d.raft.CurrentTerm(),
		Observer:   d.c.ID,
		Index:      d.raft.LastIndex(),
	})
}

// hold runs try until it reports done, the hold timeout passes, ctx ends
// or raftd stops. try returns retry=true when no leader can serve the call
// yet; its error then explains why and is returned when time runs out.
func (d *Daemon) hold(ctx context.Context, try func() (retry bool, err error)) error {
	deadline := time.NewTimer(d.c.HoldTimeout)
	defer deadline.Stop()
	for {
		wake := d.leader.waitCh() // before try, so no change is missed
		retry, err := try()
		if !retry {
			return err
		}
		if err == nil {
			err = raftapi.ErrNoLeader
		}
		pause := time.NewTimer(holdPoll)
		select {
		case <-wake:
		case <-pause.C:
		case <-deadline.C:
			pause.Stop()
			return err
		case <-ctx.Done():
			pause.Stop()
			return d.ctxErr(ctx)
		case <-d.stop:
			pause.Stop()
			return raftapi.ErrShutdown
		}
		pause.Stop()
	}
}

// leaderWithID returns the leader's address and ID, or empty strings.
// A candidate reports none: raft (v1.7.3) can record a leader on a server
// that is a candidate after a leadership transfer (an append from the old
// leader arrives before the new term starts) and keeps it for as long as
// elections fail, which would make a server without quorum forward to a
// leader that is gone instead of answering ErrNoLeader.
func (d *Daemon) leaderWithID() (addr, id string) {
	switch d.raft.State() {
	case raft.Leader, raft.Follower:
		a, i := d.raft.LeaderWithID()
		return string(a), string(i)
	default:
		return "", ""
	}
}
