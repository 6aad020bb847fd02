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
	return append(seeds,
		nil,
		[]byte{byte(KVSType)},
		[]byte{byte(KVSType), 0xc1},
		[]byte{byte(KVSType), 0xdf, 0xff, 0xff, 0xff, 0xff},
		[]byte{byte(KVSType), 0xc6, 0xff, 0xff, 0xff, 0xff},
		[]byte{2, 0x80},
		[]byte{0x81, 0x80},
	)
}

// FuzzApply applies arbitrary bytes as a command to a store holding some
// keys: Apply never panics, always advances LastIndex, answers a bool, nil
// or an error, and two replicas stay identical.
func FuzzApply(f *testing.F) {
	for _, s := range seedCommands(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := New(), New()
		for _, s := range []*Store{a, b} {
			set(t, s, "foo", "1")
			set(t, s, "foo/bar", "2")
			applyOK(t, s, KVDelete, structs.KVEntry{Key: "gone"})
		}
		idx := a.LastIndex() + 1
		ra := a.Apply(idx, data)
		rb := b.Apply(idx, data)
		if a.LastIndex() != idx {
			t.Fatalf("LastIndex %d after applying at %d", a.LastIndex(), idx)
		}
		switch r := ra.(type) {
		case bool, nil:
		case error:
			if !errors.Is(r, ErrInvalidCommand) {
				t.Fatalf("error result not ErrInvalidCommand: %v", r)
			}
		default:
			t.Fatalf("result of type %T: %v", ra, ra)
		}
		if !reflect.DeepEqual(ra, rb) || a.Dump() != b.Dump() {
			t.Fatalf("replicas differ: %v vs %v", ra, rb)
		}
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
