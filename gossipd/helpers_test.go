package gossipd

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/consort-io/consort/pkg/gossipapi"
)

// tWriter writes log lines through t.Log until the test ends; memberlist
// may log from its own goroutines a moment after a pool shut down.
type tWriter struct {
	t    testing.TB
	mu   sync.Mutex // guards done
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func testLogger(t testing.TB, name string) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// fastGossip shortens failure detection for loopback tests: failed within
// about a second instead of serf's LAN seconds.
func fastGossip(_ string, c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = 500 * time.Millisecond
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// node is one in-process gossipd under test.
type node struct {
	name   string
	d      *Daemon
	rec    *bustest.Recorder
	client *gossipapi.Client
	errc   chan error
	cfg    Config
}

// testConfig is a loopback config with fast gossip; dataDir may be shared
// between restarts of one node.
func testConfig(t testing.TB, name, dataDir string, lanPort int) Config {
	return Config{
		NodeName:      name,
		NodeID:        "id-" + name,
		Datacenter:    "dc1",
		BindAddr:      "127.0.0.1",
		LANPort:       lanPort,
		WANPort:       -1,
		LANProfile:    ProfileLocal,
		WANProfile:    ProfileLocal,
		Tune:          fastGossip,
		RetryInterval: 100 * time.Millisecond,
		DataDir:       dataDir,
		SocketPath:    filepath.Join(dataDir, "gossipd.sock"),
		Log:           testLogger(t, name),
	}
}

// start runs a gossipd with cfg until the test ends (or stop).
func start(t testing.TB, cfg Config) *node {
	t.Helper()
	rec := &bustest.Recorder{}
	cfg.Bus = rec
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: cfg.NodeName, d: d, rec: rec, errc: make(chan error, 1), cfg: cfg}
	go func() { n.errc <- d.Run(context.Background()) }()
	select {
	case <-d.Ready():
	case err := <-n.errc:
		t.Fatalf("gossipd %s: %v", cfg.NodeName, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("gossipd %s not ready", cfg.NodeName)
	}
	n.client = gossipapi.Dial(cfg.SocketPath)
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop closes the gossipd without leaving (a kill, for the others).
func (n *node) stop(t testing.TB) {
	t.Helper()
	n.client.Close()
	n.d.Close()
	select {
	case err := <-n.errc:
		if err != nil {
			t.Errorf("gossipd %s: Run: %v", n.name, err)
		}
		n.errc <- nil // a second stop returns at once
	case <-time.After(10 * time.Second):
		t.Errorf("gossipd %s: Run did not return", n.name)
	}
}

// lanPort is the node's actual LAN port.
func (n *node) lanPort(t testing.TB) int {
	_, p, err := net.SplitHostPort(n.d.LANAddr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return port
}

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

// status returns name's status in n's view of pool ("" if unknown).
func (n *node) status(t testing.TB, pool, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := n.client.Members(ctx, pool)
	if err != nil {
		t.Fatalf("%s: members: %v", n.name, err)
	}
	for _, m := range r.Members {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

type busMember = bus.Member

// memberEvent matches a member event of kind about node.
func memberEvent(kind, node string) func(bustest.Event) bool {
	return func(e bustest.Event) bool {
		m, ok := e.Payload.(*busMember)
		return ok && m.Event == kind && m.Node == node
	}
}
