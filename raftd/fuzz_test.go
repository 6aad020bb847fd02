package raftd

import (
	"bytes"
	"testing"
)

// FuzzReadSnapshotHeader feeds arbitrary bytes to the snapshot envelope
// decoder: it must fail cleanly or round-trip.
func FuzzReadSnapshotHeader(f *testing.F) {
	var good bytes.Buffer
	if err := writeSnapshotHeader(&good, snapshotHeader{Version: snapshotVersion, StateIndex: 42, RaftIndex: 40}); err != nil {
		f.Fatal(err)
	}
	good.WriteString("state bytes")
	f.Add(good.Bytes())
	f.Add([]byte{})
	f.Add([]byte("csnp"))
	f.Add([]byte("csnp\x00\x00\x00\x01\xc0"))
	f.Add([]byte("csnp\xff\xff\xff\xff"))
	f.Add([]byte("xxxx\x00\x00\x00\x00"))
	var v2 bytes.Buffer
	writeSnapshotHeader(&v2, snapshotHeader{Version: 2})
	f.Add(v2.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readSnapshotHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if h.Version != snapshotVersion {
			t.Fatalf("accepted version %d", h.Version)
		}
		var out bytes.Buffer
		if err := writeSnapshotHeader(&out, h); err != nil {
			t.Fatal(err)
		}
		h2, err := readSnapshotHeader(&out)
		if err != nil || h2 != h {
			t.Fatalf("round trip: %+v %v, want %+v", h2, err, h)
		}
	})
}
