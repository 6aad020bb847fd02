package catalogd

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/hashicorp/consul/api"
)

// fleet registers three nodes and five service instances:
//
//	node  meta             services (tags; meta)                  checks
//	a     env=prod rack=1  web-1 (v1 primary; version=1)          web-1 passing
//	b     env=prod rack=2  web-2 (v2; version=2), db-1 (primary)  web-2 critical, node-level "disk" passing
//	c     env=dev  rack=1  web-3 (v1; version=1) port 9090        web-3 warning
func fleet(t *testing.T, n *node) {
	t.Helper()
	svc := func(id string, port int, meta map[string]string, tags ...string) *api.AgentService {
		name, _, _ := strings.Cut(id, "-")
		return &api.AgentService{ID: id, Service: name, Port: port, Tags: tags, Meta: meta}
	}
	chk := func(id, status string) *api.AgentCheck {
		return &api.AgentCheck{CheckID: "check:" + id, Name: id, ServiceID: id, Status: status}
	}
	v1, v2 := map[string]string{"version": "1"}, map[string]string{"version": "2"}
	for _, r := range []*api.CatalogRegistration{
		{Node: "a", Address: "10.0.0.1", NodeMeta: map[string]string{"env": "prod", "rack": "1"}, Service: svc("web-1", 8080, v1, "v1", "primary"), Check: chk("web-1", "passing")},
		{Node: "b", Address: "10.0.0.2", NodeMeta: map[string]string{"env": "prod", "rack": "2"}, Service: svc("web-2", 8080, v2, "v2"), Check: chk("web-2", "critical")},
		{Node: "b", Address: "10.0.0.2", NodeMeta: map[string]string{"env": "prod", "rack": "2"}, Service: svc("db-1", 5432, nil, "primary"),
			Checks: api.HealthChecks{{CheckID: "disk", Name: "disk", Status: "passing"}}},
		{Node: "c", Address: "10.0.0.3", NodeMeta: map[string]string{"env": "dev", "rack": "1"}, Service: svc("web-3", 9090, v1, "v1"), Check: chk("web-3", "warning")},
	} {
		n.register(t, r)
	}
}

// TestCatalogNarrowing: ?node-meta, repeated ?tag and ?filter each narrow
// the catalog and health answers as Consul's do.
func TestCatalogNarrowing(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	fleet(t, n)
	prod := &api.QueryOptions{NodeMeta: map[string]string{"env": "prod"}}
	prodRack1 := &api.QueryOptions{NodeMeta: map[string]string{"env": "prod", "rack": "1"}}
	filter := func(f string) *api.QueryOptions { return &api.QueryOptions{Filter: f} }

	nodeNames := func(q *api.QueryOptions) []string {
		nodes, _, err := n.api.Catalog().Nodes(q)
		if err != nil {
			t.Fatalf("nodes %+v: %v", q, err)
		}
		var out []string
		for _, x := range nodes {
			out = append(out, x.Node)
		}
		return out
	}
	catalogIDs := func(tags []string, q *api.QueryOptions) []string {
		svcs, _, err := n.api.Catalog().ServiceMultipleTags("web", tags, q)
		if err != nil {
			t.Fatalf("catalog service web %v %+v: %v", tags, q, err)
		}
		var out []string
		for _, s := range svcs {
			out = append(out, s.ServiceID)
		}
		return out
	}
	healthIDs := func(service string, tags []string, passing bool, q *api.QueryOptions) []string {
		es, _, err := n.api.Health().ServiceMultipleTags(service, tags, passing, q)
		if err != nil {
			t.Fatalf("health service %s %v %+v: %v", service, tags, q, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Service.ID)
		}
		return out
	}
	serviceNames := func(q *api.QueryOptions) []string {
		m, _, err := n.api.Catalog().Services(q)
		if err != nil {
			t.Fatalf("services %+v: %v", q, err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range []struct {
		name      string
		got, want []string
	}{
		{"nodes", nodeNames(nil), []string{"a", "b", "c"}},
		{"nodes node-meta", nodeNames(prod), []string{"a", "b"}},
		{"nodes two node-meta", nodeNames(prodRack1), []string{"a"}},
		{"nodes filter", nodeNames(filter(`Meta.rack == "1"`)), []string{"a", "c"}},
		{"nodes filter address", nodeNames(filter(`Address matches "^10\\.0\\.0\\.[23]$" and Meta.env != dev`)), []string{"b"}},
		{"services node-meta", serviceNames(&api.QueryOptions{NodeMeta: map[string]string{"env": "dev"}}), []string{"web"}},
		{"services filter", serviceNames(filter(`"primary" in ServiceTags`)), []string{"db", "web"}},
		{"services filter port", serviceNames(filter(`ServicePort == 5432`)), []string{"db"}},
		{"catalog web", catalogIDs(nil, nil), []string{"web-1", "web-2", "web-3"}},
		{"catalog tag", catalogIDs([]string{"v1"}, nil), []string{"web-1", "web-3"}},
		{"catalog tags AND", catalogIDs([]string{"v1", "primary"}, nil), []string{"web-1"}},
		{"catalog tags none", catalogIDs([]string{"v1", "v2"}, nil), nil},
		{"catalog node-meta", catalogIDs(nil, prod), []string{"web-1", "web-2"}},
		{"catalog filter", catalogIDs(nil, filter(`ServiceMeta.version == "1" and NodeMeta.env == prod`)), []string{"web-1"}},
		{"catalog filter missing key", catalogIDs(nil, filter(`ServiceMeta.nope != x`)), []string{"web-1", "web-2", "web-3"}},
		{"health web", healthIDs("web", nil, false, nil), []string{"web-1", "web-2", "web-3"}},
		{"health passing", healthIDs("web", nil, true, nil), []string{"web-1"}},
		{"health tags AND", healthIDs("web", []string{"primary", "v1"}, false, nil), []string{"web-1"}},
		{"health node-meta", healthIDs("web", nil, false, prod), []string{"web-1", "web-2"}},
		{"health filter checks", healthIDs("web", nil, false, filter(`Checks.Status == critical`)), []string{"web-2"}},
		{"health filter checks any", healthIDs("db", nil, false, filter(`Checks.CheckID == disk`)), []string{"db-1"}},
		{"health filter node", healthIDs("web", nil, false, filter(`Node.Meta.rack == "1" and Service.Port == 8080`)), []string{"web-1"}},
		{"health filter tags", healthIDs("web", nil, false, filter(`v2 in Service.Tags or Service.Meta.version == "1"`)), []string{"web-1", "web-2", "web-3"}},
		{"health filter not", healthIDs("web", nil, false, filter(`not (Service.Tags contains v1)`)), []string{"web-2"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	// Checks endpoints: node-meta and filter.
	checkIDs := func(checks api.HealthChecks, err error) []string {
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range checks {
			out = append(out, c.CheckID)
		}
		return out
	}
	get := func(c api.HealthChecks, _ *api.QueryMeta, err error) []string { return checkIDs(c, err) }
	for _, tt := range []struct {
		name      string
		got, want []string
	}{
		{"checks web", get(n.api.Health().Checks("web", nil)), []string{"check:web-1", "check:web-2", "check:web-3"}},
		{"checks web node-meta", get(n.api.Health().Checks("web", prod)), []string{"check:web-1", "check:web-2"}},
		{"checks web filter", get(n.api.Health().Checks("web", filter(`Status != passing`))), []string{"check:web-2", "check:web-3"}},
		{"state critical", get(n.api.Health().State("critical", nil)), []string{"check:web-2"}},
		{"state passing node-meta", get(n.api.Health().State("passing", &api.QueryOptions{NodeMeta: map[string]string{"rack": "2"}})), []string{"disk"}},
		{"state any filter", get(n.api.Health().State("any", filter(`ServiceName == ""`))), []string{"disk"}},
		{"node b", get(n.api.Health().Node("b", nil)), []string{"check:web-2", "disk"}},
		{"node b filter", get(n.api.Health().Node("b", filter(`CheckID matches "^check:"`))), []string{"check:web-2"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// The Consul client refuses unknown states itself; Consul answers [].
	if code, _, body := n.do(t, "GET", "/v1/health/state/sideways", nil); code != 200 || body != "[]" {
		t.Errorf("state sideways = %d %q, want 200 []", code, body)
	}
	list, _, err := n.api.Catalog().NodeServiceList("b", filter(`Service == db`))
	if err != nil || len(list.Services) != 1 || list.Services[0].ID != "db-1" {
		t.Fatalf("node-services filter = %+v, %v", list, err)
	}
	cn, _, err := n.api.Catalog().Node("b", filter(`Port == 8080`))
	if err != nil || len(cn.Services) != 1 || cn.Services["web-2"] == nil {
		t.Fatalf("node filter = %+v, %v", cn, err)
	}
	// The health answer for db on b carries the node-level check.
	es, _, err := n.api.Health().Service("db", "", false, nil)
	if err != nil || len(es) != 1 || len(es[0].Checks) != 1 || es[0].Checks[0].CheckID != "disk" {
		t.Fatalf("db health = %+v, %v", es, err)
	}
	// ?near is accepted and changes nothing yet.
	code, _, body := n.do(t, "GET", "/v1/catalog/service/web?near=_agent", nil)
	if code != 200 || strings.Count(body, `"ServiceID"`) != 3 {
		t.Fatalf("near = %d %s", code, body)
	}
}

// blockingHealth runs a blocking /v1/health/service/<s> read in the
// background and delivers its result.
func blockingHealth(n *node, service string, index uint64, wait time.Duration) <-chan blockResult {
	ch := make(chan blockResult, 1)
	go func() {
		es, meta, err := n.api.Health().Service(service, "", false, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		r := blockResult{entries: es, err: err}
		if meta != nil {
			r.index = meta.LastIndex
		}
		ch <- r
	}()
	return ch
}

type blockResult struct {
	entries []*api.ServiceEntry
	index   uint64
	err     error
}

// TestHealthServiceBlocking: a blocking /v1/health/service/web returns
// when a web instance's health changes, and a change to another service
// does not wake it (issue 4, point 4).
func TestHealthServiceBlocking(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	fleet(t, n)
	_, meta, err := n.api.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := meta.LastIndex

	// Unrelated: db's instance changes, and a new service appears. The
	// query runs out its wait (1 s + jitter) and answers the same index.
	ch := blockingHealth(n, "web", idx, time.Second)
	n.register(t, &api.CatalogRegistration{Node: "b", Address: "10.0.0.2", NodeMeta: map[string]string{"env": "prod", "rack": "2"},
		Service: &api.AgentService{ID: "db-1", Service: "db", Port: 5433}})
	n.register(t, &api.CatalogRegistration{Node: "c", Address: "10.0.0.3", NodeMeta: map[string]string{"env": "dev", "rack": "1"},
		Service: &api.AgentService{ID: "cache-1", Service: "cache", Port: 6379}})
	r := <-ch
	if r.err != nil || r.index != idx || len(r.entries) != 3 {
		t.Fatalf("after unrelated writes: index %d (was %d), %d entries, %v", r.index, idx, len(r.entries), r.err)
	}
	if raft.LastIndex() <= idx {
		t.Fatalf("raft did not move: %d", raft.LastIndex())
	}

	// Related: web-2's check turns passing. The query returns with a
	// higher index and the new status, well before its 5 minute wait.
	ch = blockingHealth(n, "web", idx, 5*time.Minute)
	n.register(t, &api.CatalogRegistration{Node: "b", Address: "10.0.0.2", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "check:web-2", Name: "web-2", ServiceID: "web-2", Status: "passing"}})
	select {
	case r = <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("blocking health query did not return after a web check changed")
	}
	if r.err != nil || r.index <= idx {
		t.Fatalf("after web check change: index %d (was %d), %v", r.index, idx, r.err)
	}
	for _, e := range r.entries {
		if e.Service.ID == "web-2" && e.Checks.AggregatedStatus() != "passing" {
			t.Fatalf("web-2 is %s after the change", e.Checks.AggregatedStatus())
		}
	}

	// A node-level check on b changes web-2's health too.
	idx = r.index
	ch = blockingHealth(n, "web", idx, 5*time.Minute)
	n.register(t, &api.CatalogRegistration{Node: "b", Address: "10.0.0.2", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "disk", Name: "disk", Status: "critical"}})
	select {
	case r = <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("blocking health query did not return after a node check changed")
	}
	if r.err != nil || r.index <= idx {
		t.Fatalf("after node check change: index %d (was %d), %v", r.index, idx, r.err)
	}
}

// TestHealthMissingServiceBlocks: a blocking query on a service that does
// not exist waits (index never 0, unchanged by unrelated writes) instead
// of returning at once, which would make a client spin; registering the
// service wakes it.
func TestHealthMissingServiceBlocks(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	fleet(t, n)
	for _, path := range []string{"/v1/health/service/ghost", "/v1/catalog/service/ghost", "/v1/health/checks/ghost"} {
		code, h, body := n.do(t, "GET", path, nil)
		if code != 200 || body != "[]" || h.Get("X-Consul-Index") == "" || h.Get("X-Consul-Index") == "0" {
			t.Fatalf("GET %s = %d %q index %q", path, code, body, h.Get("X-Consul-Index"))
		}
	}
	_, meta, err := n.api.Health().Service("ghost", "", false, nil)
	if err != nil || meta.LastIndex == 0 {
		t.Fatalf("ghost: %+v %v", meta, err)
	}
	idx := meta.LastIndex

	// Count how often the server answers while unrelated writes go on: a
	// spinning query would answer at every write.
	calls := 0
	stop := time.Now().Add(1500 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; time.Now().Before(stop); i++ {
			_, err := n.api.Catalog().Register(&api.CatalogRegistration{Node: "a", Address: "10.0.0.1", NodeMeta: map[string]string{"env": "prod", "rack": "1"},
				Service: &api.AgentService{ID: "web-1", Service: "web", Port: 8000 + i%100}}, nil)
			if err != nil {
				t.Errorf("unrelated write: %v", err)
				return
			}
		}
	}()
	for time.Now().Before(stop) {
		_, m, err := n.api.Health().Service("ghost", "", false, &api.QueryOptions{WaitIndex: idx, WaitTime: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		calls++
		if m.LastIndex != idx {
			t.Fatalf("missing service index moved %d -> %d on unrelated writes", idx, m.LastIndex)
		}
	}
	<-done
	if calls > 4 {
		t.Fatalf("blocking query on a missing service answered %d times in 1.5 s of 500 ms waits: it spins", calls)
	}

	ch := blockingHealth(n, "ghost", idx, 5*time.Minute)
	n.register(t, &api.CatalogRegistration{Node: "c", Address: "10.0.0.3", Service: &api.AgentService{ID: "ghost-1", Service: "ghost"}})
	select {
	case r := <-ch:
		if r.err != nil || r.index <= idx || len(r.entries) != 1 {
			t.Fatalf("after registering ghost: %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("registering the missing service did not wake its blocking query")
	}
}

// TestHealthQueryParams: ?passing forms and bad parameters.
func TestHealthQueryParams(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	fleet(t, n)
	for q, want := range map[string]int{"passing": 1, "passing=": 1, "passing=true": 1, "passing=1": 1, "passing=false": 3, "passing=0": 3, "": 3} {
		_, _, body := n.do(t, "GET", "/v1/health/service/web?"+q, nil)
		if got := strings.Count(body, `"Service":{`); got != want {
			t.Errorf("?%s: %d entries, want %d", q, got, want)
		}
	}
	for _, q := range []string{"stale&consistent", "wait=forever&index=1", "filter=" + url.QueryEscape(`ServiceTags == x`),
		"filter=" + url.QueryEscape(`Checks.Status ==`), "filter=" + url.QueryEscape(`Service.Port == abc`), "a=%zz"} {
		if code, _, body := n.do(t, "GET", "/v1/health/service/web?"+q, nil); code != 400 {
			t.Errorf("?%s = %d %q, want 400", q, code, body)
		}
	}
}
