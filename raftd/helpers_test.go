package raftd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/raftapi"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlogHandler writes slog records through t.Log, and drops them once the
// test has ended (raft's transport goroutines may log a closing
// connection late).
type tlogHandler struct {
	t     testing.TB
	mu    *sync.Mutex // guards *done
	done  *bool
	attrs string
}

func testLogger(t testing.TB, name string) *slog.Logger {
	mu, done := new(sync.Mutex), new(bool)
	t.Cleanup(func() { mu.Lock(); *done = true; mu.Unlock() })
	return slog.New(&tlogHandler{t: t, mu: mu, done: done, attrs: " node=" + name})
}

func (h *tlogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *tlogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s", r.Level, r.Message, h.attrs)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	if !*h.done {
		h.t.Log(b.String())
	}
	return nil
}

func (h *tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	for _, a := range as {
		n.attrs += fmt.Sprintf(" %s=%v", a.Key, a.Value)
	}
	return &n
}

func (h *tlogHandler) WithGroup(string) slog.Handler { return h }

// listen opens a loopback listener on an ephemeral (or given) port.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

// testConfig is a config with short timing for one test server in dir.
func testConfig(t testing.TB, dir, id string, ln net.Listener) Config {
	return Config{
		ID:                 id,
		Listener:           ln,
		DataDir:            filepath.Join(dir, "raftd"),
		SocketPath:         filepath.Join(dir, "raftd.sock"),
		CatalogSocket:      filepath.Join(dir, "catalogd.sock"),
		Log:                testLogger(t, id),
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		HoldTimeout:        3 * time.Second,
		BootstrapPoll:      100 * time.Millisecond,
		SnapshotInterval:   time.Hour, // tests snapshot on demand
	}
}

// node is one raftd under test.
type node struct {
	t      testing.TB
	cfg    Config
	d      *Daemon
	cancel context.CancelFunc
	errc   chan error
	client *raftapi.Client
	addr   string
}

// start runs a raftd and waits until it serves.
func start(t testing.TB, cfg Config) *node {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{t: t, cfg: cfg, d: d, cancel: cancel, errc: make(chan error, 1)}
	go func() { n.errc <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-n.errc:
		t.Fatalf("run %s: %v", cfg.ID, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not ready", cfg.ID)
	}
	n.addr = d.Addr()
	n.client = raftapi.Dial(cfg.SocketPath)
	t.Cleanup(func() { n.stop() })
	return n
}

// stop ends the raftd and checks Run returned nil. Idempotent.
func (n *node) stop() {
	n.t.Helper()
	if n.cancel == nil {
		return
	}
	n.client.Close()
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.errc:
		if err != nil {
			n.t.Errorf("run %s returned %v", n.cfg.ID, err)
		}
	case <-time.After(20 * time.Second):
		n.t.Fatalf("%s did not stop", n.cfg.ID)
	}
}

func (n *node) status() *raftapi.StatusResponse {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := n.client.Status(ctx)
	if err != nil {
		n.t.Fatalf("status %s: %v", n.cfg.ID, err)
	}
	return s
}

func (n *node) apply(data string) uint64 {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := n.client.Apply(ctx, []byte(data))
	if err != nil {
		n.t.Fatalf("apply %q on %s: %v", data, n.cfg.ID, err)
	}
	return idx
}

// waitLeader waits until every node agrees on one leader, established
// (ReadIndex succeeds on it), and returns it.
func waitLeader(t testing.TB, nodes ...*node) *node {
	t.Helper()
	var leader *node
	waitFor(t, "a leader all agree on", 15*time.Second, func() bool {
		leader = nil
		id := ""
		for _, n := range nodes {
			s := n.status()
			if !s.KnownLeader || (id != "" && s.LeaderID != id) {
				return false
			}
			id = s.LeaderID
			if s.ID == s.LeaderID {
				leader = n
			}
		}
		return leader != nil && leader.d.leaderReady()
	})
	return leader
}

// feedReader collects a Feed stream.
type feedReader struct {
	t      testing.TB
	cancel context.CancelFunc
	st     *ipc.StreamReader[raftapi.FeedItem]
}

func openFeed(t testing.TB, c *raftapi.Client, after uint64) *feedReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Feed(ctx, after)
	if err != nil {
		cancel()
		t.Fatalf("feed: %v", err)
	}
	f := &feedReader{t: t, cancel: cancel, st: st}
	t.Cleanup(f.close)
	return f
}

func (f *feedReader) close() { f.st.Close(); f.cancel() }

// next returns the next item, failing the test after a deadline.
func (f *feedReader) next() *raftapi.FeedItem {
	f.t.Helper()
	type res struct {
		it  *raftapi.FeedItem
		err error
	}
	ch := make(chan res, 1)
	go func() { it, err := f.st.Recv(); ch <- res{it, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			f.t.Fatalf("feed recv: %v", r.err)
		}
		return r.it
	case <-time.After(10 * time.Second):
		f.close()
		f.t.Fatalf("feed: no item in 10s")
		return nil
	}
}

// entries reads entry items until n entries arrived.
func (f *feedReader) entries(n int) []raftapi.Entry {
	f.t.Helper()
	var out []raftapi.Entry
	for len(out) < n {
		it := f.next()
		if it.Kind != raftapi.FeedEntries {
			f.t.Fatalf("feed: got kind %d, want entries", it.Kind)
		}
		out = append(out, it.Entries...)
	}
	return out
}

// fakeCatalog is a stand-in catalogd for snapshot tests: it follows
// raftd's feed and keeps as "state" the concatenation of every entry's
// data, with the index it reflects. It serves catalogapi.Snapshot.
type fakeCatalog struct {
	t      testing.TB
	raftd  *raftapi.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards index, state, wake
	index uint64
	state []byte
	wake  chan struct{}
}

func startCatalog(t testing.TB, socket, raftdSocket string) *fakeCatalog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &fakeCatalog{t: t, raftd: raftapi.Dial(raftdSocket), cancel: cancel, wake: make(chan struct{})}
	ln, err := ipc.ListenUnix(socket, 0o660)
	if err != nil {
		t.Fatalf("catalog listen: %v", err)
	}
	m := ipc.NewMux()
	catalogapi.Register(m, c)
	srv := ipc.NewServer(ipc.ServerConfig{Mux: m})
	c.wg.Add(2)
	go func() { defer c.wg.Done(); srv.Serve(ctx, ln) }()
	go func() { defer c.wg.Done(); c.follow(ctx) }()
	t.Cleanup(c.stop)
	return c
}

func (c *fakeCatalog) stop() {
	c.cancel()
	c.raftd.Close()
	c.wg.Wait()
}

// follow applies raftd's feed, reconnecting after raftd restarts.
func (c *fakeCatalog) follow(ctx context.Context) {
	for ctx.Err() == nil {
		c.mu.Lock()
		after := c.index
		c.mu.Unlock()
		st, err := c.raftd.Feed(ctx, after)
		if err == nil {
			err = c.consume(st)
			st.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *fakeCatalog) consume(st *ipc.StreamReader[raftapi.FeedItem]) error {
	var snap []byte
	for {
		it, err := st.Recv()
		if err != nil {
			return err
		}
		c.mu.Lock()
		switch it.Kind {
		case raftapi.FeedSnapshotBegin:
			snap = []byte{}
		case raftapi.FeedSnapshotChunk:
			snap = append(snap, it.Data...)
		case raftapi.FeedSnapshotEnd:
			c.state, c.index = snap, it.Index
		case raftapi.FeedEntries:
			for _, e := range it.Entries {
				if e.Index <= c.index {
					c.mu.Unlock()
					return fmt.Errorf("fake catalog: entry %d not above %d", e.Index, c.index)
				}
				c.state = append(c.state, e.Data...)
				c.index = e.Index
			}
		}
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
	}
}

// Snapshot serves the state at MinIndex or later, in small chunks.
func (c *fakeCatalog) Snapshot(ctx context.Context, req *catalogapi.SnapshotRequest, send func(*catalogapi.SnapshotChunk) error) error {
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		idx, state, wake := c.index, append([]byte(nil), c.state...), c.wake
		c.mu.Unlock()
		if idx >= req.MinIndex {
			const chunk = 7 // several chunks, to exercise reassembly
			first := true
			for len(state) > 0 || first {
				n := min(chunk, len(state))
				ch := &catalogapi.SnapshotChunk{Data: state[:n]}
				if first {
					ch.Index = idx
					first = false
				}
				if err := send(ch); err != nil {
					return err
				}
				state = state[n:]
			}
			return nil
		}
		select {
		case <-wake:
		case <-deadline:
			return catalogapi.ErrBehind
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *fakeCatalog) current() (uint64, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index, string(c.state)
}

// readSnapshotFeed reads a feed that must start with a snapshot and
// returns its state index and bytes.
func readSnapshotFeed(t testing.TB, f *feedReader) (uint64, []byte) {
	t.Helper()
	it := f.next()
	if it.Kind != raftapi.FeedSnapshotBegin {
		t.Fatalf("feed: first item kind %d, want snapshot begin", it.Kind)
	}
	idx := it.Index
	var data []byte
	for {
		it := f.next()
		switch it.Kind {
		case raftapi.FeedSnapshotChunk:
			data = append(data, it.Data...)
		case raftapi.FeedSnapshotEnd:
			if it.Index != idx {
				t.Fatalf("snapshot end index %d, begin %d", it.Index, idx)
			}
			return idx, data
		default:
			t.Fatalf("feed: kind %d inside a snapshot", it.Kind)
		}
	}
}
