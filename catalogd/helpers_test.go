package catalogd

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/hashicorp/consul/api"
)

// tlog writes log lines through t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recorder is a bus.Publisher that keeps what was published: KV events
// in events (and their subjects in subjects), every event in all.
type recorder struct {
	mu       sync.Mutex
	subjects []string
	events   []bus.KV
	all      bustest.Recorder
}

func (r *recorder) Publish(subject string, payload any) {
	r.all.Publish(subject, payload)
	kv, ok := payload.(bus.KV)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subjects = append(r.subjects, subject)
	r.events = append(r.events, kv)
}

func (r *recorder) kv() []bus.KV {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.KV(nil), r.events...)
}

// node is one catalogd under test with its client.
type node struct {
	d      *Daemon
	raft   *catalogdtest.Raft
	bus    *recorder
	api    *api.Client
	url    string
	socket string
	stop   func()
}

// startNode runs a catalogd on raft with HTTP on a free port and a socket
// in a temp dir; it stops when the test ends (or on n.stop()).
func startNode(t *testing.T, raft *catalogdtest.Raft, tweak ...func(*Config)) *node {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		NodeName:   "node-1",
		Datacenter: "dc1",
		Server:     true,
		HTTPAddr:   "127.0.0.1:0",
		SocketPath: filepath.Join(t.TempDir(), "catalogd.sock"),
		Raft:       raft.Client(),
		Bus:        rec,
		Log:        testLogger(t),
		// The catalog starts empty: no anti-entropy registering this node.
		// Agent tests turn it on.
		AntiEntropyInterval: -1,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.readWait = 2 * time.Second
	d.applyWait = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("catalogd not ready after 10s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	url := "http://" + d.HTTPAddr().String()
	c, err := api.NewClient(&api.Config{Address: d.HTTPAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	return &node{d: d, raft: raft, bus: rec, api: c, url: url, socket: cfg.SocketPath, stop: stop}
}

// do makes a raw HTTP request and returns status, headers and body.
func (n *node) do(t *testing.T, method, path string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// put stores a key through the Consul client.
func (n *node) put(t *testing.T, key, value string) {
	t.Helper()
	if _, err := n.api.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}
