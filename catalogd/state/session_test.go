package state

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// lockSetup registers n1 with a passing serfHealth and creates session id
// on it with the given lock-delay and behavior.
func lockSetup(t *testing.T, s *Store, id string, delay int64, behavior string) {
	t.Helper()
	if s.LastIndex() == 0 {
		registerOK(t, s, &structs.RegisterRequest{Node: "n1", Address: "10.0.0.1",
			Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthPassing}})
	}
	sessionOK(t, s, &SessionRequest{Op: SessionCreate, Now: 1e9,
		Session: structs.Session{ID: id, Node: "n1", NodeChecks: []string{structs.SerfCheckID}, LockDelay: delay, Behavior: behavior}})
}

func lockKey(t *testing.T, s *Store, op KVOp, key, session string, now int64) any {
	t.Helper()
	return applyCmd(t, s, KVSType, &KVSRequest{Op: op, Entry: structs.KVEntry{Key: key, Session: session}, Now: now})
}

func TestSessionInfoBlocksUntilDestroyNotRenew(t *testing.T) {
	s := New()
	lockSetup(t, s, "s1", 0, "")
	lockSetup(t, s, "s2", 0, "")

	ws := memdb.NewWatchSet()
	idx, sess, err := s.SessionGet(ws, "s1")
	if err != nil || sess == nil || idx != 3 {
		t.Fatalf("SessionGet = %d, %v, %v", idx, sess, err)
	}
	listWS := memdb.NewWatchSet()
	if _, _, err := s.SessionList(listWS); err != nil {
		t.Fatal(err)
	}
	nodeWS := memdb.NewWatchSet()
	if _, _, err := s.NodeSessions(nodeWS, "n1"); err != nil {
		t.Fatal(err)
	}
	// A renew is not a write a reader sees.
	sessionOK(t, s, &SessionRequest{Op: SessionRenew, Session: structs.Session{ID: "s1"}, Now: 2e9})
	if fired(ws) || fired(listWS) || fired(nodeWS) {
		t.Fatal("renew woke a session reader")
	}
	if at, ok := s.SessionRenewedAt("s1"); !ok || at != 2e9 {
		t.Fatalf("SessionRenewedAt = %d, %v", at, ok)
	}
	if idx2, _, _ := s.SessionGet(nil, "s1"); idx2 != idx {
		t.Fatalf("renew moved the sessions index: %d -> %d", idx, idx2)
	}
	// Neither does a change to another session wake the info reader.
	sessionOK(t, s, &SessionRequest{Op: SessionDestroy, Session: structs.Session{ID: "s2"}})
	if fired(ws) {
		t.Fatal("destroying s2 woke a reader of s1")
	}
	if !fired(listWS) || !fired(nodeWS) {
		t.Fatal("destroy did not wake list readers")
	}
	sessionOK(t, s, &SessionRequest{Op: SessionDestroy, Session: structs.Session{ID: "s1"}})
	if !fired(ws) {
		t.Fatal("destroy did not wake the info reader")
	}
	idx, sess, _ = s.SessionGet(nil, "s1")
	if sess != nil || idx != s.LastIndex() {
		t.Fatalf("after destroy: %d, %v", idx, sess)
	}
}

func TestInvalidationWakesHeldKeyReaders(t *testing.T) {
	s := New()
	lockSetup(t, s, "s1", 0, "")
	if ok, _ := lockKey(t, s, KVLock, "held", "s1", 0).(bool); !ok {
		t.Fatal("lock refused")
	}
	ws := memdb.NewWatchSet()
	if _, e, _ := s.KVGet(ws, "held"); e == nil || e.Session != "s1" {
		t.Fatalf("held key %v", e)
	}
	changes := registerOK(t, s, &structs.RegisterRequest{Node: "n1", SkipNodeUpdate: true,
		Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthCritical}})
	if !fired(ws) {
		t.Fatal("release by invalidation did not wake the key's reader")
	}
	want := []Change{
		{Kind: ChangeCheck, Op: OpUpdate, Node: "n1", CheckID: structs.SerfCheckID, OldStatus: structs.HealthPassing, NewStatus: structs.HealthCritical},
		{Kind: ChangeSession, Op: OpInvalidate, Node: "n1", Session: "s1", Reason: ReasonCheckCritical},
		{Kind: ChangeLock, Op: OpReleased, Node: "n1", Key: "held", Session: "s1", LockIndex: 1, Reason: ReasonCheckCritical},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes\n%+v\nwant\n%+v", changes, want)
	}
}

func TestLockChangesOnlyForLatestIndex(t *testing.T) {
	s := New()
	lockSetup(t, s, "s1", 0, "")
	lockKey(t, s, KVLock, "k", "s1", 0)
	idx := s.LastIndex()
	if got := s.LockChanges(idx); len(got) != 1 || got[0].Op != OpAcquired || got[0].LockIndex != 1 {
		t.Fatalf("LockChanges(%d) = %+v", idx, got)
	}
	if got := s.LockChanges(idx - 1); got != nil {
		t.Fatalf("LockChanges of an older index = %+v", got)
	}
	set(t, s, "other", "x")
	if got := s.LockChanges(idx); got != nil {
		t.Fatalf("LockChanges after a later apply = %+v", got)
	}
	if got := s.LockChanges(s.LastIndex()); got != nil {
		t.Fatalf("LockChanges of a plain set = %+v", got)
	}
	lockKey(t, s, KVUnlock, "k", "s1", 0)
	if got := s.LockChanges(s.LastIndex()); len(got) != 1 || got[0].Op != OpReleased || got[0].LockIndex != 1 {
		t.Fatalf("LockChanges of unlock = %+v", got)
	}
}

func TestLockDelayUsesWriterClockWhenUnstamped(t *testing.T) {
	s := New()
	lockSetup(t, s, "s1", 10e9, "")
	lockKey(t, s, KVLock, "k", "s1", 0)
	// Destroy without Now: the delay starts at the highest Now seen (1e9
	// from the create), not at the epoch.
	sessionOK(t, s, &SessionRequest{Op: SessionDestroy, Session: structs.Session{ID: "s1"}})
	if until := s.KVLockDelay("k", 0); until != 11e9 {
		t.Fatalf("KVLockDelay = %d, want %d", until, int64(11e9))
	}
	lockSetup(t, s, "s2", 0, "")
	if ok, _ := lockKey(t, s, KVLock, "k", "s2", 10e9).(bool); ok {
		t.Fatal("acquire during lock-delay succeeded")
	}
	if ok, _ := lockKey(t, s, KVLock, "k", "s2", 11e9).(bool); !ok {
		t.Fatal("acquire after lock-delay refused")
	}
	if until := s.KVLockDelay("k", 0); until != 0 {
		t.Fatalf("expired lock-delay still stored: %d", until)
	}
}

func TestTxnTooManyOps(t *testing.T) {
	s := New()
	ops := make([]TxnOp, MaxTxnOps+1)
	for i := range ops {
		ops[i] = TxnOp{KV: &TxnKVOp{Verb: KVSet, Entry: structs.KVEntry{Key: "k"}}}
	}
	res := applyCmd(t, s, TxnType, &TxnRequest{Ops: ops}).(*TxnResult)
	if len(res.Errors) != 1 || res.Errors[0].What != "Transaction contains too many operations (129 > 128)" {
		t.Fatalf("result %+v", res)
	}
	if r := s.TxnRead(&TxnRequest{Ops: ops}); len(r.Errors) != 1 {
		t.Fatalf("TxnRead %+v", r)
	}
	ops = ops[:MaxTxnOps]
	res = applyCmd(t, s, TxnType, &TxnRequest{Ops: ops}).(*TxnResult)
	if len(res.Errors) != 0 || len(res.Results) != MaxTxnOps {
		t.Fatalf("128 ops: %d results, errors %+v", len(res.Results), res.Errors)
	}
}

func TestTxnReadLeavesRequestAlone(t *testing.T) {
	s := New()
	req := &TxnRequest{Ops: []TxnOp{{Check: &TxnCheckOp{Verb: TxnGet, Check: structs.HealthCheck{Node: "n", Name: "x"}}},
		{Service: &TxnServiceOp{Verb: TxnGet, Node: "n", Service: structs.NodeService{Service: "web"}}}}}
	before := req.Ops[0].clone()
	s.TxnRead(req)
	if !reflect.DeepEqual(*req.Ops[0].Check, *before.Check) {
		t.Fatal("TxnRead modified the request")
	}
}

// randomSessionCommands mixes catalog commands over n1..n3 with session
// creates, destroys and renews, locks and unlocks, plain KV writes and
// transactions, with times that move mostly forward.
func randomSessionCommands(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	cat := randomCatalogCommands(t, seed, n)
	ids := []string{"s1", "s2", "s3", "s4"}
	keys := []string{"k", "k/a", "k/b", "x"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	now := int64(1e9)
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		now += int64(rng.IntN(3)) * 1e9
		if rng.IntN(10) == 0 {
			now -= 2e9 // a new leader with a slower clock
		}
		var (
			typ MessageType
			req any
		)
		switch rng.IntN(9) {
		case 0, 1:
			out = append(out, cat[i])
			continue
		case 2:
			sess := structs.Session{ID: pick(ids), Node: pick([]string{"n1", "n2", "N1"}),
				LockDelay: int64(rng.IntN(3)) * 2e9, Behavior: pick([]string{"", "release", "delete"})}
			if rng.IntN(2) == 0 {
				sess.NodeChecks = []string{pick([]string{"serfHealth", "c1", "c2"})}
			}
			typ, req = SessionType, &SessionRequest{Op: SessionCreate, Session: sess, Now: now}
		case 3:
			op := pick([]string{string(SessionDestroy), string(SessionRenew)})
			typ, req = SessionType, &SessionRequest{Op: SessionOp(op), Session: structs.Session{ID: pick(ids)}, Now: now * int64(rng.IntN(2))}
		case 4, 5:
			op := KVLock
			if rng.IntN(3) == 0 {
				op = KVUnlock
			}
			typ, req = KVSType, &KVSRequest{Op: op, Entry: structs.KVEntry{Key: pick(keys), Session: pick(ids), Value: []byte{byte(i)}}, Now: now}
		case 6:
			op := pick([]string{string(KVSet), string(KVDelete), string(KVDeleteTree)})
			typ, req = KVSType, &KVSRequest{Op: KVOp(op), Entry: structs.KVEntry{Key: pick(keys), Value: []byte{byte(i)}}}
		default:
			var ops []TxnOp
			for j := rng.IntN(4); j >= 0; j-- {
				verb := KVOp(pick([]string{"set", "lock", "unlock", "get", "check-session", "delete-tree", "check-index"}))
				ops = append(ops, TxnOp{KV: &TxnKVOp{Verb: verb, Entry: structs.KVEntry{Key: pick(keys), Session: pick(ids), ModifyIndex: uint64(rng.IntN(5))}}})
			}
			if rng.IntN(3) == 0 {
				ops = append(ops, TxnOp{Check: &TxnCheckOp{Verb: TxnSet, Check: structs.HealthCheck{Node: pick([]string{"n1", "n2"}),
					CheckID: pick([]string{"serfHealth", "c1"}), Status: pick([]string{"passing", "critical"})}}})
			}
			typ, req = TxnType, &TxnRequest{Ops: ops, Now: now}
		}
		data, err := Encode(typ, req)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

func TestDeterministicSessionReplicas(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		cmds := randomSessionCommands(t, seed, 2000)
		a, b := New(), New()
		var invalidated, acquired, committed int
		for i, c := range cmds {
			idx := uint64(i + 1)
			ra, rb := a.Apply(idx, c), b.Apply(idx, c)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d index %d: results differ: %v vs %v", seed, idx, ra, rb)
			}
			var changes []Change
			switch r := ra.(type) {
			case *CatalogResult:
				changes = r.Changes
			case *SessionResult:
				changes = r.Changes
			case *TxnResult:
				changes = r.Changes
				if len(r.Errors) == 0 {
					committed++
				}
			case bool:
				changes = a.LockChanges(idx)
			}
			for _, ch := range changes {
				switch {
				case ch.Kind == ChangeSession && ch.Op == OpInvalidate:
					invalidated++
				case ch.Kind == ChangeLock && ch.Op == OpAcquired:
					acquired++
				}
			}
			if i%250 == 0 {
				checkCatalogInvariants(t, a)
				checkSessionInvariants(t, a)
			}
		}
		if invalidated == 0 || acquired == 0 || committed == 0 {
			t.Fatalf("seed %d: workload too tame: %d invalidated, %d acquired, %d txns", seed, invalidated, acquired, committed)
		}
		if da, db := a.Dump(), b.Dump(); da != db {
			t.Fatalf("seed %d: dumps differ:\n%s\nvs\n%s", seed, da, db)
		}
		checkCatalogInvariants(t, a)
		checkSessionInvariants(t, a)
		checkSnapshotRoundTrip(t, a)
	}
}
