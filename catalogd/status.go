package catalogd

import (
	"context"
	"sync"
	"time"

	"github.com/consort-io/consort/pkg/raftapi"
)

// statusEvery is how often the cached raftd status is refreshed; stale
// reads report leader and last-contact from it.
const statusEvery = 500 * time.Millisecond

// statusCache holds raftd's last Status answer. Safe for concurrent use.
type statusCache struct {
	mu sync.Mutex              // guards st and at
	st *raftapi.StatusResponse // nil until the first good answer
	at time.Time               // when st arrived
	ok bool                    // whether the last refresh succeeded
}

func (c *statusCache) put(st *raftapi.StatusResponse, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok = err == nil
	if err == nil {
		c.st, c.at = st, time.Now()
	}
}

// view returns what stale reads report: whether a leader is known and
// the time since this server last heard from it (0 on the leader). While
// raftd does not answer, no leader is known and last contact grows.
func (c *statusCache) view() (known bool, lastContact time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return false, 0
	}
	if c.st.State == "Leader" && c.ok {
		return c.st.KnownLeader, 0
	}
	return c.st.KnownLeader && c.ok, c.st.LastContact + time.Since(c.at)
}

// serverID returns raftd's server ID, or "" before the first answer.
func (c *statusCache) serverID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return ""
	}
	return c.st.ID
}

// runStatus refreshes the status cache until ctx ends.
func (d *Daemon) runStatus(ctx context.Context) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := d.cfg.Raft.Status(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.status.put(st, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
