package catalogd

import (
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/hashicorp/consul/api"
)

// shortTTL lowers the session TTL minimum so expiry shows within a test.
func shortTTL(c *Config) { c.SessionTTLMin = 50 * time.Millisecond }

// sessionGone reports whether the session no longer exists.
func sessionGone(t *testing.T, n *node, id string) bool {
	t.Helper()
	e, _, err := n.api.Session().Info(id, nil)
	if err != nil {
		t.Fatalf("info %s: %v", id, err)
	}
	return e == nil
}

// TestSessionTTLExpiry: the leader's catalogd destroys a TTL session not
// renewed within TTL × 2, through raft, with reason ttl, releasing its
// lock ("lost"); never before TTL × 2 from its create.
func TestSessionTTLExpiry(t *testing.T) {
	n := sessionNode(t, shortTTL)
	waitFor(t, "leadership", n.d.Leading)
	rec := &n.bus.all
	const ttl = 200 * time.Millisecond
	start := time.Now()
	id, _, err := n.api.Session().CreateNoChecks(&api.SessionEntry{TTL: ttl.String(), LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !acquire(t, n.api.KV(), "held", "v", id) {
		t.Fatal("acquire refused")
	}
	ev := rec.Expect(t, 10*time.Second, func(e bustest.Event) bool {
		return e.Subject == "consort.session.invalidated"
	})
	took := time.Since(start)
	var inv bus.SessionInvalidated
	if err := ev.Decode(&inv); err != nil || inv.Session != id || inv.Reason != bus.SessionReasonTTL || inv.Node != "node-1" || inv.Index == 0 {
		t.Fatalf("invalidated = %+v, %v", inv, err)
	}
	if took < ttl*sessionTTLMultiplier {
		t.Fatalf("session expired after %s, before TTL × 2 = %s", took, ttl*sessionTTLMultiplier)
	}
	if !sessionGone(t, n, id) {
		t.Fatal("expired session still listed")
	}
	lost := rec.Expect(t, 5*time.Second, bustest.Subject("consort.lock.lost"))
	var l bus.Lock
	if err := lost.Decode(&l); err != nil || l.Key != "held" || l.Session != id || l.LockIndex != 1 || l.Reason != "ttl" || l.Index != inv.Index {
		t.Fatalf("lost = %+v, %v", l, err)
	}
	if p := getKey(t, n.api.KV(), "held"); p == nil || p.Session != "" {
		t.Fatalf("held key after expiry: %+v", p)
	}
	if got := n.d.ttl.len(); got != 0 {
		t.Fatalf("%d timers armed after expiry", got)
	}
}

// TestSessionTTLRenew: renews (each a raft command) keep a TTL session
// alive well past TTL × 2; once they stop it expires. A session without
// TTL never expires.
func TestSessionTTLRenew(t *testing.T) {
	n := sessionNode(t, shortTTL)
	waitFor(t, "leadership", n.d.Leading)
	s := n.api.Session()
	const ttl = 300 * time.Millisecond
	id, _, err := s.CreateNoChecks(&api.SessionEntry{TTL: ttl.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forever, _, err := s.CreateNoChecks(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	until := time.Now().Add(ttl * 6)
	for time.Now().Before(until) {
		<-tick.C
		e, _, err := s.Renew(id, nil)
		if err != nil || e == nil {
			t.Fatalf("renew: %+v, %v (session expired while renewed)", e, err)
		}
	}
	waitFor(t, "expiry after renewing stopped", func() bool { return sessionGone(t, n, id) })
	if sessionGone(t, n, forever) {
		t.Fatal("session without TTL expired")
	}
}

// TestSessionTTLLeadership: timers run only while the local raftd leads;
// a new leader arms every TTL session from its state at now + TTL × 2.
func TestSessionTTLLeadership(t *testing.T) {
	n := sessionNode(t, shortTTL)
	waitFor(t, "leadership", n.d.Leading)
	const ttl = 100 * time.Millisecond
	id, _, err := n.api.Session().CreateNoChecks(&api.SessionEntry{TTL: ttl.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.raft.SetLeader(false)
	waitFor(t, "leadership lost", func() bool { return !n.d.Leading() })
	if got := n.d.ttl.len(); got != 0 {
		t.Fatalf("%d timers armed while not leading", got)
	}
	regained := time.Now()
	n.raft.SetLeader(true)
	waitFor(t, "leadership regained", n.d.Leading)
	n.bus.all.Expect(t, 10*time.Second, func(e bustest.Event) bool {
		var inv bus.SessionInvalidated
		return e.Subject == "consort.session.invalidated" && e.Decode(&inv) == nil && inv.Session == id
	})
	if took := time.Since(regained); took < ttl*sessionTTLMultiplier {
		t.Fatalf("expired %s after leadership, before TTL × 2", took)
	}
}
