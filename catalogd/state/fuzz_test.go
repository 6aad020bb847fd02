package state

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// seedCommands are well-formed and malformed commands for the fuzz corpora.
func seedCommands(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, r := range []KVSRequest{
		{Op: KVSet, Entry: structs.KVEntry{Key: "foo", Value: []byte("bar"), Flags: 3}},
		{Op: KVCAS, Entry: structs.KVEntry{Key: "foo", Value: []byte("baz"), ModifyIndex: 1}},
		{Op: KVCAS, Entry: structs.KVEntry{Key: "new"}},
		{Op: KVDelete, Entry: structs.KVEntry{Key: "foo"}},
		{Op: KVDeleteCAS, Entry: structs.KVEntry{Key: "foo", ModifyIndex: 2}},
		{Op: KVDeleteTree, Entry: structs.KVEntry{Key: "f"}},
		{Op: KVDeleteTree},
		{Op: "lock", Entry: structs.KVEntry{Key: "foo", Session: "s"}},
	} {
		b, err := Encode(KVSType, &r)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, r := range []structs.RegisterRequest{
		{Node: "n1", Address: "10.0.0.1"},
		{Node: "n1", Address: "10.0.0.1", NodeMeta: map[string]string{"env": "prod"},
			Service: &structs.NodeService{ID: "web-1", Service: "web", Tags: []string{"a"}, Port: 80},
			Checks:  []*structs.HealthCheck{{CheckID: "web-1-http", ServiceID: "web-1", Status: structs.HealthPassing}}},
		{Node: "n2", SkipNodeUpdate: true, Check: &structs.HealthCheck{Name: "serfHealth", Status: structs.HealthCritical,
			Definition: structs.CheckType{HTTP: "http://x", Header: map[string][]string{"A": {"b"}}}}},
		{Node: "n1", ID: "11111111-2222-3333-4444-555555555555", Address: "10.0.0.9"},
		{Node: "n1", Address: "10.0.0.1", Check: &structs.HealthCheck{CheckID: "c", ServiceID: "missing"}},
	} {
		b, err := Encode(RegisterType, &r)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, r := range []structs.DeregisterRequest{
		{Node: "n1"}, {Node: "n1", ServiceID: "web-1"}, {Node: "n1", CheckID: "web-1-http"}, {},
	} {
		b, err := Encode(DeregisterType, &r)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds, sessionSeeds(f)...)
	return append(seeds,
		nil,
		[]byte{byte(KVSType)},
		[]byte{byte(KVSType), 0xc1},
		[]byte{byte(KVSType), 0xdf, 0xff, 0xff, 0xff, 0xff},
		[]byte{byte(KVSType), 0xc6, 0xff, 0xff, 0xff, 0xff},
		[]byte{byte(RegisterType), 0x80},
		[]byte{byte(DeregisterType), 0xc1},
		[]byte{9, 0x80},
		[]byte{0x81, 0x80},
	)
}

// FuzzApply applies arbitrary bytes as a command to a store holding some
// keys and catalog entries: Apply never panics, always advances LastIndex,
// answers a bool, nil, an error or a *CatalogResult for the catalog types,
// the catalog stays consistent, and two replicas stay identical.
func FuzzApply(f *testing.F) {
	for _, s := range seedCommands(f) {
		f.Add(s)
	}
	// Every run starts from clones of one prepared store (memdb snapshots
	// are copy-on-write), so a run costs little more than its command.
	base := New()
	set(f, base, "foo", "1")
	set(f, base, "foo/bar", "2")
	applyOK(f, base, KVDelete, structs.KVEntry{Key: "gone"})
	registerOK(f, base, webOn("n1", "web-1", structs.HealthPassing))
	registerOK(f, base, webOn("n2", "web-2", structs.HealthCritical))
	registerOK(f, base, &structs.RegisterRequest{Node: "n1", Address: "10.0.0.1",
		Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthPassing}})
	deregisterOK(f, base, &structs.DeregisterRequest{Node: "n2", ServiceID: "web-2"})
	sessionFixture(f, base)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := cloneStore(base), cloneStore(base)
		idx := a.LastIndex() + 1
		ra := a.Apply(idx, data)
		rb := b.Apply(idx, data)
		if a.LastIndex() != idx {
			t.Fatalf("LastIndex %d after applying at %d", a.LastIndex(), idx)
		}
		typ := MessageType(0)
		if len(data) > 0 {
			typ = MessageType(data[0])
		}
		switch r := ra.(type) {
		case bool, nil:
		case error:
			if !errors.Is(r, ErrInvalidCommand) && !isLockCommand(data) {
				t.Fatalf("error result not ErrInvalidCommand: %v", r)
			}
		case *SessionResult:
			if r == nil || typ != SessionType {
				t.Fatalf("session result %v for type %d", r, typ)
			}
			if r.Err != nil && len(r.Changes) > 0 {
				t.Fatalf("refused command reports changes: %+v", r)
			}
		case *TxnResult:
			if r == nil || typ != TxnType {
				t.Fatalf("txn result %v for type %d", r, typ)
			}
			if (r.Err != nil || len(r.Errors) > 0) && (len(r.Changes) > 0 || len(r.Results) > 0) {
				t.Fatalf("refused txn reports results or changes: %+v", r)
			}
		case *CatalogResult:
			if r == nil || (typ != RegisterType && typ != DeregisterType) {
				t.Fatalf("catalog result %v for type %d", r, typ)
			}
			if r.Err != nil && len(r.Changes) > 0 {
				t.Fatalf("refused command reports changes: %+v", r)
			}
		default:
			t.Fatalf("result of type %T: %v", ra, ra)
		}
		if !reflect.DeepEqual(ra, rb) || a.Dump() != b.Dump() {
			t.Fatalf("replicas differ: %v vs %v", ra, rb)
		}
		checkCatalogInvariants(t, a)
		checkSessionInvariants(t, a)
		checkSnapshotRoundTrip(t, a)
	})
}

// FuzzDecodeCommand decodes arbitrary bytes as a command: never a panic,
// and a decoded KV request encodes and decodes back to itself.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range seedCommands(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, req, err := DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("error not ErrInvalidCommand: %v", err)
			}
			return
		}
		switch typ {
		case RegisterType, DeregisterType, SessionType, TxnType:
			// Encoding what was decoded is stable: a second round trip
			// gives the same bytes (msgpack drops empty omitempty fields, so
			// the first may not).
			once, err := Encode(typ, req)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			_, req2, err := DecodeCommand(once)
			if err != nil {
				t.Fatalf("decode re-encoded: %v", err)
			}
			twice, err := Encode(typ, req2)
			if err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("round trip not stable: %x vs %x (%v)", once, twice, err)
			}
			return
		}
		kv, ok := req.(*KVSRequest)
		if typ != KVSType || !ok {
			t.Fatalf("decoded type %d as %T", typ, req)
		}
		again, err := Encode(typ, kv)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		_, req2, err := DecodeCommand(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if !kvRequestEqual(kv, req2.(*KVSRequest)) {
			t.Fatalf("round trip changed the request: %+v vs %+v", kv, req2)
		}
	})
}

func kvRequestEqual(a, b *KVSRequest) bool {
	x, y := a.Entry, b.Entry
	return a.Op == b.Op && kvEqual(&x, &y) &&
		x.CreateIndex == y.CreateIndex && x.ModifyIndex == y.ModifyIndex
}

// FuzzRestore feeds arbitrary bytes to Restore: never a panic, and a
// refused image leaves the state as it was.
func FuzzRestore(f *testing.F) {
	src := New()
	for i, c := range randomCommands(f, 11, 40) {
		src.Apply(uint64(i+1), c)
	}
	var img bytes.Buffer
	if _, err := src.Snapshot(&img); err != nil {
		f.Fatal(err)
	}
	f.Add(img.Bytes())
	cat := New()
	for i, c := range randomCatalogCommands(f, 12, 60) {
		cat.Apply(uint64(i+1), c)
	}
	img.Reset()
	if _, err := cat.Snapshot(&img); err != nil {
		f.Fatal(err)
	}
	f.Add(img.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Add([]byte(snapshotMagic + "\x01\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New()
		set(t, s, "keep", "me")
		before := s.Dump()
		if _, err := s.Restore(bytes.NewReader(data)); err != nil {
			if s.Dump() != before {
				t.Fatal("failed restore changed the state")
			}
			return
		}
		checkSnapshotRoundTrip(t, s)
	})
}
