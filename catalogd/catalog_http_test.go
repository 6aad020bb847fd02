package catalogd

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/hashicorp/consul/api"
)

// register registers through the Consul client and fails on error.
func (n *node) register(t *testing.T, reg *api.CatalogRegistration) {
	t.Helper()
	if _, err := n.api.Catalog().Register(reg, nil); err != nil {
		t.Fatalf("register %s/%v: %v", reg.Node, reg.Service, err)
	}
}

// TestCatalogRegisterRoundTrip: what /v1/catalog/register stores (node
// meta, tagged addresses, service meta and tagged addresses, a check with
// its definition) comes back through every catalog and health read, with
// Consul's field names, and /v1/catalog/deregister removes it.
func TestCatalogRegisterRoundTrip(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	reg := &api.CatalogRegistration{
		ID:              "40e4a748-2192-161a-0510-9bf59fe950b5",
		Node:            "t2.320",
		Address:         "192.168.10.10",
		TaggedAddresses: map[string]string{"lan": "192.168.10.10", "wan": "10.0.10.10"},
		NodeMeta:        map[string]string{"somekey": "somevalue"},
		Service: &api.AgentService{
			ID:      "redis1",
			Service: "redis",
			Tags:    []string{"primary", "v1"},
			Address: "127.0.0.1",
			TaggedAddresses: map[string]api.ServiceAddress{
				"lan": {Address: "127.0.0.1", Port: 8000},
				"wan": {Address: "198.18.0.1", Port: 80},
			},
			Meta:    map[string]string{"redis_version": "4.0"},
			Port:    8000,
			Weights: api.AgentWeights{Passing: 10, Warning: 1},
		},
		Check: &api.AgentCheck{
			CheckID:   "service:redis1",
			Name:      "Redis health check",
			Notes:     "Script based health check",
			Status:    api.HealthPassing,
			ServiceID: "redis1",
			Definition: api.HealthCheckDefinition{
				TCP:                                    "localhost:8888",
				IntervalDuration:                       5 * time.Second,
				TimeoutDuration:                        time.Second,
				DeregisterCriticalServiceAfterDuration: 30 * time.Second,
			},
		},
	}
	n.register(t, reg)

	nodes, meta, err := n.api.Catalog().Nodes(nil)
	if err != nil || len(nodes) != 1 || meta.LastIndex == 0 {
		t.Fatalf("nodes = %+v, %+v, %v", nodes, meta, err)
	}
	got := nodes[0]
	if got.ID != reg.ID || got.Node != reg.Node || got.Address != reg.Address || got.Datacenter != "dc1" ||
		!reflect.DeepEqual(got.TaggedAddresses, reg.TaggedAddresses) || !reflect.DeepEqual(got.Meta, reg.NodeMeta) ||
		got.CreateIndex == 0 || got.ModifyIndex < got.CreateIndex {
		t.Fatalf("node = %+v", got)
	}

	svcs, _, err := n.api.Catalog().Service("redis", "", nil)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("catalog service = %+v, %v", svcs, err)
	}
	s := svcs[0]
	if s.Node != reg.Node || s.Address != reg.Address || s.Datacenter != "dc1" || s.ID != reg.ID ||
		!reflect.DeepEqual(s.NodeMeta, reg.NodeMeta) || !reflect.DeepEqual(s.TaggedAddresses, reg.TaggedAddresses) ||
		s.ServiceID != "redis1" || s.ServiceName != "redis" || s.ServiceAddress != "127.0.0.1" || s.ServicePort != 8000 ||
		!reflect.DeepEqual(s.ServiceTags, reg.Service.Tags) || !reflect.DeepEqual(s.ServiceMeta, reg.Service.Meta) ||
		!reflect.DeepEqual(s.ServiceTaggedAddresses, reg.Service.TaggedAddresses) ||
		s.ServiceWeights != (api.Weights{Passing: 10, Warning: 1}) || s.CreateIndex == 0 {
		t.Fatalf("catalog service = %+v", s)
	}

	services, _, err := n.api.Catalog().Services(nil)
	if err != nil || !reflect.DeepEqual(services, map[string][]string{"redis": {"primary", "v1"}}) {
		t.Fatalf("services = %v, %v", services, err)
	}

	cn, _, err := n.api.Catalog().Node("t2.320", nil)
	if err != nil || cn == nil || cn.Node.Node != "t2.320" || len(cn.Services) != 1 {
		t.Fatalf("catalog node = %+v, %v", cn, err)
	}
	if as := cn.Services["redis1"]; as == nil || as.Service != "redis" || as.Port != 8000 ||
		!reflect.DeepEqual(as.Meta, reg.Service.Meta) || as.TaggedAddresses["wan"].Port != 80 || as.Weights.Passing != 10 {
		t.Fatalf("catalog node service = %+v", cn.Services)
	}
	list, _, err := n.api.Catalog().NodeServiceList("t2.320", nil)
	if err != nil || list.Node == nil || len(list.Services) != 1 || list.Services[0].ID != "redis1" {
		t.Fatalf("node service list = %+v, %v", list, err)
	}

	checks, _, err := n.api.Health().Node("t2.320", nil)
	if err != nil || len(checks) != 1 {
		t.Fatalf("health node = %+v, %v", checks, err)
	}
	c := checks[0]
	if c.CheckID != "service:redis1" || c.Name != "Redis health check" || c.Status != "passing" || c.Node != "t2.320" ||
		c.ServiceID != "redis1" || c.ServiceName != "redis" || c.Notes != reg.Check.Notes || c.Type != "tcp" ||
		c.Definition.TCP != "localhost:8888" || c.Definition.IntervalDuration != 5*time.Second ||
		c.Definition.TimeoutDuration != time.Second || c.Definition.DeregisterCriticalServiceAfterDuration != 30*time.Second {
		t.Fatalf("check = %+v, definition %+v", c, c.Definition)
	}
	entries, _, err := n.api.Health().Service("redis", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Node.Node != "t2.320" || entries[0].Service.ID != "redis1" ||
		len(entries[0].Checks) != 1 || entries[0].Checks.AggregatedStatus() != "passing" {
		t.Fatalf("health service = %+v, %v", entries, err)
	}

	// Deregister the service: its check goes with it, the node stays.
	if _, err := n.api.Catalog().Deregister(&api.CatalogDeregistration{Node: "t2.320", ServiceID: "redis1"}, nil); err != nil {
		t.Fatal(err)
	}
	if svcs, _, _ := n.api.Catalog().Service("redis", "", nil); len(svcs) != 0 {
		t.Fatalf("service after deregister: %+v", svcs)
	}
	if checks, _, _ := n.api.Health().Node("t2.320", nil); len(checks) != 0 {
		t.Fatalf("checks after service deregister: %+v", checks)
	}
	if nodes, _, _ := n.api.Catalog().Nodes(nil); len(nodes) != 1 {
		t.Fatalf("node gone with its service: %+v", nodes)
	}
	if _, err := n.api.Catalog().Deregister(&api.CatalogDeregistration{Node: "t2.320"}, nil); err != nil {
		t.Fatal(err)
	}
	if cn, _, err := n.api.Catalog().Node("t2.320", nil); err != nil || cn != nil {
		t.Fatalf("node after deregister = %+v, %v", cn, err)
	}

	// Empty answers are [] and {}, never null; a missing node is null.
	for path, want := range map[string]string{
		"/v1/catalog/nodes":                 "[]",
		"/v1/catalog/services":              "{}",
		"/v1/catalog/service/redis":         "[]",
		"/v1/catalog/node/t2.320":           "null",
		"/v1/catalog/node-services/t2.320":  `{"Node":null,"Services":[]}`,
		"/v1/health/node/t2.320":            "[]",
		"/v1/health/checks/redis":           "[]",
		"/v1/health/service/redis":          "[]",
		"/v1/health/state/any":              "[]",
		"/v1/catalog/datacenters":           `["dc1"]`,
		"/v1/catalog/service/redis?passing": "[]",
	} {
		code, h, body := n.do(t, "GET", path, nil)
		if code != 200 || body != want || (path != "/v1/catalog/datacenters" && h.Get("X-Consul-Index") == "") {
			t.Errorf("GET %s = %d %q (index %q), want 200 %q", path, code, body, h.Get("X-Consul-Index"), want)
		}
	}
}

// TestCatalogJSONFieldNames: the answers carry Consul's field names,
// including the ones the Consul client does not decode.
func TestCatalogJSONFieldNames(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	n.register(t, &api.CatalogRegistration{Node: "n1", Address: "10.0.0.1",
		Service: &api.AgentService{Service: "web", Port: 80},
		Check:   &api.AgentCheck{Name: "web alive", ServiceID: "web", Status: "critical", Definition: api.HealthCheckDefinition{HTTP: "http://10.0.0.1/", IntervalDuration: 10 * time.Second}}})
	keys := func(path string) []string {
		_, _, body := n.do(t, "GET", path, nil)
		var v []map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &v); err != nil || len(v) != 1 {
			t.Fatalf("GET %s: %q: %v", path, body, err)
		}
		var k []string
		for name := range v[0] {
			k = append(k, name)
		}
		slices.Sort(k)
		return k
	}
	for path, want := range map[string][]string{
		"/v1/catalog/service/web": {"Address", "CreateIndex", "Datacenter", "ID", "ModifyIndex", "Node", "NodeMeta",
			"ServiceAddress", "ServiceConnect", "ServiceEnableTagOverride", "ServiceID", "ServiceKind", "ServiceMeta",
			"ServiceName", "ServicePort", "ServiceProxy", "ServiceTags", "ServiceWeights", "TaggedAddresses"},
		"/v1/health/checks/web": {"CheckID", "CreateIndex", "Definition", "ExposedPort", "Interval", "ModifyIndex", "Name",
			"Node", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Status", "Timeout", "Type"},
		"/v1/health/service/web": {"Checks", "Node", "Service"},
	} {
		if got := keys(path); !reflect.DeepEqual(got, want) {
			t.Errorf("GET %s fields = %v\nwant %v", path, got, want)
		}
	}
	_, _, body := n.do(t, "GET", "/v1/health/checks/web", nil)
	for _, want := range []string{`"Status":"critical"`, `"Interval":"10s"`, `"Definition":{"HTTP":"http://10.0.0.1/","Interval":"10s"}`, `"ServiceTags":[]`, `"Type":"http"`} {
		if !strings.Contains(body, want) {
			t.Errorf("health checks %s lacks %s", body, want)
		}
	}
}

// TestCatalogWriteErrors: Consul's statuses and words for bad writes.
func TestCatalogWriteErrors(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	for _, tt := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"PUT", "/v1/catalog/register", `{"Address":"1.2.3.4"}`, 500, "Must provide node"},
		{"PUT", "/v1/catalog/register", `{"Node":"n1"}`, 500, "Must provide address if SkipNodeUpdate is not set"},
		{"PUT", "/v1/catalog/register", `{"Node":"n1","Address":"1.2.3.4","ID":"nope"}`, 500, "Bad node ID: uuid string is wrong length"},
		{"PUT", "/v1/catalog/register", `{"Node":"n1","Address":"1.2.3.4","Datacenter":"dc9"}`, 500, "No path to datacenter"},
		{"PUT", "/v1/catalog/register", `{"Node":"n1","Address":"1.2.3.4","Check":{"Name":"c","ServiceID":"nosuch"}}`, 500, "Unknown service ID 'nosuch' for check ID 'c'"},
		{"PUT", "/v1/catalog/register", `{"Node":`, 400, "Request decode failed: unexpected EOF"},
		{"PUT", "/v1/catalog/register", `{"Node":"n1","Address":"1.2.3.4","Check":{"Name":"c","Definition":{"Interval":"soon"}}}`, 400, "Request decode failed: "},
		{"PUT", "/v1/catalog/register", ``, 400, "Request decode failed: EOF"},
		{"GET", "/v1/catalog/register", ``, 405, "method GET not allowed"},
		{"PUT", "/v1/catalog/deregister", `{}`, 500, "Must provide node"},
		{"POST", "/v1/catalog/nodes", ``, 405, "method POST not allowed"},
		{"GET", "/v1/catalog/nodes?dc=dc2", ``, 500, "No path to datacenter"},
		{"GET", "/v1/catalog/service/", ``, 400, "Missing service name"},
		{"GET", "/v1/catalog/node/", ``, 400, "Missing node name"},
		{"GET", "/v1/health/state/", ``, 400, "Missing check state"},
		{"GET", "/v1/health/service/web?passing=maybe", ``, 400, "Invalid value for ?passing"},
		{"GET", "/v1/health/service/web?index=x", ``, 400, "Invalid index"},
		{"GET", "/v1/health/service/web?filter=Nope==1", ``, 400, `Failed to create boolean expression evaluator: Selector "Nope" is not valid`},
		{"GET", "/v1/catalog/nope", ``, 404, "Unknown endpoint"},
	} {
		code, _, body := n.do(t, tt.method, tt.path, strings.NewReader(tt.body))
		if code != tt.code || !strings.HasPrefix(body, tt.msg) {
			t.Errorf("%s %s %s = %d %q, want %d %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.msg)
		}
	}
	if nodes, _, _ := n.api.Catalog().Nodes(nil); len(nodes) != 0 {
		t.Fatalf("refused writes changed the catalog: %+v", nodes)
	}
}

// TestCatalogRegisterTolerantDecoding: field names in any case, durations
// as strings or nanoseconds, unknown fields ignored, as Consul decodes.
func TestCatalogRegisterTolerantDecoding(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	body := `{"node":"n1","ADDRESS":"10.0.0.1","nodemeta":{"rack":"r1"},"Namespace":"default","Unknown":[1,2],
		"service":{"service":"web","port":80,"tags":["a"],"taggedaddresses":{"lan":{"address":"10.0.0.1","port":80}},"Proxy":{}},
		"checks":[{"name":"one","serviceid":"web","status":"passing","definition":{"http":"http://x/","interval":"15s","timeout":2000000000}},
		          {"checkid":"two","status":"warning","definition":{"tcp":"x:1","IntervalDuration":"1m","DeregisterCriticalServiceAfter":"90m"}}]}`
	if code, _, b := n.do(t, "PUT", "/v1/catalog/register", strings.NewReader(body)); code != 200 || b != "true" {
		t.Fatalf("register = %d %q", code, b)
	}
	checks, _, err := n.api.Health().Node("n1", nil)
	if err != nil || len(checks) != 2 {
		t.Fatalf("checks = %+v, %v", checks, err)
	}
	one, two := checks[0], checks[1]
	if one.CheckID != "one" || one.ServiceName != "web" || one.Definition.IntervalDuration != 15*time.Second || one.Definition.TimeoutDuration != 2*time.Second {
		t.Fatalf("check one = %+v %+v", one, one.Definition)
	}
	if two.CheckID != "two" || two.Status != "warning" || two.Definition.IntervalDuration != time.Minute ||
		two.Definition.DeregisterCriticalServiceAfterDuration != 90*time.Minute {
		t.Fatalf("check two = %+v %+v", two, two.Definition)
	}
	svcs, _, err := n.api.Catalog().Service("web", "", nil)
	if err != nil || len(svcs) != 1 || svcs[0].NodeMeta["rack"] != "r1" || svcs[0].ServiceTaggedAddresses["lan"].Port != 80 {
		t.Fatalf("service = %+v, %v", svcs, err)
	}
}
