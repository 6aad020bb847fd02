package state

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// fired reports whether any channel of ws is closed now. memdb closes the
// channels a commit affects before Commit returns, so after Apply returns
// the answer is final: no waiting needed either way.
func fired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

// applyOK applies a KV operation at the next index and fails the test on
// an error result; it returns the bool result.
func applyOK(t testing.TB, s *Store, op KVOp, e structs.KVEntry) bool {
	t.Helper()
	data, err := Encode(KVSType, &KVSRequest{Op: op, Entry: e})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Apply(s.LastIndex()+1, data)
	b, ok := res.(bool)
	if !ok {
		t.Fatalf("%s %q: result %v", op, e.Key, res)
	}
	return b
}

func set(t testing.TB, s *Store, key, value string) {
	t.Helper()
	applyOK(t, s, KVSet, structs.KVEntry{Key: key, Value: []byte(value)})
}

func TestKVGetWatchFiresOnlyForItsKey(t *testing.T) {
	s := New()
	set(t, s, "foo", "1")
	set(t, s, "foo/bar", "x")
	set(t, s, "fo", "y")

	ws := memdb.NewWatchSet()
	idx, e, err := s.KVGet(ws, "foo")
	if err != nil || e == nil || idx != 1 {
		t.Fatalf("KVGet = %d, %v, %v", idx, e, err)
	}

	// Writes and deletes of other keys, including its neighbours in the
	// tree, a no-op set of the key and a failed CAS on it do not fire.
	set(t, s, "foo/bar", "changed")
	set(t, s, "fo", "changed")
	set(t, s, "foo2", "new")
	applyOK(t, s, KVDelete, structs.KVEntry{Key: "foo/bar"})
	set(t, s, "foo", "1")
	if applyOK(t, s, KVCAS, structs.KVEntry{Key: "foo", Value: []byte("2"), ModifyIndex: 99}) {
		t.Fatal("cas with a wrong index succeeded")
	}
	if fired(ws) {
		t.Fatal("watch on foo fired for writes to other keys")
	}

	set(t, s, "foo", "2")
	if !fired(ws) {
		t.Fatal("watch on foo did not fire when foo changed")
	}

	ws = memdb.NewWatchSet()
	s.KVGet(ws, "foo")
	applyOK(t, s, KVDeleteTree, structs.KVEntry{Key: "fo"})
	if !fired(ws) {
		t.Fatal("watch on foo did not fire when a tree delete removed it")
	}
}

func TestKVGetWatchMissingKeyFiresOnCreate(t *testing.T) {
	s := New()
	set(t, s, "a", "1")
	ws := memdb.NewWatchSet()
	idx, e, err := s.KVGet(ws, "nope")
	if err != nil || e != nil || idx != 1 {
		t.Fatalf("KVGet = %d, %v, %v", idx, e, err)
	}
	set(t, s, "nope", "here")
	if !fired(ws) {
		t.Fatal("watch on a missing key did not fire when it was created")
	}
}

func TestKVListWatch(t *testing.T) {
	s := New()
	set(t, s, "foo/a", "1")
	set(t, s, "foo/b", "2")
	set(t, s, "bar", "3")

	for _, read := range []struct {
		name string
		read func(ws memdb.WatchSet)
	}{
		{"list", func(ws memdb.WatchSet) { s.KVList(ws, "foo/") }},
		{"keys", func(ws memdb.WatchSet) { s.KVKeys(ws, "foo/", "/") }},
	} {
		t.Run(read.name, func(t *testing.T) {
			ws := memdb.NewWatchSet()
			read.read(ws)
			set(t, s, "bar", read.name)
			set(t, s, "other/key", read.name)
			if fired(ws) {
				t.Fatal("prefix watch fired for a write outside the prefix")
			}
			applyOK(t, s, KVDelete, structs.KVEntry{Key: "foo/a"})
			if !fired(ws) {
				t.Fatal("prefix watch did not fire on a delete under the prefix")
			}
			set(t, s, "foo/a", "back")
		})
	}
}

func TestBlockingReadWakes(t *testing.T) {
	s := New()
	set(t, s, "k", "1")
	ws := memdb.NewWatchSet()
	idx, _, _ := s.KVGet(ws, "k")

	woke := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		woke <- ws.WatchCtx(ctx)
	}()
	set(t, s, "k", "2")
	if err := <-woke; err != nil {
		t.Fatalf("blocking read did not wake: %v", err)
	}
	if idx2, _, _ := s.KVGet(nil, "k"); idx2 <= idx {
		t.Fatalf("index after the write %d, before %d", idx2, idx)
	}
}

func TestRestoreAbandonsWatchers(t *testing.T) {
	src := New()
	set(t, src, "a", "from snapshot")
	var img bytes.Buffer
	if _, err := src.Snapshot(&img); err != nil {
		t.Fatal(err)
	}

	s := New()
	set(t, s, "a", "1")
	set(t, s, "b", "2")
	ws := memdb.NewWatchSet()
	s.KVGet(ws, "b")
	oldAbandon := s.AbandonCh()

	// A bad image is refused: state, index and watchers stay.
	before := s.Dump()
	bad := append([]byte(nil), img.Bytes()...)
	bad[len(bad)-10] ^= 0xff
	if _, err := s.Restore(bytes.NewReader(bad)); err == nil {
		t.Fatal("restore of a corrupted image succeeded")
	}
	if s.Dump() != before || fired(ws) {
		t.Fatal("failed restore changed the state or woke watchers")
	}

	idx, err := s.Restore(&img)
	if err != nil {
		t.Fatal(err)
	}
	if !fired(ws) {
		t.Fatal("restore did not wake a blocking read")
	}
	select {
	case <-oldAbandon:
	default:
		t.Fatal("AbandonCh not closed by restore")
	}
	select {
	case <-s.AbandonCh():
		t.Fatal("new AbandonCh closed")
	default:
	}
	if idx != 1 || s.LastIndex() != 1 || s.Dump() != src.Dump() {
		t.Fatalf("after restore: index %d, last %d, dump\n%s", idx, s.LastIndex(), s.Dump())
	}
	if _, e, _ := s.KVGet(nil, "b"); e != nil {
		t.Fatal("key from before the restore survived it")
	}
}
