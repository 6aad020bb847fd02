package testcluster

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/nats-io/nats.go"

	"github.com/consort-io/consort/pkg/bus"
)

// Issue 5, points 3 and 4: sessions end when a check they are tied to
// turns critical, with push events on NATS; TTL sessions are kept alive by
// renewals across a leader failover, and expire without them.

// sessionTTL is Consul's minimum session TTL.
const sessionTTL = 10 * time.Second

// TestSessionTTLFailoverE2E: two TTL sessions through a follower, one
// renewed every 2 s and one not; the leader is killed. The renewed one
// survives the failover; the unrenewed one expires within 2 × TTL after
// the new leader took over (a new leader arms timers for every session it
// finds), and not before its TTL ran out.
func TestSessionTTLFailoverE2E(t *testing.T) {
	t.Parallel()
	c := New(t, Options{Servers: 3})
	leader := c.WaitLeader(t)
	var follower *Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	follower.WaitReady(t)
	follower.WaitRegistered(t)
	client := follower.APIClient(t)
	sessions := client.Session()
	create := func(name string) string {
		t.Helper()
		id, _, err := sessions.CreateNoChecks(&api.SessionEntry{Name: name, TTL: sessionTTL.String()}, nil)
		if err != nil {
			t.Fatalf("create session %s: %v", name, err)
		}
		return id
	}
	renewed := create("renewed")
	unrenewed := create("unrenewed")
	created := time.Now()

	// Renew every 2 s, riding out the failover's errors.
	var mu sync.Mutex // guards renewErr, gone
	var renewErr error
	var renewFails int
	gone := false
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			e, _, err := sessions.Renew(renewed, nil)
			mu.Lock()
			switch {
			case err != nil:
				renewErr = err
				renewFails++
			case e == nil:
				gone = true
			}
			mu.Unlock()
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	renewedAlive := func() error {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return fmt.Errorf("the renewed session %s was gone at a renewal (404)", renewed)
		}
		return nil
	}

	if err := leader.KillAll(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	newLeader := c.WaitLeader(t)
	failover := time.Now()
	t.Logf("leader %s killed; %s leads after %v", leader.Name, newLeader.Name, failover.Sub(killed).Round(time.Millisecond))

	// The unrenewed session expires within 2 × TTL after the failover.
	var expired time.Time
	waitFor(t, 2*sessionTTL+failover.Sub(created)+5*time.Second, "the unrenewed session expires", func() error {
		if err := renewedAlive(); err != nil {
			t.Fatal(err)
		}
		e, _, err := sessions.Info(unrenewed, nil)
		if err != nil {
			return err
		}
		if e != nil {
			return fmt.Errorf("session %s still there", unrenewed)
		}
		expired = time.Now()
		return nil
	})
	after := expired.Sub(failover)
	t.Logf("the unrenewed session expired %v after its creation, %v after the failover",
		expired.Sub(created).Round(time.Millisecond), after.Round(time.Millisecond))
	if expired.Sub(created) < sessionTTL {
		t.Errorf("the unrenewed session expired %v after its creation, before its TTL of %v", expired.Sub(created), sessionTTL)
	}
	if after > 2*sessionTTL+2*time.Second {
		t.Errorf("the unrenewed session expired %v after the failover; want within 2 × TTL = %v", after, 2*sessionTTL)
	}

	// The renewed one is alive past the point where, without renewals, it
	// would surely have expired.
	until := failover.Add(2*sessionTTL + 3*time.Second)
	waitFor(t, time.Until(until)+30*time.Second, "past 2 × TTL after the failover with renewals", func() error {
		if err := renewedAlive(); err != nil {
			t.Fatal(err)
		}
		e, _, err := sessions.Info(renewed, nil)
		if err != nil {
			return err
		}
		if e == nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the renewed session %s expired (renewal errors: %d, last %v)", renewed, renewFails, renewErr)
		}
		if time.Now().Before(until) {
			return fmt.Errorf("alive, waiting until %s", until.Format("15:04:05.000"))
		}
		return nil
	})
	mu.Lock()
	t.Logf("renewals failed %d times during the failover (last: %v)", renewFails, renewErr)
	mu.Unlock()
	if _, err := sessions.Destroy(renewed, nil); err != nil {
		t.Errorf("destroy the renewed session: %v", err)
	}
}

// busEvents collects lock and session events from NATS.
type busEvents struct {
	ch  chan *nats.Msg
	got []*nats.Msg
}

// subscribeSessionEvents subscribes to consort.session.invalidated and
// consort.lock.* before anything happens.
func subscribeSessionEvents(t *testing.T, c *Cluster) *busEvents {
	t.Helper()
	nc, err := bus.Connect(c.NATSURL(), "session-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ev := &busEvents{ch: make(chan *nats.Msg, 256)}
	subj := bus.Subjects{}
	for _, s := range []string{subj.SessionInvalidated(), subj.Lock(bus.LockOpAcquired), subj.Lock(bus.LockOpReleased), subj.Lock(bus.LockOpLost)} {
		if _, err := nc.ChanSubscribe(s, ev.ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ev
}

// lockEvent waits for a lock event matching op, key and session.
func (b *busEvents) lockEvent(t *testing.T, op, key, session string) bus.Lock {
	t.Helper()
	var out bus.Lock
	b.await(t, fmt.Sprintf("lock %s of %s by %s", op, key, session), func(m *nats.Msg) bool {
		var l bus.Lock
		if json.Unmarshal(m.Data, &l) != nil || m.Subject != (bus.Subjects{}).Lock(op) {
			return false
		}
		if l.Op == op && l.Key == key && l.Session == session {
			out = l
			return true
		}
		return false
	})
	return out
}

// invalidated waits for the invalidation event of session.
func (b *busEvents) invalidated(t *testing.T, session string) bus.SessionInvalidated {
	t.Helper()
	var out bus.SessionInvalidated
	b.await(t, "invalidation of "+session, func(m *nats.Msg) bool {
		var s bus.SessionInvalidated
		if m.Subject != (bus.Subjects{}).SessionInvalidated() || json.Unmarshal(m.Data, &s) != nil {
			return false
		}
		if s.Session == session {
			out = s
			return true
		}
		return false
	})
	return out
}

// await returns once a message received so far or within 20 s matches.
func (b *busEvents) await(t *testing.T, what string, match func(*nats.Msg) bool) {
	t.Helper()
	for _, m := range b.got {
		if match(m) {
			return
		}
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-b.ch:
			b.got = append(b.got, m)
			if match(m) {
				return
			}
		case <-deadline:
			var seen []string
			for _, m := range b.got {
				seen = append(seen, m.Subject+" "+string(m.Data))
			}
			t.Fatalf("no %s on NATS within 20s; received: %q", what, seen)
		}
	}
}

// TestSessionCheckCriticalE2E: two sessions tied to a TTL check, one with
// behavior release and one with delete, each holding a key. Failing the
// check invalidates both: the first key is released (LockIndex kept), the
// second deleted, and NATS carries the invalidations and the lost locks
// with the holders' LockIndex, all from one raft index.
func TestSessionCheckCriticalE2E(t *testing.T) {
	t.Parallel()
	c := New(t, Options{})
	n := c.WaitLeader(t)
	n.WaitRegistered(t)
	client := n.APIClient(t)
	kv := client.KV()
	events := subscribeSessionEvents(t, c)

	const checkID = "session-guard"
	if err := client.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: checkID, Name: "session guard", AgentServiceCheck: api.AgentServiceCheck{TTL: "5m"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := client.Agent().PassTTL(checkID, "ok"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the check passing in the catalog", func() error {
		checks, _, err := client.Health().Node(n.Name, nil)
		if err != nil {
			return err
		}
		for _, ch := range checks {
			if ch.CheckID == checkID && ch.Status == api.HealthPassing {
				return nil
			}
		}
		return fmt.Errorf("checks of %s: %+v", n.Name, checks)
	})

	create := func(name, behavior string) string {
		t.Helper()
		id, _, err := client.Session().Create(&api.SessionEntry{
			Name: name, Behavior: behavior, NodeChecks: []string{checkID}, LockDelay: time.Second,
		}, nil)
		if err != nil {
			t.Fatalf("create session %s: %v", name, err)
		}
		return id
	}
	rel := create("rel", api.SessionBehaviorRelease)
	del := create("del", api.SessionBehaviorDelete)
	acquire := func(key, session string) {
		t.Helper()
		ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte(session), Session: session}, nil)
		if err != nil || !ok {
			t.Fatalf("acquire %s with %s = %v, %v", key, session, ok, err)
		}
	}
	const relKey, delKey = "e2e/session/rel", "e2e/session/del"
	acquire(relKey, rel)
	if ok, _, err := kv.Release(&api.KVPair{Key: relKey, Session: rel}, nil); err != nil || !ok {
		t.Fatalf("release %s = %v, %v", relKey, ok, err)
	}
	acquire(relKey, rel) // a fresh acquisition: LockIndex 2
	acquire(relKey, rel) // the holder again: still 2
	acquire(delKey, del)
	if ev := events.lockEvent(t, bus.LockOpReleased, relKey, rel); ev.LockIndex != 1 {
		t.Errorf("released event %+v; want LockIndex 1", ev)
	}
	if ev := events.lockEvent(t, bus.LockOpAcquired, delKey, del); ev.LockIndex != 1 {
		t.Errorf("acquired event %+v; want LockIndex 1", ev)
	}
	p, _, err := kv.Get(relKey, nil)
	if err != nil || p == nil || p.LockIndex != 2 || p.Session != rel {
		t.Fatalf("%s = %+v, %v; want held by %s with LockIndex 2", relKey, p, err, rel)
	}

	if err := client.Agent().FailTTL(checkID, "down"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{rel, del} {
		waitFor(t, 20*time.Second, "session "+id+" invalidated", func() error {
			e, _, err := client.Session().Info(id, nil)
			if err != nil {
				return err
			}
			if e != nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
	}
	if p, _, err := kv.Get(relKey, nil); err != nil || p == nil || p.Session != "" || p.LockIndex != 2 || string(p.Value) != rel {
		t.Errorf("%s = %+v, %v; want released, value and LockIndex 2 kept", relKey, p, err)
	}
	if p, _, err := kv.Get(delKey, nil); err != nil || p != nil {
		t.Errorf("%s = %+v, %v; want deleted (behavior delete)", delKey, p, err)
	}

	invRel := events.invalidated(t, rel)
	invDel := events.invalidated(t, del)
	for _, inv := range []bus.SessionInvalidated{invRel, invDel} {
		if inv.Reason != bus.SessionReasonCheckCritical || inv.Node != n.Name || inv.Index == 0 || inv.Kind != bus.KindSessionInvalidated {
			t.Errorf("invalidation event %+v; want reason %s on %s with an index", inv, bus.SessionReasonCheckCritical, n.Name)
		}
	}
	if invRel.Index != invDel.Index {
		t.Errorf("invalidations at indexes %d and %d; one check update should end both", invRel.Index, invDel.Index)
	}
	lostRel := events.lockEvent(t, bus.LockOpLost, relKey, rel)
	if lostRel.LockIndex != 2 || lostRel.Deleted || lostRel.Index != invRel.Index {
		t.Errorf("lost event %+v; want LockIndex 2, released, index %d", lostRel, invRel.Index)
	}
	lostDel := events.lockEvent(t, bus.LockOpLost, delKey, del)
	if lostDel.LockIndex != 1 || !lostDel.Deleted || lostDel.Index != invDel.Index {
		t.Errorf("lost event %+v; want LockIndex 1, deleted, index %d", lostDel, invDel.Index)
	}
}
