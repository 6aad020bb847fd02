package catalogd

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/hashicorp/consul/api"
)

// lockEvents decodes the session and lock events recorded from position
// from on, in order.
func lockEvents(t *testing.T, r *bustest.Recorder, from int) []subjectEvent {
	t.Helper()
	var out []subjectEvent
	for _, e := range r.Events()[from:] {
		var p any
		switch {
		case bus.MatchSubject("consort.lock.*", e.Subject):
			p = new(bus.Lock)
		case e.Subject == "consort.session.invalidated":
			p = new(bus.SessionInvalidated)
		default:
			continue
		}
		if err := e.Decode(p); err != nil {
			t.Fatalf("decode %s: %v", e.Subject, err)
		}
		out = append(out, subjectEvent{e.Subject, reflect.ValueOf(p).Elem().Interface()})
	}
	return out
}

// acquire PUTs ?acquire through the Consul client and returns its answer.
func acquire(t *testing.T, kv *api.KV, key, value, session string) bool {
	t.Helper()
	ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte(value), Session: session}, nil)
	if err != nil {
		t.Fatalf("acquire %s by %s: %v", key, session, err)
	}
	return ok
}

func release(t *testing.T, kv *api.KV, key, session string) bool {
	t.Helper()
	ok, _, err := kv.Release(&api.KVPair{Key: key, Session: session}, nil)
	if err != nil {
		t.Fatalf("release %s by %s: %v", key, session, err)
	}
	return ok
}

func getKey(t *testing.T, kv *api.KV, key string) *api.KVPair {
	t.Helper()
	p, _, err := kv.Get(key, nil)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return p
}

// TestKVLocks: Consul's acquire and release rules through the Consul
// client, with lock-delay after an invalidation, and the lock and
// session events each step publishes.
func TestKVLocks(t *testing.T) {
	n := sessionNode(t)
	kv := n.api.KV()
	rec := &n.bus.all
	s1, _, err := n.api.Session().CreateNoChecks(&api.SessionEntry{LockDelay: time.Millisecond * 1500}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, err := n.api.Session().CreateNoChecks(&api.SessionEntry{LockDelay: time.Millisecond * 1500}, nil)
	if err != nil {
		t.Fatal(err)
	}
	from := rec.Len()

	if !acquire(t, kv, "lead", "a", s1) {
		t.Fatal("fresh acquire refused")
	}
	idxAcquired := n.raft.LastIndex()
	p := getKey(t, kv, "lead")
	if p.Session != s1 || p.LockIndex != 1 || string(p.Value) != "a" {
		t.Fatalf("after acquire: %+v", p)
	}
	if acquire(t, kv, "lead", "b", s2) {
		t.Fatal("acquire of a held key by another session succeeded")
	}
	// The holder re-acquires to update the value: LockIndex stays.
	if !acquire(t, kv, "lead", "a2", s1) {
		t.Fatal("re-acquire by the holder refused")
	}
	if p := getKey(t, kv, "lead"); p.Session != s1 || p.LockIndex != 1 || string(p.Value) != "a2" {
		t.Fatalf("after re-acquire: %+v", p)
	}
	// A plain PUT leaves the holder alone; as in Consul it stores the
	// LockIndex the PUT carries, 0, so a plain PUT on a held key is a
	// fencing hazard Consul users know.
	n.put(t, "other", "x")
	if !acquire(t, kv, "other", "x", s1) {
		t.Fatal("acquire other refused")
	}
	n.put(t, "other", "plain")
	if p := getKey(t, kv, "other"); p.Session != s1 || p.LockIndex != 0 || string(p.Value) != "plain" {
		t.Fatalf("after plain put: %+v", p)
	}
	if !release(t, kv, "other", s1) {
		t.Fatal("release other refused")
	}
	if release(t, kv, "lead", s2) {
		t.Fatal("release by a non-holder succeeded")
	}
	before := getKey(t, kv, "lead").ModifyIndex
	if !release(t, kv, "lead", s1) {
		t.Fatal("release by the holder refused")
	}
	idxReleased := n.raft.LastIndex()
	if p := getKey(t, kv, "lead"); p.Session != "" || p.LockIndex != 1 || p.ModifyIndex <= before {
		t.Fatalf("after release: %+v (modify index before %d)", p, before)
	}
	if !acquire(t, kv, "lead", "b", s2) {
		t.Fatal("acquire of a released key refused")
	}
	idxAcquired2 := n.raft.LastIndex()
	if p := getKey(t, kv, "lead"); p.Session != s2 || p.LockIndex != 2 {
		t.Fatalf("after second acquire: %+v", p)
	}

	// Destroying the holder's session releases the key and starts its
	// lock-delay: the first acquire after it is refused.
	if _, err := n.api.Session().Destroy(s2, nil); err != nil {
		t.Fatal(err)
	}
	idxDestroyed := n.raft.LastIndex()
	if p := getKey(t, kv, "lead"); p.Session != "" || p.LockIndex != 2 {
		t.Fatalf("after destroy: %+v", p)
	}
	if acquire(t, kv, "lead", "c", s1) {
		t.Fatal("acquire within the lock-delay succeeded")
	}
	waitFor(t, "lock-delay to run out", func() bool { return acquire(t, kv, "lead", "c", s1) })
	idxAcquired3 := n.raft.LastIndex()

	want := []subjectEvent{
		{"consort.lock.acquired", bus.Lock{Kind: bus.KindLock, Op: "acquired", Key: "lead", Session: s1, LockIndex: 1, Index: idxAcquired}},
		{"consort.lock.acquired", bus.Lock{Kind: bus.KindLock, Op: "acquired", Key: "other", Session: s1, LockIndex: 1, Index: idxAcquired + 4}},
		{"consort.lock.released", bus.Lock{Kind: bus.KindLock, Op: "released", Key: "other", Session: s1, LockIndex: 0, Index: idxAcquired + 6}},
		{"consort.lock.released", bus.Lock{Kind: bus.KindLock, Op: "released", Key: "lead", Session: s1, LockIndex: 1, Index: idxReleased}},
		{"consort.lock.acquired", bus.Lock{Kind: bus.KindLock, Op: "acquired", Key: "lead", Session: s2, LockIndex: 2, Index: idxAcquired2}},
		{"consort.session.invalidated", bus.SessionInvalidated{Kind: bus.KindSessionInvalidated, Session: s2, Node: "node-1", Reason: "destroyed", Index: idxDestroyed}},
		{"consort.lock.lost", bus.Lock{Kind: bus.KindLock, Op: "lost", Key: "lead", Session: s2, LockIndex: 2, Reason: "destroyed", Index: idxDestroyed}},
		{"consort.lock.acquired", bus.Lock{Kind: bus.KindLock, Op: "acquired", Key: "lead", Session: s1, LockIndex: 3, Index: idxAcquired3}},
	}
	waitFor(t, "lock events", func() bool { return len(lockEvents(t, rec, from)) >= len(want) })
	if got := lockEvents(t, rec, from); !reflect.DeepEqual(got, want) {
		t.Fatalf("lock events:\n got %+v\nwant %+v", got, want)
	}
	// The release by the destroy is a KV change too.
	kvs := 0
	for _, e := range n.bus.kv() {
		if e.Key == "lead" && e.Index == idxDestroyed && e.Op == bus.KVOpSet {
			kvs++
		}
	}
	if kvs != 1 {
		t.Errorf("kv events for lead released by the destroy: %d, want 1: %+v", kvs, n.bus.kv())
	}
}

// TestKVLockDelete: behavior delete removes held keys when the session
// ends (here: its tied check turns critical), announced as lost with
// Deleted; a KV delete of a held key is lost with reason key-deleted.
func TestKVLockDelete(t *testing.T) {
	n := sessionNode(t)
	kv := n.api.KV()
	rec := &n.bus.all
	s, _, err := n.api.Session().Create(&api.SessionEntry{NodeChecks: []string{"c1"}, Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !acquire(t, kv, "a", "1", s) || !acquire(t, kv, "b", "2", s) {
		t.Fatal("acquire refused")
	}
	if _, err := kv.Delete("b", nil); err != nil {
		t.Fatal(err)
	}
	idxDeleted := n.raft.LastIndex()
	from := rec.Len()
	n.register(t, &api.CatalogRegistration{Node: "node-1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "c1", Name: "c1", Status: api.HealthCritical}})
	idx := n.raft.LastIndex()
	if p := getKey(t, kv, "a"); p != nil {
		t.Fatalf("held key survived its session (behavior delete): %+v", p)
	}
	want := []subjectEvent{
		{"consort.session.invalidated", bus.SessionInvalidated{Kind: bus.KindSessionInvalidated, Session: s, Node: "node-1", Reason: state.ReasonCheckCritical, Index: idx}},
		{"consort.lock.lost", bus.Lock{Kind: bus.KindLock, Op: "lost", Key: "a", Session: s, LockIndex: 1, Deleted: true, Reason: state.ReasonCheckCritical, Index: idx}},
	}
	waitFor(t, "lock events", func() bool { return len(lockEvents(t, rec, from)) >= len(want) })
	if got := lockEvents(t, rec, from); !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}
	lost := rec.Expect(t, 5*time.Second, func(e bustest.Event) bool {
		var l bus.Lock
		return e.Subject == "consort.lock.lost" && e.Decode(&l) == nil && l.Key == "b"
	})
	var l bus.Lock
	if err := lost.Decode(&l); err != nil || l != (bus.Lock{Kind: bus.KindLock, Op: "lost", Key: "b", Session: s, LockIndex: 1, Deleted: true, Reason: "key-deleted", Index: idxDeleted}) {
		t.Fatalf("lost by delete = %+v, %v", l, err)
	}
	kvDeleted := 0
	for _, e := range n.bus.kv() {
		if e.Op == bus.KVOpDelete && (e.Key == "a" || e.Key == "b") {
			kvDeleted++
		}
	}
	if kvDeleted != 2 {
		t.Errorf("kv delete events for a and b: %d, want 2 (one each): %+v", kvDeleted, n.bus.kv())
	}
}

// TestSessionReasonsMatchBus: the state's invalidation reasons are the
// ones pkg/bus documents, since catalogd passes them through.
func TestSessionReasonsMatchBus(t *testing.T) {
	for st, b := range map[string]string{
		state.ReasonDestroyed:     bus.SessionReasonDestroyed,
		state.ReasonTTL:           bus.SessionReasonTTL,
		state.ReasonCheckCritical: bus.SessionReasonCheckCritical,
		state.ReasonCheckDeleted:  bus.SessionReasonCheckDeleted,
		state.ReasonNodeDeleted:   bus.SessionReasonNodeDeleted,
		state.ReasonKeyDeleted:    bus.LockReasonKeyDeleted,
	} {
		if st != b {
			t.Errorf("state reason %q, bus says %q", st, b)
		}
	}
}

// TestConsulLockHelper: the Consul client's Lock helper against catalogd:
// one holder at a time, the waiter takes over on Unlock, and a holder
// whose session is destroyed sees its lost channel close.
func TestConsulLockHelper(t *testing.T) {
	n := sessionNode(t)
	newLock := func() *api.Lock {
		l, err := n.api.LockOpts(&api.LockOptions{Key: "service/leader", LockWaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := newLock(), newLock()
	lostA, err := a.Lock(nil)
	if err != nil || lostA == nil {
		t.Fatalf("a.Lock: %v", err)
	}
	type res struct {
		lost <-chan struct{}
		err  error
	}
	got := make(chan res, 1)
	stopB := make(chan struct{})
	defer close(stopB)
	go func() {
		lost, err := b.Lock(stopB)
		got <- res{lost, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("b.Lock returned while a holds the lock: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.Unlock(); err != nil {
		t.Fatalf("a.Unlock: %v", err)
	}
	var lostB <-chan struct{}
	select {
	case r := <-got:
		if r.err != nil || r.lost == nil {
			t.Fatalf("b.Lock = %+v", r)
		}
		lostB = r.lost
	case <-time.After(10 * time.Second):
		t.Fatal("b did not take the lock after a's Unlock")
	}
	p := getKey(t, n.api.KV(), "service/leader")
	if p == nil || p.Session == "" || p.LockIndex != 2 {
		t.Fatalf("lock key after hand-over: %+v", p)
	}
	if _, err := n.api.Session().Destroy(p.Session, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lostB:
	case <-time.After(10 * time.Second):
		t.Fatal("b's lost channel did not close after its session was destroyed")
	}
}

// TestConsulSemaphoreHelper: the Consul client's Semaphore with limit 2:
// two holders, the third waits until one releases.
func TestConsulSemaphoreHelper(t *testing.T) {
	n := sessionNode(t)
	newSem := func() *api.Semaphore {
		s, err := n.api.SemaphoreOpts(&api.SemaphoreOptions{Prefix: "sem/", Limit: 2, SemaphoreWaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := newSem(), newSem(), newSem()
	for name, s := range map[string]*api.Semaphore{"a": a, "b": b} {
		if lost, err := s.Acquire(nil); err != nil || lost == nil {
			t.Fatalf("%s.Acquire: %v", name, err)
		}
	}
	got := make(chan error, 1)
	stopC := make(chan struct{})
	defer close(stopC)
	go func() {
		lost, err := c.Acquire(stopC)
		if err == nil && lost == nil {
			err = errors.New("acquire returned without the semaphore")
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("third holder got in past the limit: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.Release(); err != nil {
		t.Fatalf("a.Release: %v", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("c.Acquire: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("c did not get in after a released")
	}
	for _, s := range []*api.Semaphore{b, c} {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
}
