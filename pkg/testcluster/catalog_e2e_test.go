package testcluster

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/hashicorp/consul/api"
)

// catalogFleet registers, through the Consul client, three nodes and
// five service instances across them (the nodes' names start with "e2e-",
// so whatever else the cluster registers about itself is told apart):
//
//	node   meta           services (tags; meta)                check
//	e2e-a  env=prod r=1   web-1 (v1 primary; version=1)         passing
//	e2e-b  env=prod r=2   web-2 (v2; version=2), db-1 (primary)  critical, none
//	e2e-c  env=dev  r=1   web-3 (v1; version=1)                 warning
func catalogFleet(t *testing.T, c *api.Client) {
	t.Helper()
	v1, v2 := map[string]string{"version": "1"}, map[string]string{"version": "2"}
	reg := func(node, addr, env, rack string, s *api.AgentService, status string) {
		r := &api.CatalogRegistration{Node: node, Address: addr,
			NodeMeta:        map[string]string{"env": env, "r": rack},
			TaggedAddresses: map[string]string{"lan": addr, "wan": "198.18.0." + addr[len(addr)-1:]},
			Service:         s}
		if status != "" {
			r.Check = &api.AgentCheck{CheckID: "check:" + s.ID, Name: s.ID + " alive", ServiceID: s.ID, Status: status}
		}
		if _, err := c.Catalog().Register(r, nil); err != nil {
			t.Fatalf("register %s on %s: %v", s.ID, node, err)
		}
	}
	reg("e2e-a", "10.1.0.1", "prod", "1", &api.AgentService{ID: "web-1", Service: "web", Port: 8080, Tags: []string{"v1", "primary"}, Meta: v1}, "passing")
	reg("e2e-b", "10.1.0.2", "prod", "2", &api.AgentService{ID: "web-2", Service: "web", Port: 8080, Tags: []string{"v2"}, Meta: v2,
		Address: "10.1.9.2", TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.1.9.2", Port: 8080}}}, "critical")
	reg("e2e-b", "10.1.0.2", "prod", "2", &api.AgentService{ID: "db-1", Service: "db", Port: 5432, Tags: []string{"primary"}}, "")
	reg("e2e-c", "10.1.0.3", "dev", "1", &api.AgentService{ID: "web-3", Service: "web", Port: 9090, Tags: []string{"v1"}, Meta: v1}, "warning")
}

func serviceIDs(es []*api.ServiceEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Service.ID)
	}
	return out
}

// TestCatalogE2E: over a real one-node cluster and the Consul client,
// /v1/catalog/register and /deregister round-trip node meta, tagged
// addresses and service meta; ?node-meta, repeated ?tag and ?filter each
// narrow answers as Consul's do (issue 4, point 3); and every change is
// announced on NATS with its raft index.
func TestCatalogE2E(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)

	nc, err := bus.Connect(c.NATSURL(), "catalog-e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(bus.Subjects{}.CatalogService("web"))
	if err != nil {
		t.Fatal(err)
	}
	health, err := nc.SubscribeSync(bus.Subjects{}.Health("web"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	catalogFleet(t, client)

	// Round trip through every read.
	svcs, meta, err := client.Catalog().Service("web", "", nil)
	if err != nil || len(svcs) != 3 || meta.LastIndex == 0 {
		t.Fatalf("catalog web = %d, %+v, %v", len(svcs), meta, err)
	}
	w2 := svcs[1]
	if w2.ServiceID != "web-2" || w2.Node != "e2e-b" || w2.Address != "10.1.0.2" || w2.Datacenter != "dc1" ||
		!reflect.DeepEqual(w2.NodeMeta, map[string]string{"env": "prod", "r": "2"}) ||
		!reflect.DeepEqual(w2.TaggedAddresses, map[string]string{"lan": "10.1.0.2", "wan": "198.18.0.2"}) ||
		!reflect.DeepEqual(w2.ServiceMeta, map[string]string{"version": "2"}) || w2.ServiceAddress != "10.1.9.2" ||
		w2.ServiceTaggedAddresses["lan"].Port != 8080 || !reflect.DeepEqual(w2.ServiceTags, []string{"v2"}) {
		t.Fatalf("catalog web-2 = %+v", w2)
	}
	node, _, err := client.Catalog().Node("e2e-b", nil)
	if err != nil || node == nil || len(node.Services) != 2 || node.Node.Meta["r"] != "2" || node.Services["db-1"].Port != 5432 {
		t.Fatalf("catalog node e2e-b = %+v, %v", node, err)
	}

	// Each narrowing, as Consul answers it.
	prod := map[string]string{"env": "prod"}
	for _, tt := range []struct {
		name string
		q    *api.QueryOptions
		tags []string
		pass bool
		want []string
	}{
		{"all", nil, nil, false, []string{"web-1", "web-2", "web-3"}},
		{"node-meta", &api.QueryOptions{NodeMeta: prod}, nil, false, []string{"web-1", "web-2"}},
		{"two node-meta", &api.QueryOptions{NodeMeta: map[string]string{"env": "prod", "r": "1"}}, nil, false, []string{"web-1"}},
		{"tag", nil, []string{"v1"}, false, []string{"web-1", "web-3"}},
		{"tags AND", nil, []string{"v1", "primary"}, false, []string{"web-1"}},
		{"passing", nil, nil, true, []string{"web-1"}},
		{"filter meta", &api.QueryOptions{Filter: `Service.Meta.version == "1" and Node.Meta.env == prod`}, nil, false, []string{"web-1"}},
		{"filter checks", &api.QueryOptions{Filter: `Checks.Status != passing`}, nil, false, []string{"web-2", "web-3"}},
		{"filter tags", &api.QueryOptions{Filter: `"v2" in Service.Tags`}, nil, false, []string{"web-2"}},
	} {
		es, _, err := client.Health().ServiceMultipleTags("web", tt.tags, tt.pass, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := serviceIDs(es); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("health web %s = %v, want %v", tt.name, got, tt.want)
		}
	}
	nodes, _, err := client.Catalog().Nodes(&api.QueryOptions{Filter: `Node matches "^e2e-" and Meta.r == "1"`})
	if err != nil || len(nodes) != 2 || nodes[0].Node != "e2e-a" || nodes[1].Node != "e2e-c" {
		t.Fatalf("nodes filter = %+v, %v", nodes, err)
	}
	services, _, err := client.Catalog().Services(&api.QueryOptions{NodeMeta: map[string]string{"env": "dev"}})
	if err != nil || !reflect.DeepEqual(services, map[string][]string{"web": {"v1"}}) {
		t.Fatalf("services node-meta env=dev = %v, %v", services, err)
	}
	tagged, _, err := client.Catalog().ServiceMultipleTags("web", []string{"v1", "primary"}, nil)
	if err != nil || len(tagged) != 1 || tagged[0].ServiceID != "web-1" {
		t.Fatalf("catalog tags AND = %+v, %v", tagged, err)
	}

	// Deregistration: the instance and its check go, the node stays.
	if _, err := client.Catalog().Deregister(&api.CatalogDeregistration{Node: "e2e-b", ServiceID: "web-2"}, nil); err != nil {
		t.Fatal(err)
	}
	es, _, err := client.Health().Service("web", "", false, nil)
	if err != nil || !reflect.DeepEqual(serviceIDs(es), []string{"web-1", "web-3"}) {
		t.Fatalf("after deregister: %v, %v", serviceIDs(es), err)
	}
	if checks, _, err := client.Health().Node("e2e-b", nil); err != nil || len(checks) != 0 {
		t.Fatalf("web-2's check outlived it: %+v, %v", checks, err)
	}

	// The bus saw web's instances come and go, with raft indexes.
	var ops []string
	for len(ops) < 4 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("catalog.service.web events so far %v: %v", ops, err)
		}
		var ev bus.CatalogService
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Kind != bus.KindCatalogService || ev.Index == 0 {
			t.Fatalf("event %s: %+v, %v", m.Data, ev, err)
		}
		ops = append(ops, ev.Op+" "+ev.ServiceID)
	}
	if want := []string{"register web-1", "register web-2", "register web-3", "deregister web-2"}; !slices.Equal(ops, want) {
		t.Fatalf("catalog.service.web events = %v, want %v", ops, want)
	}
	m, err := health.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var hev bus.Health
	if err := json.Unmarshal(m.Data, &hev); err != nil || hev.Kind != bus.KindHealth || hev.CheckID != "check:web-1" || hev.NewStatus != "passing" {
		t.Fatalf("first health.web event %s: %v", m.Data, err)
	}
}

// TestHealthBlockingE2E: over a real one-node cluster, a blocking
// /v1/health/service/web returns when a web instance changes health and
// not when another service changes, and a blocking query on a service
// that does not exist blocks instead of spinning (issue 4, point 4).
func TestHealthBlockingE2E(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)
	catalogFleet(t, client)

	type result struct {
		index uint64
		ids   []string
		err   error
	}
	block := func(service string, index uint64, wait time.Duration) <-chan result {
		ch := make(chan result, 1)
		go func() {
			es, meta, err := client.Health().Service(service, "", true, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
			r := result{ids: serviceIDs(es), err: err}
			if meta != nil {
				r.index = meta.LastIndex
			}
			ch <- r
		}()
		return ch
	}
	_, meta, err := client.Health().Service("web", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := meta.LastIndex

	// db changes and a new service appears: web's query sits out its wait.
	ch := block("web", idx, time.Second)
	if _, err := client.Catalog().Register(&api.CatalogRegistration{Node: "e2e-b", Address: "10.1.0.2", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "db-1", Service: "db", Port: 5433}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Catalog().Register(&api.CatalogRegistration{Node: "e2e-c", Address: "10.1.0.3", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "cache-1", Service: "cache"}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.err != nil || r.index != idx || !slices.Equal(r.ids, []string{"web-1"}) {
		t.Fatalf("web query after unrelated writes: %+v (index was %d)", r, idx)
	}

	// web-2 turns passing: the query returns at once with it.
	ch = block("web", idx, 5*time.Minute)
	if _, err := client.Catalog().Register(&api.CatalogRegistration{Node: "e2e-b", Address: "10.1.0.2", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "check:web-2", Name: "web-2 alive", ServiceID: "web-2", Status: "passing"}}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || r.index <= idx || !slices.Equal(r.ids, []string{"web-1", "web-2"}) {
			t.Fatalf("web query after web-2 turned passing: %+v (index was %d)", r, idx)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("blocking health query did not return after web-2's check changed")
	}

	// A missing service: the index is not 0 and does not move with other
	// writes, so the query waits its full time each round.
	_, meta, err = client.Health().Service("ghost", "", false, nil)
	if err != nil || meta.LastIndex == 0 {
		t.Fatalf("ghost: %+v, %v", meta, err)
	}
	gidx := meta.LastIndex
	ch = block("ghost", gidx, time.Second)
	start := time.Now()
	for i := 0; time.Since(start) < 500*time.Millisecond; i++ {
		if _, err := client.Catalog().Register(&api.CatalogRegistration{Node: "e2e-a", Address: "10.1.0.1", SkipNodeUpdate: true,
			Service: &api.AgentService{ID: "web-1", Service: "web", Port: 8080 + i%2, Tags: []string{"v1", "primary"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if r := <-ch; r.err != nil || r.index != gidx || len(r.ids) != 0 {
		t.Fatalf("ghost query after unrelated writes: %+v (index was %d)", r, gidx)
	}
}
