package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// fakeCatalog is an in-memory catalog with Consul's registration rules
// that counts writes and can be made to fail.
type fakeCatalog struct {
	mu       sync.Mutex
	nodes    map[string]*structs.Node
	services map[string]map[string]*structs.NodeService // node → service ID →
	checks   map[string]map[string]*structs.HealthCheck // node → check ID →
	writes   []string
	err      error // every call fails with it while set
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{
		nodes:    map[string]*structs.Node{},
		services: map[string]map[string]*structs.NodeService{},
		checks:   map[string]map[string]*structs.HealthCheck{},
	}
}

func (f *fakeCatalog) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeCatalog) NodeRecords(ctx context.Context, node string) (*structs.Node, []*structs.NodeService, []*structs.HealthCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, nil, nil, f.err
	}
	var svcs []*structs.NodeService
	for _, s := range f.services[node] {
		svcs = append(svcs, cloneService(s))
	}
	var checks []*structs.HealthCheck
	for _, c := range f.checks[node] {
		checks = append(checks, cloneCheck(c))
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].ID < svcs[j].ID })
	sort.Slice(checks, func(i, j int) bool { return checks[i].CheckID < checks[j].CheckID })
	var n *structs.Node
	if nn := f.nodes[node]; nn != nil {
		c := *nn
		n = &c
	}
	return n, svcs, checks, nil
}

func (f *fakeCatalog) Register(ctx context.Context, req *structs.RegisterRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	what := []string{"register"}
	if !req.SkipNodeUpdate {
		f.nodes[req.Node] = &structs.Node{ID: req.ID, Node: req.Node, Address: req.Address, Datacenter: req.Datacenter,
			TaggedAddresses: cloneMap(req.TaggedAddresses), Meta: cloneMap(req.NodeMeta)}
		what = append(what, "node")
	}
	if f.nodes[req.Node] == nil {
		return fmt.Errorf("%w: node %q not registered", ErrRejected, req.Node)
	}
	if req.Service != nil {
		if f.services[req.Node] == nil {
			f.services[req.Node] = map[string]*structs.NodeService{}
		}
		f.services[req.Node][req.Service.ID] = cloneService(req.Service)
		what = append(what, "service:"+req.Service.ID)
	}
	checks := req.Checks
	if req.Check != nil {
		checks = append(checks, req.Check)
	}
	for _, c := range checks {
		if c.ServiceID != "" && f.services[req.Node][c.ServiceID] == nil {
			return fmt.Errorf("%w: check %q of unknown service %q", ErrRejected, c.CheckID, c.ServiceID)
		}
		if f.checks[req.Node] == nil {
			f.checks[req.Node] = map[string]*structs.HealthCheck{}
		}
		f.checks[req.Node][c.CheckID] = cloneCheck(c)
		what = append(what, "check:"+c.CheckID)
	}
	f.writes = append(f.writes, strings.Join(what, " "))
	return nil
}

func (f *fakeCatalog) Deregister(ctx context.Context, req *structs.DeregisterRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	switch {
	case req.ServiceID != "":
		delete(f.services[req.Node], req.ServiceID)
		for id, c := range f.checks[req.Node] {
			if c.ServiceID == req.ServiceID {
				delete(f.checks[req.Node], id)
			}
		}
		f.writes = append(f.writes, "deregister service:"+req.ServiceID)
	case req.CheckID != "":
		delete(f.checks[req.Node], req.CheckID)
		f.writes = append(f.writes, "deregister check:"+req.CheckID)
	default:
		delete(f.nodes, req.Node)
		delete(f.services, req.Node)
		delete(f.checks, req.Node)
		f.writes = append(f.writes, "deregister node")
	}
	return nil
}

// takeWrites returns and forgets the writes so far.
func (f *fakeCatalog) takeWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

func (f *fakeCatalog) service(node, id string) *structs.NodeService {
	f.mu.Lock()
	defer f.mu.Unlock()
	return cloneService(f.services[node][id])
}

func (f *fakeCatalog) check(node, id string) *structs.HealthCheck {
	f.mu.Lock()
	defer f.mu.Unlock()
	return cloneCheck(f.checks[node][id])
}

// tlog writes log lines through t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestAgent returns an agent for node "n1" on cat.
func newTestAgent(t *testing.T, cat *fakeCatalog, tweak ...func(*Config)) *Agent {
	t.Helper()
	c := Config{
		Node: NodeInfo{Name: "n1", ID: "11111111-2222-3333-4444-555555555555", Address: "10.0.0.1", Datacenter: "dc1",
			TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "10.0.0.1"}, Meta: map[string]string{"rack": "r1"}},
		Catalog: cat,
		Log:     testLogger(t),
	}
	for _, f := range tweak {
		f(&c)
	}
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustJSON(v any) string {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		panic(err)
	}
	return string(b)
}
