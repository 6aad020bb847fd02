package catalogd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/hashicorp/consul/api"
)

// TestRestartRebuildsState: catalogd keeps nothing on disk; a new process
// rebuilds the same state from raftd's feed.
func TestRestartRebuildsState(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	for i := range 20 {
		n.put(t, fmt.Sprintf("k/%02d", i), fmt.Sprint(i))
	}
	n.api.KV().Delete("k/03", nil)
	before := n.d.store.Dump()
	n.stop()

	n2 := startNode(t, raft)
	// Writes made before the restart are history: no events for them.
	p, _, err := n2.api.KV().Get("k/07", nil)
	if err != nil || p == nil || string(p.Value) != "7" {
		t.Fatalf("after restart: %+v %v", p, err)
	}
	if after := n2.d.store.Dump(); after != before {
		t.Fatalf("state differs after restart:\n%s\nwant\n%s", after, before)
	}
	if ev := n2.bus.kv(); len(ev) != 0 {
		t.Fatalf("replayed entries were published: %+v", ev)
	}
	n2.put(t, "new", "x")
	waitFor(t, "event for a new write", func() bool { return len(n2.bus.kv()) == 1 })
}

// TestFeedReconnect: a raftd restart breaks the feed; catalogd reopens it
// after what it applied and misses nothing.
func TestFeedReconnect(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "a", "1")
	raft.Cut()
	raft.Skip(3) // raft's own entries leave gaps in the indexes catalogd sees
	n.put(t, "b", "2")
	raft.Cut()
	n.put(t, "c", "3")
	for _, k := range []string{"a", "b", "c"} {
		if p, _, err := n.api.KV().Get(k, nil); err != nil || p == nil {
			t.Fatalf("get %s after reconnects: %+v %v", k, p, err)
		}
	}
	if raft.FeedCalls() < 2 {
		t.Fatalf("feed opened %d times, want reopening after cuts", raft.FeedCalls())
	}
	if got, want := n.d.Applied(), raft.LastIndex(); got != want {
		t.Fatalf("applied %d, raft at %d", got, want)
	}
}

// TestFeedSnapshot: a catalogd behind raft's compacted log starts from
// the snapshot, then applies the entries after it.
func TestFeedSnapshot(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	for i := range 10 {
		n.put(t, fmt.Sprintf("s/%d", i), fmt.Sprint(i))
	}
	// Take a snapshot the way raftd would, then compact the log.
	var buf bytes.Buffer
	idx, err := n.d.store.Snapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n.stop()
	raft.Compact(buf.Bytes(), idx)

	n2 := startNode(t, raft)
	n2.put(t, "after", "snap")
	p, _, err := n2.api.KV().Get("s/4", nil)
	if err != nil || p == nil || string(p.Value) != "4" {
		t.Fatalf("key from snapshot: %+v %v", p, err)
	}
	if p, _, _ := n2.api.KV().Get("after", nil); p == nil {
		t.Fatal("key written after the snapshot is missing")
	}
	if raft.SnapshotsSent() != 1 {
		t.Fatalf("%d snapshots sent, want 1", raft.SnapshotsSent())
	}
	if n2.d.store.Dump() == "" || n2.d.Applied() != raft.LastIndex() {
		t.Fatalf("applied %d, raft at %d", n2.d.Applied(), raft.LastIndex())
	}
}

// TestRestoreWakesWatchers: restoring a snapshot wakes blocking queries
// (or, if the restore wins the race, the query sees the restored state).
func TestRestoreWakesWatchers(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "w", "1")
	_, qm, _ := n.api.KV().Get("w", nil)

	other := state.New()
	req := state.KVSRequest{Op: state.KVSet}
	req.Entry.Key, req.Entry.Value = "w", []byte("restored")
	data, _ := state.Encode(state.KVSType, req)
	other.Apply(qm.LastIndex+50, data)
	var buf bytes.Buffer
	if _, err := other.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}

	got := make(chan string, 1)
	go func() {
		p, _, err := n.api.KV().Get("w", &api.QueryOptions{WaitIndex: qm.LastIndex, AllowStale: true})
		if err != nil || p == nil {
			got <- fmt.Sprint(err)
			return
		}
		got <- string(p.Value)
	}()
	if err := n.d.restore(&buf, qm.LastIndex+50); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "restored" {
		t.Fatalf("watcher woke with %q", v)
	}
}

// TestSnapshotSocket: raftd's Snapshot call over catalogd's socket
// streams a state that restores to the same store.
func TestSnapshotSocket(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	big := bytes.Repeat([]byte("v"), 200<<10)
	for i := range 4 { // over one chunk
		if _, err := n.api.KV().Put(&api.KVPair{Key: fmt.Sprintf("big/%d", i), Value: big}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := catalogapi.Dial(n.socket)
	defer c.Close()
	ctx := context.Background()
	s, err := c.Snapshot(ctx, raft.LastIndex())
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	var index uint64
	chunks := 0
	for {
		ch, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if chunks == 0 {
			index = ch.Index
		}
		if len(ch.Data) > snapshotChunk {
			t.Fatalf("chunk of %d bytes", len(ch.Data))
		}
		data.Write(ch.Data)
		chunks++
	}
	if index < raft.LastIndex() || chunks < 2 {
		t.Fatalf("snapshot index %d (raft %d), %d chunks", index, raft.LastIndex(), chunks)
	}
	st := state.New()
	if _, err := st.Restore(&data); err != nil {
		t.Fatal(err)
	}
	if st.Dump() != n.d.store.Dump() {
		t.Fatal("restored snapshot differs from catalogd's state")
	}

	// Asking for an index catalogd never reaches fails with ErrBehind.
	s, err = c.Snapshot(ctx, raft.LastIndex()+1000)
	if err == nil {
		_, err = s.Recv()
	}
	if !errors.Is(err, catalogapi.ErrBehind) {
		t.Fatalf("snapshot ahead of state: %v, want ErrBehind", err)
	}
}

// TestTrackerBounded: results are kept for writers, bounded.
func TestTrackerBounded(t *testing.T) {
	tr := newTracker(4)
	for i := uint64(1); i <= 10; i++ {
		tr.record(i, true)
	}
	if len(tr.results) != 4 {
		t.Fatalf("kept %d results, want 4", len(tr.results))
	}
	if _, ok := tr.take(6); ok {
		t.Fatal("evicted result still there")
	}
	if r, ok := tr.take(10); !ok || r != true {
		t.Fatal("latest result missing")
	}
	tr.set(10)
	if err := tr.wait(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
}

// TestInvalidCommandInLog: an entry the state machine refuses does not
// stop the feed.
func TestInvalidCommandInLog(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	if _, err := raft.Client().Apply(context.Background(), []byte{99, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := raft.Client().Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	n.put(t, "after", "bad")
	if p, _, _ := n.api.KV().Get("after", nil); p == nil {
		t.Fatal("feed stopped at an invalid command")
	}
}
