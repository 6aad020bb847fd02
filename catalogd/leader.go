package catalogd

import (
	"context"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// leaderPoll is how often catalogd asks its raftd whether it leads.
// Leadership moves within an election (hundreds of milliseconds or more);
// a TTL deadline is at least 2 × SessionTTLMin away, so a quarter second
// of lag taking up or giving up the duty is immaterial.
const leaderPoll = 250 * time.Millisecond

// leaderState is raftd's answer for a leader.
const leaderState = "Leader"

// runLeader follows whether the local raftd leads, until ctx ends, and
// takes up or gives up the leader's duties: the session TTL timers. On
// becoming leader (or seeing a new term while leading) every TTL session
// in the store is armed at now + TTL × 2, whatever an earlier leader had
// armed, as Consul's new leader does; on losing leadership, or when raftd
// does not answer, every timer stops. After a snapshot restore while
// leading, sessions the snapshot brought are armed too. catalogd learns
// leadership by polling raftd's Status only: it does not subscribe to the
// bus, whose consort.raft.leader events are hints for others.
func (d *Daemon) runLeader(ctx context.Context) {
	log := d.log.With("component", "leader")
	t := time.NewTicker(leaderPoll)
	defer t.Stop()
	defer d.ttl.stop()
	var (
		leading bool
		term    uint64
	)
	abandon := d.store.AbandonCh()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := d.cfg.Raft.Status(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := err == nil && st.State == leaderState
		switch {
		case now && (!leading || st.Term != term):
			n := d.ttl.start(time.Now(), d.ttlSessions, d.renewStamp)
			log.Info("leading: session ttl timers armed", "term", st.Term, "sessions", n)
		case !now && leading:
			d.ttl.stop()
			if err != nil {
				log.Info("raftd not answering: session ttl timers stopped", "err", err)
			} else {
				log.Info("no longer leading: session ttl timers stopped", "state", st.State)
			}
		}
		leading = now
		if now {
			term = st.Term
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-abandon:
			abandon = d.store.AbandonCh()
			if leading {
				d.ttl.fill(time.Now(), d.ttlSessions, d.renewStamp)
			}
		}
	}
}

// ttlSessions lists every session in the local store, for arming.
func (d *Daemon) ttlSessions() []*structs.Session {
	_, list, err := d.store.SessionList(nil)
	if err != nil {
		d.log.Warn("session ttl: list sessions", "err", err)
		return nil
	}
	return list
}

// renewStamp is the store's renew stamp of a session, 0 if none.
func (d *Daemon) renewStamp(id string) int64 {
	at, _ := d.store.SessionRenewedAt(id)
	return at
}

// Leading reports whether this catalogd runs the leader's duties (its
// raftd leads, as of the last poll).
func (d *Daemon) Leading() bool { return d.ttl.isLeading() }
