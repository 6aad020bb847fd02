package catalogd

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/hashicorp/consul/api"
)

// sessionNode starts a catalogd with node-1 registered, a passing node
// check "c1", a service web with a passing check "web-check", and a
// critical node check "down".
func sessionNode(t *testing.T, tweak ...func(*Config)) *node {
	t.Helper()
	n := startNode(t, catalogdtest.Start(t), tweak...)
	n.register(t, &api.CatalogRegistration{Node: "node-1", Address: "10.0.0.1",
		Service: &api.AgentService{ID: "web", Service: "web", Port: 80},
		Checks: api.HealthChecks{
			{CheckID: "c1", Name: "c1", Status: api.HealthPassing},
			{CheckID: "down", Name: "down", Status: api.HealthCritical},
			{CheckID: "web-check", Name: "web-check", ServiceID: "web", Status: api.HealthPassing},
		}})
	return n
}

// TestSessionCreateDefaults: a create without a body takes Consul's
// defaults (this agent's node, lock-delay 15 s, behavior release, no TTL);
// the default serfHealth check is dropped because consort has no gossip
// yet. Info, List and Node read it back; Destroy removes it.
func TestSessionCreateDefaults(t *testing.T) {
	n := sessionNode(t)
	s := n.api.Session()
	id, _, err := s.Create(nil, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Fatalf("session id %q is not a UUID", id)
	}
	e, qm, err := s.Info(id, nil)
	if err != nil || e == nil {
		t.Fatalf("info: %v, %v", e, err)
	}
	if qm.LastIndex == 0 || !qm.KnownLeader {
		t.Errorf("info meta %+v", qm)
	}
	want := api.SessionEntry{CreateIndex: e.CreateIndex, ID: id, Node: "node-1", LockDelay: 15 * time.Second,
		Behavior: "release", NodeChecks: []string{}}
	if !reflect.DeepEqual(*e, want) {
		t.Fatalf("info = %+v\nwant %+v", *e, want)
	}
	list, _, err := s.List(nil)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list = %+v, %v", list, err)
	}
	list, _, err = s.Node("node-1", nil)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("node = %+v, %v", list, err)
	}
	list, _, err = s.Node("node-2", nil)
	if err != nil || len(list) != 0 {
		t.Fatalf("node-2 = %+v, %v", list, err)
	}
	if _, err := s.Destroy(id, nil); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if e, _, err := s.Info(id, nil); err != nil || e != nil {
		t.Fatalf("info after destroy = %+v, %v", e, err)
	}
	// Raw answers: [] for no session, true for destroy (also of an
	// unknown session), {"ID":...} for create.
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v1/session/info/" + id, "[]"},
		{"GET", "/v1/session/list", "[]"},
		{"PUT", "/v1/session/destroy/" + id, "true"},
	} {
		code, _, body := n.do(t, tc.method, tc.path, nil)
		if code != 200 || body != tc.want {
			t.Errorf("%s %s = %d %s, want %s", tc.method, tc.path, code, body, tc.want)
		}
	}
	code, _, body := n.do(t, "PUT", "/v1/session/create", strings.NewReader(`{"Name":"x"}`))
	var created map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &created) != nil || len(created) != 1 || len(created["ID"]) != 36 {
		t.Fatalf("create = %d %s", code, body)
	}
}

// TestSessionCreateQuirks: Consul's decoding of create bodies (LockDelay
// as a duration string or number, in seconds below 1000; Checks and
// NodeChecks defaults) and its refusals, in its words.
func TestSessionCreateQuirks(t *testing.T) {
	n := sessionNode(t)
	for _, tc := range []struct {
		body       string
		code       int
		err        string // for failures: part of the body
		lockDelay  time.Duration
		nodeChecks []string
		svcChecks  []api.ServiceCheck
		behavior   string
		ttl        string
	}{
		{body: `{}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{}},
		{body: `{"LockDelay": 5}`, code: 200, lockDelay: 5 * time.Second, nodeChecks: []string{}},
		{body: `{"LockDelay": 2000000000}`, code: 200, lockDelay: 2 * time.Second, nodeChecks: []string{}},
		{body: `{"LockDelay": "7s"}`, code: 200, lockDelay: 7 * time.Second, nodeChecks: []string{}},
		{body: `{"LockDelay": "20ms"}`, code: 200, lockDelay: 20 * time.Millisecond, nodeChecks: []string{}},
		{body: `{"LockDelay": "500ns"}`, code: 200, lockDelay: 500 * time.Second, nodeChecks: []string{}},
		{body: `{"lockdelay": 0}`, code: 200, lockDelay: 0, nodeChecks: []string{}},
		{body: `{"LockDelay": true}`, code: 200, lockDelay: 0, nodeChecks: []string{}},
		{body: `{"LockDelay": "soon"}`, code: 400, err: `Request decode failed: time: invalid duration "soon"`},
		{body: `{"Checks": []}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{}},
		{body: `{"NodeChecks": []}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{}},
		{body: `{"NodeChecks": ["c1"]}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{"c1"}},
		{body: `{"Checks": ["c1"]}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{"c1"}},
		{body: `{"ServiceChecks": [{"ID": "web-check"}]}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{},
			svcChecks: []api.ServiceCheck{{ID: "web-check"}}},
		{body: `{"Behavior": "delete", "TTL": "10s"}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{},
			behavior: "delete", ttl: "10s"},
		{body: `{"TTL": "24h"}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{}, ttl: "24h"},
		{body: `{"TTL": "0s"}`, code: 200, lockDelay: 15 * time.Second, nodeChecks: []string{}, ttl: "0s"},
		// An explicit serfHealth fails, as in Consul, when it is missing.
		{body: `{"Checks": ["serfHealth"]}`, code: 500, err: "Missing check 'serfHealth' registration"},
		{body: `{"NodeChecks": ["serfHealth"]}`, code: 500, err: "Missing check 'serfHealth' registration"},
		{body: `{"NodeChecks": ["nope"]}`, code: 500, err: "Missing check 'nope' registration"},
		{body: `{"NodeChecks": ["down"]}`, code: 500, err: "Check 'down' is in critical state"},
		{body: `{"Node": "node-9"}`, code: 500, err: "Missing node registration"},
		{body: `{"Node": ""}`, code: 500, err: "Must provide Node"},
		{body: `{"Behavior": "keep"}`, code: 500, err: "Invalid Behavior setting 'keep'"},
		{body: `{"TTL": "5s"}`, code: 500, err: "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"},
		{body: `{"TTL": "25h"}`, code: 500, err: "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"},
		{body: `{"TTL": "soon"}`, code: 500, err: `Session TTL 'soon' invalid: time: invalid duration "soon"`},
		{body: `{`, code: 400, err: "Request decode failed: unexpected EOF"},
		{body: `{"Name": 5}`, code: 400, err: "Request decode failed"},
	} {
		code, _, body := n.do(t, "PUT", "/v1/session/create", strings.NewReader(tc.body))
		if code != tc.code {
			t.Errorf("create %s = %d %s, want %d", tc.body, code, body, tc.code)
			continue
		}
		if code != 200 {
			if !strings.Contains(body, tc.err) {
				t.Errorf("create %s = %d %q, want it to contain %q", tc.body, code, body, tc.err)
			}
			continue
		}
		var created struct{ ID string }
		if err := json.Unmarshal([]byte(body), &created); err != nil {
			t.Fatal(err)
		}
		e, _, err := n.api.Session().Info(created.ID, nil)
		if err != nil || e == nil {
			t.Fatalf("info %s: %v, %v", tc.body, e, err)
		}
		behavior := tc.behavior
		if behavior == "" {
			behavior = "release"
		}
		if e.LockDelay != tc.lockDelay || !reflect.DeepEqual(e.NodeChecks, tc.nodeChecks) ||
			!reflect.DeepEqual(e.ServiceChecks, tc.svcChecks) || e.Behavior != behavior || e.TTL != tc.ttl || e.Node != "node-1" {
			t.Errorf("create %s: got %+v", tc.body, *e)
		}
	}
}

// TestSessionClient: the Consul client's Create, CreateNoChecks, Renew,
// Destroy and RenewPeriodic's 404 rule.
func TestSessionClient(t *testing.T) {
	n := sessionNode(t)
	s := n.api.Session()
	id, _, err := s.Create(&api.SessionEntry{Name: "lock", TTL: "15s", LockDelay: 2 * time.Second, NodeChecks: []string{"c1"},
		ServiceChecks: []api.ServiceCheck{{ID: "web-check"}}, Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	e, _, err := s.Renew(id, nil)
	if err != nil || e == nil {
		t.Fatalf("renew: %+v, %v", e, err)
	}
	want := api.SessionEntry{CreateIndex: e.CreateIndex, ID: id, Name: "lock", Node: "node-1", LockDelay: 2 * time.Second,
		Behavior: "delete", TTL: "15s", NodeChecks: []string{"c1"}, ServiceChecks: []api.ServiceCheck{{ID: "web-check"}}}
	if !reflect.DeepEqual(*e, want) {
		t.Fatalf("renew = %+v\nwant %+v", *e, want)
	}
	id2, _, err := s.CreateNoChecks(&api.SessionEntry{Name: "free"}, nil)
	if err != nil {
		t.Fatalf("create no checks: %v", err)
	}
	if e, _, err := s.Info(id2, nil); err != nil || e == nil || len(e.NodeChecks) != 0 || e.Name != "free" {
		t.Fatalf("info = %+v, %v", e, err)
	}
	// A session without TTL renews too, as in Consul.
	if e, _, err := s.Renew(id2, nil); err != nil || e == nil || e.ID != id2 {
		t.Fatalf("renew without ttl = %+v, %v", e, err)
	}
	if _, err := s.Destroy(id, nil); err != nil {
		t.Fatal(err)
	}
	// The client maps 404 to a nil entry and no error.
	if e, _, err := s.Renew(id, nil); err != nil || e != nil {
		t.Fatalf("renew destroyed = %+v, %v", e, err)
	}
	code, _, body := n.do(t, "PUT", "/v1/session/renew/"+id, nil)
	if code != 404 || body != "Session id '"+id+"' not found" {
		t.Fatalf("renew destroyed = %d %q", code, body)
	}
	// Invalidation by the tied check going critical.
	n.register(t, &api.CatalogRegistration{Node: "node-1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "c1", Name: "c1", Status: api.HealthPassing}})
	id3, _, err := s.Create(&api.SessionEntry{NodeChecks: []string{"c1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.register(t, &api.CatalogRegistration{Node: "node-1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "c1", Name: "c1", Status: api.HealthCritical}})
	if e, _, err := s.Info(id3, nil); err != nil || e != nil {
		t.Fatalf("session tied to a critical check: %+v, %v", e, err)
	}
}

// TestSessionRoutes: methods, missing arguments and unknown endpoints.
func TestSessionRoutes(t *testing.T) {
	n := sessionNode(t)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/v1/session/create", 405, "method GET not allowed"},
		{"PUT", "/v1/session/list", 405, "method PUT not allowed"},
		{"GET", "/v1/session/destroy/x", 405, "method GET not allowed"},
		{"PUT", "/v1/session/destroy/", 400, "Missing session"},
		{"PUT", "/v1/session/renew/", 400, "Missing session"},
		{"GET", "/v1/session/info/", 400, "Missing session"},
		{"GET", "/v1/session/node/", 400, "Missing node name"},
		{"GET", "/v1/session/nope", 404, "Unknown endpoint GET /v1/session/nope"},
		{"GET", "/v1/session/list?dc=dc9", 500, "No path to datacenter"},
		{"PUT", "/v1/session/create?dc=dc9", 500, "No path to datacenter"},
		{"GET", "/v1/session/list?index=x", 400, "Invalid index"},
		{"GET", "/v1/session/list?stale", 200, "[]"},
		{"GET", "/v1/session/info/none?consistent", 200, "[]"},
	} {
		code, h, body := n.do(t, tc.method, tc.path, nil)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
		if code == 405 && h.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

// TestSessionBlocking: a blocking List returns when a session is created,
// a blocking Info when its session is destroyed.
func TestSessionBlocking(t *testing.T) {
	n := sessionNode(t)
	s := n.api.Session()
	_, qm, err := s.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		list []*api.SessionEntry
		err  error
	}
	got := make(chan result, 1)
	go func() {
		list, _, err := s.List(&api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 30 * time.Second})
		got <- result{list, err}
	}()
	id, _, err := s.CreateNoChecks(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || len(r.list) != 1 || r.list[0].ID != id {
			t.Fatalf("blocking list = %+v, %v", r.list, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking list did not return after a create")
	}
	_, qm, err = s.Info(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		e, _, err := s.Info(id, &api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 30 * time.Second})
		var list []*api.SessionEntry
		if e != nil {
			list = append(list, e)
		}
		done <- result{list, err}
	}()
	if _, err := s.Destroy(id, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.list) != 0 {
			t.Fatalf("blocking info = %+v, %v", r.list, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking info did not return after a destroy")
	}
}
