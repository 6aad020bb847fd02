package dnsd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeCatalog serves the part of catalogd's HTTP API dnsd reads, in
// Consul's JSON shape, from state a test changes.
type fakeCatalog struct {
	srv *httptest.Server

	mu       sync.Mutex // guards the fields below
	nodes    []*nodeJSON
	services map[string][]*entryJSON
	index    uint64
	hits     int
}

func newFakeCatalog(t *testing.T) *fakeCatalog {
	f := &fakeCatalog{services: map[string][]*entryJSON{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCatalog) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeCatalog) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits++
	if _, ok := r.URL.Query()["stale"]; !ok {
		http.Error(w, "dnsd must read with ?stale", http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Consul-Index", fmt.Sprint(f.index))
	var out any
	switch p := r.URL.EscapedPath(); {
	case p == "/v1/catalog/services":
		m := map[string][]string{}
		for name, es := range f.services {
			m[name] = []string{}
			for _, e := range es {
				m[name] = append(m[name], e.Service.Tags...)
			}
		}
		out = m
	case p == "/v1/catalog/nodes":
		out = f.nodes
	case strings.HasPrefix(p, "/v1/health/service/"):
		name, _ := url.PathUnescape(strings.TrimPrefix(p, "/v1/health/service/"))
		es := f.services[name]
		if es == nil {
			es = []*entryJSON{}
		}
		out = es
	default:
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(out)
}

// addNode registers a node.
func (f *fakeCatalog) addNode(name, addr string, meta map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = append(f.nodes, &nodeJSON{Node: name, Address: addr, Datacenter: "dc1", Meta: meta})
	f.index++
}

// inst describes one instance for addInstance.
type inst struct {
	node, nodeAddr, svcAddr string
	port                    int
	tags                    []string
	status                  string // aggregate check status; "" passing
	weights                 *weightsJSON
}

// addInstance registers an instance of service, with one node check
// (passing) and one service check of the given status.
func (f *fakeCatalog) addInstance(service string, in inst) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := in.status
	if st == "" {
		st = statusPassing
	}
	id := fmt.Sprintf("%s-%d", service, len(f.services[service]))
	f.services[service] = append(f.services[service], &entryJSON{
		Node:    &nodeJSON{Node: in.node, Address: in.nodeAddr, Datacenter: "dc1"},
		Service: &serviceJSON{ID: id, Service: service, Tags: in.tags, Address: in.svcAddr, Port: in.port, Weights: in.weights},
		Checks: []*checkJSON{
			{CheckID: "serfHealth", Status: statusPassing},
			{CheckID: "service:" + id, Status: st, ServiceID: id},
		},
	})
	f.index++
}

// setStatus sets the service check status of every instance of service
// on node.
func (f *fakeCatalog) setStatus(service, node, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.services[service] {
		if e.Node.Node == node {
			e.Checks[1].Status = status
		}
	}
	f.index++
}

// testLog writes through t.Log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDaemon runs dnsd on an ephemeral port against cat, waits for
// Ready and for the first view, and stops it at cleanup.
func startDaemon(t *testing.T, c Config) *Daemon {
	t.Helper()
	if c.Datacenter == "" {
		c.Datacenter = "dc1"
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Node == "" {
		c.Node = "node1"
	}
	c.Log = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("dnsd not ready")
	}
	waitFor(t, 10*time.Second, "first view", func() bool { return !d.view.Load().loaded.IsZero() })
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ask sends one query over net ("udp" or "tcp"), with EDNS0 when
// ednsSize > 0.
func ask(t *testing.T, d *Daemon, netw, name string, qtype uint16, ednsSize uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if ednsSize > 0 {
		m.SetEdns0(ednsSize, false)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, d.Addr().String())
	if err != nil {
		t.Fatalf("%s %s %s: %v", netw, name, dns.TypeToString[qtype], err)
	}
	return r
}

// answers returns the answer RRs of type t.
func answers[T dns.RR](rrs []dns.RR) []T {
	var out []T
	for _, rr := range rrs {
		if v, ok := rr.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
