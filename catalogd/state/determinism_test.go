package state

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// randomCommands returns n commands drawn from a small key space so that
// CAS hits and misses, deletes of present and absent keys and tree deletes
// all happen, with a few undecodable commands mixed in.
func randomCommands(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	keys := []string{"a", "a/b", "a/b/c", "a/c", "b", "b/x", "ba", "c/d/e"}
	ops := []KVOp{KVSet, KVSet, KVSet, KVCAS, KVCAS, KVDelete, KVDeleteCAS, KVDeleteTree}
	cmds := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		if rng.IntN(50) == 0 {
			cmds = append(cmds, []byte{byte(KVSType), 0xc1, byte(i)})
			continue
		}
		op := ops[rng.IntN(len(ops))]
		e := structs.KVEntry{
			Key:         keys[rng.IntN(len(keys))],
			Flags:       uint64(rng.IntN(3)),
			ModifyIndex: uint64(rng.IntN(i + 2)),
		}
		if rng.IntN(4) > 0 {
			e.Value = []byte(fmt.Sprintf("v%d", rng.IntN(5)))
		}
		if op == KVDeleteTree {
			e.Key = e.Key[:rng.IntN(len(e.Key)+1)]
		}
		data, err := Encode(KVSType, &KVSRequest{Op: op, Entry: e})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, data)
	}
	return cmds
}

func TestDeterministicReplicas(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		cmds := randomCommands(t, seed, 2000)
		a, b := New(), New()
		idx := uint64(0)
		for i, c := range cmds {
			idx += 1 + uint64(i%3) // indexes may skip
			ra, rb := a.Apply(idx, c), b.Apply(idx, c)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d index %d: results differ: %v vs %v", seed, idx, ra, rb)
			}
		}
		if da, db := a.Dump(), b.Dump(); da != db {
			t.Fatalf("seed %d: dumps differ:\n%s\nvs\n%s", seed, da, db)
		}
		if a.LastIndex() != idx {
			t.Fatalf("LastIndex %d, want %d", a.LastIndex(), idx)
		}
		checkSnapshotRoundTrip(t, a)
	}
}

// TestRestoreThenContinue restores a snapshot taken halfway and applies the
// rest of the log to it and to the original: they must stay identical.
func TestRestoreThenContinue(t *testing.T) {
	cmds := randomMixedCommands(t, 42, 3000)
	orig := New()
	for i, c := range cmds[:1500] {
		orig.Apply(uint64(i+1), c)
	}
	var img bytes.Buffer
	snapIdx, err := orig.Snapshot(&img)
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	set(t, restored, "junk", "replaced by the restore")
	if _, err := restored.Restore(&img); err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds[1500:] {
		idx := snapIdx + uint64(i) + 1
		if ra, rb := orig.Apply(idx, c), restored.Apply(idx, c); !reflect.DeepEqual(ra, rb) {
			t.Fatalf("index %d: results differ: %v vs %v", idx, ra, rb)
		}
	}
	if a, b := orig.Dump(), restored.Dump(); a != b {
		t.Fatalf("dumps differ:\n%s\nvs\n%s", a, b)
	}
}

// TestSnapshotWhileApplying takes snapshots while another goroutine
// applies; each image must equal the state a fresh replay reaches at the
// index the snapshot reports. Run with -race.
func TestSnapshotWhileApplying(t *testing.T) {
	cmds := randomMixedCommands(t, 7, 3000)
	s := New()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, c := range cmds {
			s.Apply(uint64(i+1), c)
		}
	}()

	type image struct {
		idx  uint64
		data []byte
	}
	var images []image
	for len(images) < 20 {
		var buf bytes.Buffer
		idx, err := s.Snapshot(&buf)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, image{idx, buf.Bytes()})
		// Concurrent readers too.
		s.KVList(nil, "a")
		s.KVGet(nil, "b")
		s.CheckServiceNodes(nil, "web", nil, nil)
		s.NodeServices(nil, "n1")
		if idx == uint64(len(cmds)) {
			break
		}
	}
	wg.Wait()

	for _, img := range images {
		want := New()
		for i, c := range cmds[:img.idx] {
			want.Apply(uint64(i+1), c)
		}
		got := New()
		if _, err := got.Restore(bytes.NewReader(img.data)); err != nil {
			t.Fatalf("restore image at %d: %v", img.idx, err)
		}
		if a, b := got.Dump(), want.Dump(); a != b {
			t.Fatalf("image at %d differs from replay:\n%s\nvs\n%s", img.idx, a, b)
		}
	}
}

func TestRestoreRefusesBadImages(t *testing.T) {
	s := New()
	for i, c := range randomCommands(t, 3, 200) {
		s.Apply(uint64(i+1), c)
	}
	var img bytes.Buffer
	if _, err := s.Snapshot(&img); err != nil {
		t.Fatal(err)
	}
	good := img.Bytes()

	cases := map[string][]byte{
		"empty":      nil,
		"magic":      append([]byte("XXXX"), good[4:]...),
		"truncated":  good[:len(good)-3],
		"no end":     good[:len(good)-9],
		"flipped":    flip(good, len(good)/2),
		"bad length": flip(good, 6),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			r := New()
			set(t, r, "keep", "me")
			before := r.Dump()
			if _, err := r.Restore(bytes.NewReader(b)); err == nil {
				t.Fatal("restore succeeded")
			}
			if r.Dump() != before {
				t.Fatal("failed restore changed the state")
			}
		})
	}

	// Restore stops at the end record: bytes after it are not parsed.
	r := New()
	rd := io.MultiReader(bytes.NewReader(good), bytes.NewReader([]byte("next")))
	if _, err := r.Restore(rd); err != nil {
		t.Fatal(err)
	}
	if r.Dump() != s.Dump() {
		t.Fatal("restored state differs")
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x55
	return c
}
