package state

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// sessionSeeds are session, lock and transaction commands for the fuzz
// corpora, against sessionFixture's state.
func sessionSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	add := func(t MessageType, req any) {
		b, err := Encode(t, req)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, r := range []SessionRequest{
		{Op: SessionCreate, Session: structs.Session{ID: "s9", Node: "n1", NodeChecks: []string{"serfHealth"}, LockDelay: 15e9}, Now: 10},
		{Op: SessionCreate, Session: structs.Session{ID: "s9", Node: "n1", ServiceChecks: []structs.ServiceCheck{{ID: "web-1-check"}}, Behavior: "delete"}},
		{Op: SessionCreate, Session: structs.Session{ID: "s9", Node: "n2", NodeChecks: []string{"web-2-check"}}},
		{Op: SessionDestroy, Session: structs.Session{ID: "s1"}, Now: 20, Reason: ReasonTTL},
		{Op: SessionDestroy, Session: structs.Session{ID: "s2"}},
		{Op: SessionRenew, Session: structs.Session{ID: "s1"}, Now: 30},
		{Op: "bogus"},
	} {
		add(SessionType, &r)
	}
	for _, r := range []KVSRequest{
		{Op: KVLock, Entry: structs.KVEntry{Key: "foo", Session: "s2"}, Now: 5},
		{Op: KVLock, Entry: structs.KVEntry{Key: "new", Session: "s1", Value: []byte("v")}},
		{Op: KVUnlock, Entry: structs.KVEntry{Key: "foo", Session: "s1"}},
		{Op: KVUnlock, Entry: structs.KVEntry{Key: "foo"}},
	} {
		add(KVSType, &r)
	}
	add(RegisterType, &structs.RegisterRequest{Node: "n1", SkipNodeUpdate: true, Now: 40,
		Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthCritical}})
	for _, r := range txnSeeds() {
		add(TxnType, &r)
	}
	return seeds
}

// txnSeeds are transactions over sessionFixture's state: committed,
// rolled back and refused ones.
func txnSeeds() []TxnRequest {
	kv := func(verb KVOp, key, value, session string, index uint64) TxnOp {
		return TxnOp{KV: &TxnKVOp{Verb: verb, Entry: structs.KVEntry{Key: key, Value: []byte(value), Session: session, ModifyIndex: index}}}
	}
	return []TxnRequest{
		{Ops: []TxnOp{kv(KVSet, "t/a", "1", "", 0), kv(KVCAS, "t/b", "2", "", 0), kv(KVGet, "foo", "", "", 0),
			kv(KVGetTree, "foo", "", "", 0), kv(KVCheckSession, "foo", "", "s1", 0), kv(KVLock, "t/l", "x", "s2", 0)}, Now: 50},
		{Ops: []TxnOp{kv(KVSet, "t/a", "1", "", 0), kv(KVCheckIndex, "foo", "", "", 999), kv(KVDeleteTree, "", "", "", 0)}},
		{Ops: []TxnOp{kv(KVGetOrEmpty, "none", "", "", 0), kv(KVCheckNotExists, "none", "", "", 0), kv(KVDeleteCAS, "foo", "", "", 1)}},
		{Ops: []TxnOp{kv(KVUnlock, "foo", "", "s1", 0), kv(KVDelete, "foo/bar", "", "", 0), kv("nope", "k", "", "", 0), {}}},
		{Ops: []TxnOp{
			{Node: &TxnNodeOp{Verb: TxnSet, Node: structs.Node{Node: "n3", Address: "10.0.0.3"}}},
			{Service: &TxnServiceOp{Verb: TxnSet, Node: "n3", Service: structs.NodeService{Service: "db", Port: 5432}}},
			{Check: &TxnCheckOp{Verb: TxnSet, Check: structs.HealthCheck{Node: "n3", Name: "db-up", ServiceID: "db", Status: structs.HealthPassing}}},
			{Check: &TxnCheckOp{Verb: TxnCAS, Check: structs.HealthCheck{Node: "n1", CheckID: structs.SerfCheckID, Status: structs.HealthCritical, ModifyIndex: 6}}},
			{Node: &TxnNodeOp{Verb: TxnGet, Node: structs.Node{Node: "n1"}}},
		}, Now: 60},
		{Ops: []TxnOp{
			{Service: &TxnServiceOp{Verb: TxnDeleteCAS, Node: "n1", Service: structs.NodeService{ID: "web-1", Service: "web", ModifyIndex: 4}}},
			{Node: &TxnNodeOp{Verb: TxnDelete, Node: structs.Node{Node: "n2"}}},
			{Check: &TxnCheckOp{Verb: "bogus"}},
		}},
	}
}

// sessionFixture adds sessions and held keys to a store prepared by
// FuzzApply: s1 (release, tied to n1's serfHealth) holds "foo", s2
// (delete, no checks) holds "foo/bar", and "gone" carries a lock-delay.
func sessionFixture(t testing.TB, s *Store) {
	t.Helper()
	for _, r := range []SessionRequest{
		{Op: SessionCreate, Session: structs.Session{ID: "s1", Node: "n1", NodeChecks: []string{structs.SerfCheckID}, LockDelay: 15e9}, Now: 1},
		{Op: SessionCreate, Session: structs.Session{ID: "s2", Node: "n1", Behavior: structs.SessionBehaviorDelete, LockDelay: 1e9}, Now: 1},
		{Op: SessionCreate, Session: structs.Session{ID: "s3", Node: "n1", LockDelay: 1e9}, Now: 1},
	} {
		sessionOK(t, s, &r)
	}
	for _, r := range []KVSRequest{
		{Op: KVLock, Entry: structs.KVEntry{Key: "foo", Session: "s1"}},
		{Op: KVLock, Entry: structs.KVEntry{Key: "foo/bar", Session: "s2"}},
		{Op: KVLock, Entry: structs.KVEntry{Key: "gone", Session: "s3"}},
	} {
		if ok, _ := applyCmd(t, s, KVSType, &r).(bool); !ok {
			t.Fatalf("lock %q refused", r.Entry.Key)
		}
	}
	sessionOK(t, s, &SessionRequest{Op: SessionDestroy, Session: structs.Session{ID: "s3"}, Now: 2})
}

// applyCmd applies a command at the next index and returns its result.
func applyCmd(t testing.TB, s *Store, typ MessageType, req any) any {
	t.Helper()
	data, err := Encode(typ, req)
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(s.LastIndex()+1, data)
}

// sessionOK applies a session command and fails the test unless it
// succeeds; it returns the result.
func sessionOK(t testing.TB, s *Store, req *SessionRequest) *SessionResult {
	t.Helper()
	res, ok := applyCmd(t, s, SessionType, req).(*SessionResult)
	if !ok || res == nil || res.Err != nil {
		t.Fatalf("session %s %q: %+v", req.Op, req.Session.ID, res)
	}
	return res
}

// isLockCommand reports whether data is a KV lock or unlock, whose errors
// are Consul's words rather than ErrInvalidCommand.
func isLockCommand(data []byte) bool {
	typ, req, err := DecodeCommand(data)
	if err != nil || typ != KVSType {
		return false
	}
	op := req.(*KVSRequest).Op
	return op == KVLock || op == KVUnlock
}

// checkSessionInvariants checks the session tables: every session has its
// node, a renew time and one mapping per tied check, each check existing
// and not critical; every mapping belongs to a session; every held key's
// session exists and the locks table lists exactly the held keys.
func checkSessionInvariants(t testing.TB, s *Store) {
	t.Helper()
	db, _ := s.view()
	tx := db.Txn(false)
	defer tx.Abort()
	sessions := map[string]*structs.Session{}
	for _, sess := range all[*structs.Session](t, tx, tableSessions) {
		sessions[sess.ID] = sess
		if n, _ := getNodeTxn(tx, sess.Node); n == nil {
			t.Fatalf("session %q on missing node %q", sess.ID, sess.Node)
		}
		if raw, _ := tx.First(tableSessionRenew, indexID, sess.ID); raw == nil {
			t.Fatalf("session %q has no renew time", sess.ID)
		}
		for _, id := range sessionCheckIDs(sess) {
			hc, _ := getCheckTxn(tx, sess.Node, id)
			if hc == nil || hc.Status == structs.HealthCritical {
				t.Fatalf("session %q tied to check %q: %v", sess.ID, id, hc)
			}
			if raw, _ := tx.First(tableSessionChecks, indexID, sess.Node, id, sess.ID); raw == nil {
				t.Fatalf("session %q lacks its mapping for check %q", sess.ID, id)
			}
		}
	}
	for _, m := range all[*sessionCheck](t, tx, tableSessionChecks) {
		if sessions[m.Session] == nil {
			t.Fatalf("mapping %+v of a missing session", m)
		}
	}
	for _, r := range all[*sessionRenew](t, tx, tableSessionRenew) {
		if sessions[r.ID] == nil {
			t.Fatalf("renew time of missing session %q", r.ID)
		}
	}
	held := 0
	for _, e := range all[*structs.KVEntry](t, tx, tableKVs) {
		if e.Session == "" {
			continue
		}
		held++
		if sessions[e.Session] == nil {
			t.Fatalf("key %q held by missing session %q", e.Key, e.Session)
		}
		raw, _ := tx.First(tableKVLocks, indexID, e.Key)
		if l, _ := raw.(*kvLock); l == nil || l.Session != e.Session {
			t.Fatalf("key %q held by %q has lock row %+v", e.Key, e.Session, raw)
		}
	}
	if rows := all[*kvLock](t, tx, tableKVLocks); len(rows) != held {
		t.Fatalf("%d lock rows for %d held keys", len(rows), held)
	}
}

// FuzzTxnDecode decodes arbitrary bytes as the body of a TxnType command
// and applies it: never a panic; a decoded request encodes stably; the
// result is a *TxnResult that either committed or changed nothing; two
// replicas agree; the read path agrees with Apply on read-only requests.
func FuzzTxnDecode(f *testing.F) {
	for _, r := range txnSeeds() {
		b, err := Encode(TxnType, &r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[1:])
	}
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa3, 'o', 'p', 's', 0xdc, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa3, 'o', 'p', 's', 0x91, 0x81, 0xa2, 'k', 'v', 0xc0})
	// Every run starts from clones of one prepared store (memdb snapshots
	// are copy-on-write), so a run costs little more than its command.
	base := New()
	set(f, base, "foo", "1")
	set(f, base, "foo/bar", "2")
	registerOK(f, base, webOn("n1", "web-1", structs.HealthPassing))
	registerOK(f, base, &structs.RegisterRequest{Node: "n1", Address: "10.0.0.1",
		Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthPassing}})
	registerOK(f, base, webOn("n2", "web-2", structs.HealthPassing))
	sessionFixture(f, base)
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append([]byte{byte(TxnType)}, body...)
		typ, req, err := DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("error not ErrInvalidCommand: %v", err)
			}
		} else {
			txn, ok := req.(*TxnRequest)
			if typ != TxnType || !ok {
				t.Fatalf("decoded type %d as %T", typ, req)
			}
			once, err := Encode(TxnType, txn)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			_, req2, err := DecodeCommand(once)
			if err != nil {
				t.Fatalf("decode re-encoded: %v", err)
			}
			if twice, err := Encode(TxnType, req2); err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("round trip not stable (%v)", err)
			}
		}

		a, b := cloneStore(base), cloneStore(base)
		var read *TxnResult
		if req, ok := req.(*TxnRequest); ok && err == nil && req.ReadOnly() {
			read = a.TxnRead(req)
		}
		before := a.Dump()
		idx := a.LastIndex() + 1
		ra, rb := a.Apply(idx, data), b.Apply(idx, data)
		r, ok := ra.(*TxnResult)
		if !ok || r == nil {
			t.Fatalf("result %T %v", ra, ra)
		}
		if !reflect.DeepEqual(ra, rb) || a.Dump() != b.Dump() {
			t.Fatalf("replicas differ: %+v vs %+v", ra, rb)
		}
		if r.Err != nil || len(r.Errors) > 0 {
			if len(r.Results) > 0 || len(r.Changes) > 0 {
				t.Fatalf("refused txn reports results: %+v", r)
			}
			if after := a.Dump(); stripLastIndex(after) != stripLastIndex(before) {
				t.Fatalf("refused txn changed the state:\n%s\nvs\n%s", after, before)
			}
		}
		if read != nil {
			// A read-only transaction answers the same through either path.
			if !reflect.DeepEqual(read.Results, r.Results) || !reflect.DeepEqual(read.Errors, r.Errors) {
				t.Fatalf("TxnRead %+v, Apply %+v", read, r)
			}
		}
		checkCatalogInvariants(t, a)
		checkSessionInvariants(t, a)
	})
}

// cloneStore returns an independent store holding s's state: a memdb
// snapshot, which later writes to either side do not affect.
func cloneStore(s *Store) *Store {
	db, last := s.view()
	c := &Store{names: newNameWatches()}
	c.cur.Store(&generation{db: db, abandon: make(chan struct{})})
	c.last.Store(last)
	return c
}

// stripLastIndex drops Dump's first line.
func stripLastIndex(dump string) string {
	if i := bytes.IndexByte([]byte(dump), '\n'); i >= 0 {
		return dump[i+1:]
	}
	return dump
}
