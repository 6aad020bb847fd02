package catalogd

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/hashicorp/consul/api"
)

// withAgent turns anti-entropy on (startNode leaves it off); the
// periodic diff is left to the tests, which call SyncFull themselves.
func withAgent(c *Config) {
	c.AntiEntropyInterval = time.Hour
	c.NodeMeta = map[string]string{"rack": "r1"}
}

func startAgentNode(t *testing.T, raft *catalogdtest.Raft, tweak ...func(*Config)) *node {
	t.Helper()
	return startNode(t, raft, append([]func(*Config){withAgent}, tweak...)...)
}

func ttlRegistration(name string) *api.AgentServiceRegistration {
	return &api.AgentServiceRegistration{
		ID: name + "-1", Name: name, Port: 8080, Address: "10.0.0.5",
		Tags: []string{"primary"}, Meta: map[string]string{"version": "2"},
		Weights: &api.AgentWeights{Passing: 5, Warning: 1},
		Check:   &api.AgentServiceCheck{CheckID: name + "-ttl", TTL: "30s", Notes: "heartbeat"},
	}
}

func TestAgentRegisterWithConsulClient(t *testing.T) {
	n := startAgentNode(t, catalogdtest.Start(t))
	ag := n.api.Agent()
	if err := ag.ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatal(err)
	}

	svcs, err := ag.Services()
	if err != nil {
		t.Fatal(err)
	}
	s := svcs["web-1"]
	if s == nil || s.Service != "web" || s.Port != 8080 || s.Address != "10.0.0.5" || s.Meta["version"] != "2" ||
		s.Weights != (api.AgentWeights{Passing: 5, Warning: 1}) || s.Datacenter != "dc1" || len(s.Tags) != 1 {
		t.Fatalf("agent services: %+v", s)
	}
	checks, err := ag.Checks()
	if err != nil {
		t.Fatal(err)
	}
	c := checks["web-ttl"]
	if c == nil || c.Status != "critical" || c.ServiceID != "web-1" || c.ServiceName != "web" || c.Type != "ttl" ||
		c.Notes != "heartbeat" || c.Node != "node-1" {
		t.Fatalf("agent checks: %+v", c)
	}

	// Synced before the register call answered: the catalog has the node
	// (with its meta), the service and the check.
	cs, _, err := n.api.Catalog().Service("web", "", nil)
	if err != nil || len(cs) != 1 || cs[0].ServiceID != "web-1" || cs[0].NodeMeta["rack"] != "r1" || cs[0].ServiceWeights.Passing != 5 {
		t.Fatalf("catalog service: %+v %v", cs, err)
	}
	hc, _, err := n.api.Health().Checks("web", nil)
	if err != nil || len(hc) != 1 || hc[0].CheckID != "web-ttl" || hc[0].Status != "critical" {
		t.Fatalf("health checks: %+v %v", hc, err)
	}

	// One service, with ContentHash and hash blocking.
	one, _, err := ag.Service("web-1", nil)
	if err != nil || one.ContentHash == "" || one.ID != "web-1" {
		t.Fatalf("agent service: %+v %v", one, err)
	}
	done := make(chan *api.AgentService, 1)
	go func() {
		s, _, err := ag.Service("web-1", &api.QueryOptions{WaitHash: one.ContentHash, WaitTime: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	reg := ttlRegistration("web")
	reg.Port = 9090
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s == nil || s.Port != 9090 || s.ContentHash == one.ContentHash {
			t.Fatalf("blocking agent service returned %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hash-blocking query did not return on a change")
	}
	if _, _, err := ag.Service("nope", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown service: %v", err)
	}

	// Filters.
	f, err := ag.ServicesWithFilter(`Meta.version == "2" and Port == 9090`)
	if err != nil || len(f) != 1 {
		t.Errorf("services filter: %v %v", f, err)
	}
	fc, err := ag.ChecksWithFilter(`Status == "passing"`)
	if err != nil || len(fc) != 0 {
		t.Errorf("checks filter: %v %v", fc, err)
	}

	// Deregistration removes it locally and from the catalog.
	if err := ag.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if cs, _, _ := n.api.Catalog().Service("web", "", nil); len(cs) != 0 {
		t.Errorf("catalog still has web: %+v", cs)
	}
	if checks, _ := ag.Checks(); len(checks) != 0 {
		t.Errorf("checks left: %+v", checks)
	}
}

func TestAgentHTTPErrors(t *testing.T) {
	n := startAgentNode(t, catalogdtest.Start(t))
	if err := n.api.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Check: &api.AgentServiceCheck{
		CheckID: "http", HTTP: "http://127.0.0.1:1/", Interval: "10s"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/agent/service/register", `{"Port": 80}`, 400, "Missing service name"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Address": "0.0.0.0"}`, 400, "Invalid service address"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"HTTP": "http://x"}}`, 400, "Invalid check: Interval must be > 0"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Check": {"TTL": "1s", "Status": "bad"}}`, 400, "Status for checks must"},
		{"PUT", "/v1/agent/service/register", `{"Name": `, 400, "Request decode failed"},
		{"PUT", "/v1/agent/service/register", `{"Name": "x", "Weights": {"Passing": 0}}`, 400, "Invalid Weights"},
		{"GET", "/v1/agent/service/register", ``, 405, ""},
		{"PUT", "/v1/agent/service/deregister/nope", ``, 404, `Unknown service ID "nope". Ensure that the service ID is passed, not the service name.`},
		{"PUT", "/v1/agent/check/register", `{"TTL": "10s"}`, 400, "Missing check name"},
		{"PUT", "/v1/agent/check/register", `{"Name": "c", "TTL": "10s", "Status": "ok"}`, 400, "Bad check status"},
		{"PUT", "/v1/agent/check/register", `{"Name": "c"}`, 400, "Invalid check: TTL must be > 0"},
		{"PUT", "/v1/agent/check/register", `{"Name": "c", "TTL": "10s", "ServiceID": "nope"}`, 404, `ServiceID "nope" does not exist`},
		{"PUT", "/v1/agent/check/deregister/nope", ``, 404, `Unknown check ID "nope". Ensure that the check ID is passed, not the check name.`},
		{"PUT", "/v1/agent/check/pass/nope", ``, 404, `Unknown check ID "nope"`},
		{"PUT", "/v1/agent/check/pass/http", ``, 500, `CheckID "http" does not have associated TTL`},
		{"PUT", "/v1/agent/check/update/http", `{"Status": "ok"}`, 400, `Invalid check status: 'ok'`},
		{"GET", "/v1/agent/check/pass/http", ``, 405, ""},
		{"PUT", "/v1/agent/service/maintenance/web", ``, 400, "Missing value for enable"},
		{"PUT", "/v1/agent/service/maintenance/web?enable=maybe", ``, 400, `Invalid value for enable: "maybe"`},
		{"PUT", "/v1/agent/service/maintenance/nope?enable=true", ``, 404, `No service registered with ID "nope"`},
		{"PUT", "/v1/agent/maintenance", ``, 400, "Missing value for enable"},
		{"GET", "/v1/agent/health/service/id/nope?format=text", ``, 404, "ServiceId nope not found"},
		{"GET", "/v1/agent/health/service/name/nope?format=text", ``, 404, "ServiceName nope Not Found"},
		{"GET", "/v1/agent/members", ``, 404, "Unknown endpoint"},
		{"GET", "/v1/agent/services?filter=Nope==1", ``, 400, "Failed to create boolean expression evaluator"},
	} {
		code, _, body := n.do(t, tc.method, tc.path, strings.NewReader(tc.body))
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
}

// fakeHealthd records UpdateTTL calls on a real healthd socket.
type fakeHealthd struct {
	mu   sync.Mutex
	ttls []healthapi.UpdateTTLRequest
}

func (f *fakeHealthd) UpdateTTL(ctx context.Context, req *healthapi.UpdateTTLRequest) (*healthapi.UpdateTTLResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ttls = append(f.ttls, *req)
	return &healthapi.UpdateTTLResponse{}, nil
}

func (f *fakeHealthd) Status(ctx context.Context, req *healthapi.StatusRequest) (*healthapi.StatusResponse, error) {
	return &healthapi.StatusResponse{}, nil
}

func (f *fakeHealthd) calls() []healthapi.UpdateTTLRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]healthapi.UpdateTTLRequest(nil), f.ttls...)
}

func serveHealthd(t *testing.T, path string) *fakeHealthd {
	t.Helper()
	l, err := ipc.ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHealthd{}
	mux := ipc.NewMux()
	healthapi.Register(mux, f)
	srv := ipc.NewServer(ipc.ServerConfig{Mux: mux})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, l)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func TestAgentTTLUpdates(t *testing.T) {
	hsock := filepath.Join(t.TempDir(), "healthd.sock")
	n := startAgentNode(t, catalogdtest.Start(t), func(c *Config) { c.HealthdSocket = hsock })
	ag := n.api.Agent()
	if err := ag.ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatal(err)
	}
	catalogStatus := func() (string, string) {
		t.Helper()
		hc, _, err := n.api.Health().Checks("web", nil)
		if err != nil || len(hc) != 1 {
			t.Fatalf("health checks: %+v %v", hc, err)
		}
		return hc[0].Status, hc[0].Output
	}

	// healthd down: the update still holds, in the agent and the catalog.
	if err := ag.UpdateTTL("web-ttl", "all good", "pass"); err != nil {
		t.Fatal(err)
	}
	if s, o := catalogStatus(); s != "passing" || o != "all good" {
		t.Fatalf("catalog after UpdateTTL: %s %q", s, o)
	}

	// healthd up: it is told, so it re-arms its timer.
	fh := serveHealthd(t, hsock)
	for _, step := range []struct {
		call   func() error
		status string
		output string
	}{
		{func() error { return ag.FailTTL("web-ttl", "down") }, "critical", "down"},
		{func() error { return ag.WarnTTL("web-ttl", "slow") }, "warning", "slow"},
		{func() error { return ag.PassTTL("web-ttl", "") }, "passing", ""},
		{func() error { return ag.UpdateTTL("web-ttl", "again", "fail") }, "critical", "again"},
	} {
		if err := step.call(); err != nil {
			t.Fatal(err)
		}
		if s, o := catalogStatus(); s != step.status || o != step.output {
			t.Errorf("catalog %s %q, want %s %q", s, o, step.status, step.output)
		}
		calls := fh.calls()
		if len(calls) == 0 || calls[len(calls)-1] != (healthapi.UpdateTTLRequest{CheckID: "web-ttl", Status: step.status, Output: step.output}) {
			t.Errorf("healthd told %+v, want %s %q", calls, step.status, step.output)
		}
	}
	checks, _ := ag.Checks()
	if c := checks["web-ttl"]; c.Status != "critical" || c.Output != "again" {
		t.Errorf("agent check %+v", c)
	}
}

func TestAgentMaintenanceAndHealth(t *testing.T) {
	n := startAgentNode(t, catalogdtest.Start(t))
	ag := n.api.Agent()
	for _, name := range []string{"web", "db"} {
		if err := ag.ServiceRegister(ttlRegistration(name)); err != nil {
			t.Fatal(err)
		}
	}
	reg := ttlRegistration("web")
	reg.ID = "web-2"
	reg.Check.CheckID = "web-2-ttl"
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-ttl", "web-2-ttl", "db-ttl"} {
		if err := ag.PassTTL(id, ""); err != nil {
			t.Fatal(err)
		}
	}
	status, info, err := ag.AgentHealthServiceByID("web-1")
	if err != nil || status != "passing" || info.AggregatedStatus != "passing" || info.Service.ID != "web-1" || len(info.Checks) != 1 {
		t.Fatalf("health by id: %s %+v %v", status, info, err)
	}
	if err := ag.WarnTTL("web-2-ttl", ""); err != nil {
		t.Fatal(err)
	}
	status, infos, err := ag.AgentHealthServiceByName("web")
	if err != nil || status != "warning" || len(infos) != 2 {
		t.Fatalf("health by name: %s %+v %v", status, infos, err)
	}
	if code, _, body := n.do(t, "GET", "/v1/agent/health/service/id/web-2?format=text", nil); code != 429 || body != "warning" {
		t.Errorf("text health: %d %q", code, body)
	}
	if status, info, err := ag.AgentHealthServiceByID("nope"); err != nil || status != "critical" || info != nil {
		t.Errorf("health of unknown id: %s %+v %v", status, info, err)
	}

	// Service maintenance: critical check with the reason, out of passing
	// health results, 503 locally.
	if err := ag.EnableServiceMaintenance("web-1", "deploying"); err != nil {
		t.Fatal(err)
	}
	checks, _ := ag.Checks()
	mc := checks["_service_maintenance:web-1"]
	if mc == nil || mc.Status != "critical" || mc.Notes != "deploying" || mc.Name != "Service Maintenance Mode" || mc.ServiceID != "web-1" {
		t.Fatalf("service maintenance check: %+v", mc)
	}
	entries, _, err := n.api.Health().Service("web", "", true, nil)
	if err != nil || len(entries) != 0 {
		t.Errorf("passing web instances during maintenance: %+v %v (web-2 warns, web-1 in maintenance)", entries, err)
	}
	if code, _, body := n.do(t, "GET", "/v1/agent/health/service/id/web-1?format=text", nil); code != 503 || body != "maintenance" {
		t.Errorf("text health in maintenance: %d %q", code, body)
	}
	if err := ag.DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}

	// Node maintenance hits every service on the node.
	if err := ag.EnableNodeMaintenance(""); err != nil {
		t.Fatal(err)
	}
	hc, _, err := n.api.Health().Node("node-1", nil)
	var found bool
	for _, c := range hc {
		if c.CheckID == "_node_maintenance" && c.Status == "critical" && strings.Contains(c.Notes, "no reason was provided") {
			found = true
		}
	}
	if err != nil || !found {
		t.Fatalf("node maintenance check in the catalog: %+v %v", hc, err)
	}
	if status, _, _ := ag.AgentHealthServiceByName("db"); status != "critical" {
		t.Errorf("db during node maintenance: %s", status)
	}
	if err := ag.DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := ag.AgentHealthServiceByName("db"); status != "passing" {
		t.Errorf("db after node maintenance: %s", status)
	}
	hc, _, _ = n.api.Health().Node("node-1", nil)
	for _, c := range hc {
		if c.CheckID == "_node_maintenance" {
			t.Errorf("node maintenance check left in the catalog")
		}
	}
}

func TestAgentAntiEntropy(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startAgentNode(t, raft)
	ctx := context.Background()
	if err := n.api.Agent().ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatal(err)
	}
	// An unchanged agent writes nothing on a periodic sync.
	before := raft.LastIndex()
	if err := n.d.agent.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	if after := raft.LastIndex(); after != before {
		t.Errorf("periodic sync of an unchanged agent wrote %d entries", after-before)
	}

	// Changed behind the agent's back through the catalog API: repaired.
	if _, err := n.api.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-1", ServiceID: "web-1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.Catalog().Register(&api.CatalogRegistration{
		Node: "node-1", Address: "127.0.0.1",
		Service: &api.AgentService{ID: "rogue", Service: "rogue"},
		Check:   &api.AgentCheck{CheckID: "rogue-check", Name: "rogue", ServiceID: "rogue", Status: "passing"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.d.agent.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	svcs, _, err := n.api.Catalog().NodeServiceList("node-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range svcs.Services {
		ids = append(ids, s.ID)
	}
	if len(ids) != 1 || ids[0] != "web-1" {
		t.Errorf("catalog services of node-1 after the repair: %v", ids)
	}
	// The node's record was overwritten without its meta: repaired too.
	if svcs.Node.Meta["rack"] != "r1" {
		t.Errorf("node meta not repaired: %+v", svcs.Node)
	}
	before = raft.LastIndex()
	if err := n.d.agent.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	if after := raft.LastIndex(); after != before {
		t.Errorf("sync after the repair wrote %d entries", after-before)
	}
}

func TestAgentWithoutLeader(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startAgentNode(t, raft)
	waitFor(t, "node registered", func() bool {
		nodes, _, _ := n.api.Catalog().Nodes(nil)
		return len(nodes) == 1
	})
	raft.SetLeader(false)
	// The agent takes the registration; the catalog gets it once a
	// leader is back, from the anti-entropy loop.
	if err := n.api.Agent().ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatalf("register without leader: %v", err)
	}
	if svcs, _ := n.api.Agent().Services(); svcs["web-1"] == nil {
		t.Fatal("agent lost the registration")
	}
	raft.SetLeader(true)
	waitFor(t, "service synced after the leader came back", func() bool {
		cs, _, _ := n.api.Catalog().Service("web", "", nil)
		return len(cs) == 1
	})
}

func TestAgentRestartKeepsState(t *testing.T) {
	raft := catalogdtest.Start(t)
	dir := t.TempDir()
	persist := func(c *Config) { c.AgentDir = dir }
	n := startAgentNode(t, raft, persist)
	if err := n.api.Agent().ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatal(err)
	}
	if err := n.api.Agent().PassTTL("web-ttl", "fine"); err != nil {
		t.Fatal(err)
	}
	n.stop()
	before := raft.LastIndex()

	m := startAgentNode(t, raft, persist)
	checks, err := m.api.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c := checks["web-ttl"]; c == nil || c.Status != "passing" || c.Output != "fine" {
		t.Fatalf("check after restart: %+v", c)
	}
	waitFor(t, "feed caught up", func() bool { return m.d.Applied() >= before })
	if err := m.d.agent.SyncFull(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := raft.LastIndex(); after != before {
		t.Errorf("restart wrote %d catalog entries; the catalog already matched", after-before)
	}
}

func TestAgentDefinitionFilesAndReload(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(web, []byte(`service {
  name = "web"
  port = 80
  tags = ["from-file"]
  check { ttl = "1m" }
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startAgentNode(t, catalogdtest.Start(t), func(c *Config) { c.ServiceDefinitions = []string{dir} })
	waitFor(t, "file service in the catalog", func() bool {
		cs, _, _ := n.api.Catalog().Service("web", "from-file", nil)
		return len(cs) == 1
	})
	if err := n.api.Agent().ServiceRegister(ttlRegistration("api")); err != nil {
		t.Fatal(err)
	}

	// A broken file fails the reload with file and line; nothing changes.
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{\n \"service\": {\"name\": \"x\", \"prot\": 1}\n}"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := n.api.Agent().Reload()
	if err == nil || !strings.Contains(err.Error(), "bad.json:2") {
		t.Fatalf("reload with a bad file: %v", err)
	}
	os.Remove(filepath.Join(dir, "bad.json"))

	os.Remove(web)
	if err := n.api.Agent().Reload(); err != nil {
		t.Fatal(err)
	}
	if cs, _, _ := n.api.Catalog().Service("web", "", nil); len(cs) != 0 {
		t.Errorf("web still in the catalog after its file was removed: %+v", cs)
	}
	if cs, _, _ := n.api.Catalog().Service("api", "", nil); len(cs) != 1 {
		t.Errorf("API service lost by reload: %+v", cs)
	}
	if err := n.d.Reload(); err != nil {
		t.Fatal(err)
	}

	// A bad definition at start-up fails New, naming the file.
	os.WriteFile(filepath.Join(dir, "worse.hcl"), []byte("service {\n  port = 1\n}\n"), 0o600)
	cfg := Config{Raft: catalogdtest.Start(t).Client(), ServiceDefinitions: []string{dir}}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "worse.hcl:1") {
		t.Errorf("New with a bad definition file: %v", err)
	}
}

func TestAgentSelfAndRouting(t *testing.T) {
	n := startAgentNode(t, catalogdtest.Start(t))
	self, err := n.api.Agent().Self()
	if err != nil || self["Config"]["NodeName"] != "node-1" || self["Meta"]["rack"] != "r1" {
		t.Fatalf("self: %v %v", self, err)
	}
	code, _, body := n.do(t, http.MethodGet, "/v1/agent/services?pretty", nil)
	var m map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || !strings.Contains(body, "\n") {
		t.Errorf("services: %d %q", code, body)
	}
}
