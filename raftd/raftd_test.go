package raftd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/raftapi"
)

// recordBus records publishes.
type recordBus struct {
	mu  sync.Mutex // guards got
	got []bus.RaftLeader
}

func (b *recordBus) Publish(subject string, payload any) {
	if subject != "consort.raft.leader" {
		panic("unexpected subject " + subject)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, payload.(bus.RaftLeader))
}

func (b *recordBus) events() []bus.RaftLeader {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bus.RaftLeader(nil), b.got...)
}

func TestOneNodeApplyAndFeed(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "n1", listen(t, ""))
	cfg.Bootstrap = true
	rb := &recordBus{}
	cfg.Bus = rb
	n := start(t, cfg)
	waitLeader(t, n)

	var idx []uint64
	for i := range 20 {
		got := n.apply(fmt.Sprintf("cmd-%02d", i))
		if len(idx) > 0 && got <= idx[len(idx)-1] {
			t.Fatalf("apply %d: index %d not above %d", i, got, idx[len(idx)-1])
		}
		idx = append(idx, got)
	}

	// From 0: every entry, in order.
	f := openFeed(t, n.client, 0)
	es := f.entries(20)
	for i, e := range es {
		if e.Index != idx[i] || string(e.Data) != fmt.Sprintf("cmd-%02d", i) {
			t.Fatalf("feed entry %d: got %d %q, want %d cmd-%02d", i, e.Index, e.Data, idx[i], i)
		}
	}

	// After N: only entries above N.
	f2 := openFeed(t, n.client, idx[9])
	es = f2.entries(10)
	if es[0].Index != idx[10] || len(es) != 10 {
		t.Fatalf("feed after %d: first %d, %d entries; want first %d, 10 entries", idx[9], es[0].Index, len(es), idx[10])
	}

	// Live entries reach both feeds.
	live := n.apply("live")
	for _, fr := range []*feedReader{f, f2} {
		es := fr.entries(1)
		if es[0].Index != live || string(es[0].Data) != "live" {
			t.Fatalf("live entry: got %d %q, want %d live", es[0].Index, es[0].Data, live)
		}
	}

	// ReadIndex covers the last write.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, consistent := range []bool{false, true} {
		r, err := n.client.ReadIndex(ctx, consistent)
		if err != nil || r.Index < live || !r.KnownLeader || r.LastContact != 0 {
			t.Fatalf("read index consistent=%v: %+v %v; want index >= %d, known leader", consistent, r, err, live)
		}
	}

	// Too large: refused, never applied.
	_, err := n.client.Apply(ctx, make([]byte, raftapi.MaxCommandSize+1))
	if !errors.Is(err, raftapi.ErrTooLarge) {
		t.Fatalf("apply too large: %v, want ErrTooLarge", err)
	}

	s := n.status()
	if s.State != "Leader" || s.ID != "n1" || s.LeaderID != "n1" || len(s.Peers) != 1 || s.CommitIndex < live {
		t.Fatalf("status: %+v", s)
	}

	waitFor(t, "leader event", 5*time.Second, func() bool {
		for _, e := range rb.events() {
			if e.Kind == bus.KindRaftLeader && e.LeaderID == "n1" && e.LeaderAddr == n.addr && e.Observer == "n1" && e.Term > 0 {
				return true
			}
		}
		return false
	})
}

func TestThreeNodes(t *testing.T) {
	lns := [3]net.Listener{}
	var addrs []string
	for i := range lns {
		lns[i] = listen(t, "")
		addrs = append(addrs, lns[i].Addr().String())
	}
	var nodes []*node
	for i := range 3 {
		cfg := testConfig(t, t.TempDir(), fmt.Sprintf("s%d", i+1), lns[i])
		cfg.BootstrapExpect = 3
		cfg.Peers = addrs // its own address included, as retry_join often is
		cfg.HoldTimeout = time.Second
		nodes = append(nodes, start(t, cfg))
	}
	leader := waitLeader(t, nodes...)
	var followers []*node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	s := leader.status()
	if len(s.Peers) != 3 {
		t.Fatalf("leader peers: %+v", s.Peers)
	}

	// A follower forwards the write; it is committed everywhere.
	idx := followers[0].apply("via-follower")
	for _, n := range nodes {
		f := openFeed(t, n.client, 0)
		var es []string
		for !strings.Contains(strings.Join(es, ","), "via-follower") {
			for _, e := range f.entries(1) {
				es = append(es, string(e.Data))
				if string(e.Data) == "via-follower" && e.Index != idx {
					t.Fatalf("%s: entry at %d, apply said %d", n.cfg.ID, e.Index, idx)
				}
			}
		}
		f.close()
	}

	// Consistent reads work on followers, through the leader.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range followers {
		r, err := f.client.ReadIndex(ctx, true)
		if err != nil || r.Index < idx || !r.KnownLeader {
			t.Fatalf("read index on %s: %+v %v", f.cfg.ID, r, err)
		}
	}

	// Stop the leader: the others elect a new one and take writes.
	leader.stop()
	rest := followers
	leader2 := waitLeader(t, rest...)
	idx2 := leader2.apply("after-failover")
	if idx2 <= idx {
		t.Fatalf("index after failover %d, not above %d", idx2, idx)
	}
	var other *node
	for _, n := range rest {
		if n != leader2 {
			other = n
		}
	}
	other.apply("follower-after-failover")

	// Two of three down: no quorum, no leader.
	leader2.stop()
	waitFor(t, "the last server to lose its leader", 15*time.Second, func() bool {
		return !other.status().KnownLeader
	})
	_, err := other.client.ReadIndex(ctx, true)
	if !errors.Is(err, raftapi.ErrNoLeader) {
		t.Fatalf("read index without quorum: %v, want ErrNoLeader", err)
	}
	_, err = other.client.Apply(ctx, []byte("lost"))
	if !errors.Is(err, raftapi.ErrNoLeader) {
		t.Fatalf("apply without quorum: %v, want ErrNoLeader", err)
	}
	// Status is local and still answers.
	if s := other.status(); s.ID != other.cfg.ID || s.KnownLeader {
		t.Fatalf("status without quorum: %+v", s)
	}
}

func TestSnapshotFeed(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "n1", listen(t, ""))
	cfg.Bootstrap = true
	cfg.SnapshotThreshold = 4
	cfg.TrailingLogs = 2
	n := start(t, cfg)
	cat := startCatalog(t, cfg.CatalogSocket, cfg.SocketPath)
	waitLeader(t, n)

	var want bytes.Buffer
	var last uint64
	for i := range 30 {
		s := fmt.Sprintf("[%02d]", i)
		want.WriteString(s)
		last = n.apply(s)
	}
	waitFor(t, "catalog to catch up", 5*time.Second, func() bool { i, _ := cat.current(); return i >= last })
	if err := n.d.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := 30; i < 35; i++ {
		s := fmt.Sprintf("[%02d]", i)
		want.WriteString(s)
		last = n.apply(s)
	}

	// The log start is gone: Feed(0) starts with the snapshot.
	f := openFeed(t, n.client, 0)
	sidx, state := readSnapshotFeed(t, f)
	if sidx < 30 { // 30 commands plus bootstrap configuration and noop
		t.Fatalf("snapshot state index %d, want >= 30", sidx)
	}
	got := append([]byte(nil), state...)
	prev := sidx
	for prev < last {
		for _, e := range f.entries(1) {
			if e.Index <= prev {
				t.Fatalf("entry %d after %d", e.Index, prev)
			}
			got = append(got, e.Data...)
			prev = e.Index
		}
	}
	if string(got) != want.String() {
		t.Fatalf("snapshot+entries:\n got %s\nwant %s", got, want.String())
	}

	if st := n.status(); st.FirstIndex <= 1 || st.SnapshotIndex < 30 || st.FirstIndex > st.SnapshotIndex+1 {
		t.Fatalf("status after compaction: first %d snapshot %d", st.FirstIndex, st.SnapshotIndex)
	}

	// A feed at the snapshot's index needs no snapshot.
	f2 := openFeed(t, n.client, sidx)
	if es := f2.entries(1); es[0].Index <= sidx {
		t.Fatalf("feed after %d began at %d", sidx, es[0].Index)
	}

	// The fake catalogd followed the same feed and agrees.
	waitFor(t, "catalog state", 5*time.Second, func() bool { i, s := cat.current(); return i == last && s == want.String() })
}

func TestSnapshotWithoutCatalog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "n1", listen(t, ""))
	cfg.Bootstrap = true
	cfg.TrailingLogs = 1
	n := start(t, cfg)
	waitLeader(t, n)
	for i := range 5 {
		n.apply(fmt.Sprint(i))
	}
	if err := n.d.raft.Snapshot().Error(); err == nil {
		t.Fatal("snapshot succeeded with no catalogd")
	}
	// Nothing was compacted: the whole log still feeds.
	f := openFeed(t, n.client, 0)
	if es := f.entries(5); string(es[0].Data) != "0" || string(es[4].Data) != "4" {
		t.Fatalf("feed after failed snapshot: %+v", es)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	ln := listen(t, "")
	addr := ln.Addr().String()
	cfg := testConfig(t, dir, "n1", ln)
	cfg.Bootstrap = true
	cfg.TrailingLogs = 2
	n := start(t, cfg)
	cat := startCatalog(t, cfg.CatalogSocket, cfg.SocketPath)
	waitLeader(t, n)

	var want bytes.Buffer
	var last uint64
	add := func(n *node, i int) {
		s := fmt.Sprintf("<%02d>", i)
		want.WriteString(s)
		last = n.apply(s)
	}
	for i := range 10 {
		add(n, i)
	}
	waitFor(t, "catalog to catch up", 5*time.Second, func() bool { i, _ := cat.current(); return i >= last })
	if err := n.d.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := 10; i < 15; i++ {
		add(n, i)
	}
	before := last
	n.stop()

	cfg.Listener = listen(t, addr)
	cfg.Log = testLogger(t, "n1-again")
	n2 := start(t, cfg)
	waitLeader(t, n2)
	if s := n2.status(); s.LastIndex < before {
		t.Fatalf("after restart last index %d, before %d", s.LastIndex, before)
	}

	// Feed from 0: snapshot then the rest, as before the restart.
	f := openFeed(t, n2.client, 0)
	_, state := readSnapshotFeed(t, f)
	got := append([]byte(nil), state...)
	for !bytes.Equal(got, want.Bytes()) {
		if len(got) > want.Len() {
			t.Fatalf("after restart got %s, want %s", got, want.String())
		}
		for _, e := range f.entries(1) {
			got = append(got, e.Data...)
		}
	}

	// Writes continue; the old feed and the catalog see them.
	add(n2, 15)
	if last <= before {
		t.Fatalf("index after restart %d, not above %d", last, before)
	}
	if es := f.entries(1); es[0].Index != last {
		t.Fatalf("live entry after restart at %d, want %d", es[0].Index, last)
	}
	waitFor(t, "catalog after restart", 10*time.Second, func() bool { i, s := cat.current(); return i == last && s == want.String() })
}

// A follower that was down while the leader compacted its log catches up
// by an installed snapshot; its feed (and its catalogd) must then restart
// from that snapshot.
func TestFollowerInstallsSnapshot(t *testing.T) {
	var lns []net.Listener
	var addrs []string
	for range 3 {
		ln := listen(t, "")
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	var nodes []*node
	var cats []*fakeCatalog
	var cfgs []Config
	for i := range 3 {
		cfg := testConfig(t, t.TempDir(), fmt.Sprintf("s%d", i+1), lns[i])
		cfg.BootstrapExpect = 3
		cfg.Peers = addrs
		cfg.TrailingLogs = 2
		cfgs = append(cfgs, cfg)
		n := start(t, cfg)
		nodes = append(nodes, n)
		cats = append(cats, startCatalog(t, cfg.CatalogSocket, cfg.SocketPath))
	}
	leader := waitLeader(t, nodes...)
	var lagger int
	for i, n := range nodes {
		if n != leader {
			lagger = i
		}
	}
	var want bytes.Buffer
	var last uint64
	add := func(i int) {
		s := fmt.Sprintf("{%02d}", i)
		want.WriteString(s)
		last = leader.apply(s)
	}
	for i := range 5 {
		add(i)
	}
	waitFor(t, "lagger's catalog", 5*time.Second, func() bool { i, _ := cats[lagger].current(); return i >= last })
	nodes[lagger].stop()

	for i := 5; i < 25; i++ {
		add(i)
	}
	waitFor(t, "leader's catalog", 5*time.Second, func() bool { i, _ := cats[indexOf(nodes, leader)].current(); return i >= last })
	if err := leader.d.raft.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	add(25)

	cfg := cfgs[lagger]
	cfg.Listener = listen(t, addrs[lagger])
	cfg.Log = testLogger(t, cfg.ID+"-again")
	n := start(t, cfg)
	waitFor(t, "lagger's catalog after install", 15*time.Second, func() bool {
		i, s := cats[lagger].current()
		return i == last && s == want.String()
	})
	if s := n.status(); s.AppliedIndex < last {
		t.Fatalf("lagger status after install: %+v", s)
	}
	// A fresh feed there starts from the installed snapshot.
	f := openFeed(t, n.client, 0)
	_, state := readSnapshotFeed(t, f)
	got := append([]byte(nil), state...)
	for len(got) < want.Len() {
		for _, e := range f.entries(1) {
			got = append(got, e.Data...)
		}
	}
	if string(got) != want.String() {
		t.Fatalf("lagger feed:\n got %s\nwant %s", got, want.String())
	}
}

func indexOf(nodes []*node, n *node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// Run returns only after every goroutine it started has returned.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, t.TempDir(), "n1", listen(t, ""))
	cfg.Bootstrap = true
	n := start(t, cfg)
	waitLeader(t, n)
	n.apply("x")
	f := openFeed(t, n.client, 0)
	f.entries(1)
	f.close()
	n.stop()
	var now int
	waitFor(t, "goroutines to end", 10*time.Second, func() bool {
		now = runtime.NumGoroutine()
		return now <= before
	})
}

func TestClose(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "n1", listen(t, ""))
	cfg.Bootstrap = true
	n := start(t, cfg)
	if err := n.d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.errc:
		if err != nil {
			t.Fatalf("run after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after Close")
	}
	n.cancel() // already stopped; release the context
	n.cancel = nil
	n.client.Close()
	if err := n.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.d.Run(context.Background()); err != nil {
		t.Fatalf("run after close: %v", err)
	}
}
