package testcluster

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Issue 5, point 5: /v1/txn through the Consul client's Txn(). A mixed
// batch of KV, node, service and check operations commits atomically; a
// failing check-index rolls everything back with 409 naming the
// operation; 129 operations get 413 naming the limit.
func TestTxnE2E(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)
	kv := client.KV()

	if _, err := kv.Put(&api.KVPair{Key: "e2e/txn/a", Value: []byte("old a")}, nil); err != nil {
		t.Fatal(err)
	}
	sid, _, err := client.Session().CreateNoChecks(&api.SessionEntry{Name: "txn", TTL: "60s"}, nil)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}

	// A mixed batch: KV writes, a lock, a node with a service and a check,
	// and reads of what it wrote, all in one entry.
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "e2e/txn/a", Value: []byte("new a"), Flags: 7}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "e2e/txn/b", Value: []byte("b"), Index: 0}},
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: "e2e/txn/lock", Value: []byte("mine"), Session: sid}},
		{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: "txn-node", Address: "10.9.0.1", Meta: map[string]string{"via": "txn"}}}},
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: "txn-node", Service: api.AgentService{ID: "txn-web", Service: "txn-web", Port: 8080, Tags: []string{"t"}}}},
		{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{Node: "txn-node", CheckID: "txn-web-alive", Name: "alive", Status: api.HealthPassing, ServiceID: "txn-web"}}},
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: "e2e/txn/a"}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: "e2e/txn/lock", Session: sid}},
	}
	ok, resp, _, err := client.Txn().Txn(ops, nil)
	if err != nil || !ok {
		t.Fatalf("mixed txn = %v, %+v, %v", ok, resp, err)
	}
	if len(resp.Errors) != 0 || len(resp.Results) != 8 {
		t.Fatalf("mixed txn: %d results, errors %+v; want 8 results", len(resp.Results), resp.Errors)
	}
	if r := resp.Results[6].KV; r == nil || string(r.Value) != "new a" || r.Flags != 7 {
		t.Errorf("get in the txn = %+v, want the txn's own write", r)
	}
	if r := resp.Results[0].KV; r == nil || r.Value != nil || r.Key != "e2e/txn/a" {
		t.Errorf("set result = %+v; want the entry without its value, as Consul", r)
	}
	if r := resp.Results[2].KV; r == nil || r.Session != sid || r.LockIndex != 1 {
		t.Errorf("lock result = %+v; want session %s, LockIndex 1", r, sid)
	}
	if r := resp.Results[3].Node; r == nil || r.Node != "txn-node" || r.Address != "10.9.0.1" || r.Datacenter != "dc1" {
		t.Errorf("node result = %+v", r)
	}
	if r := resp.Results[4].Service; r == nil || r.ID != "txn-web" || r.Port != 8080 {
		t.Errorf("service result = %+v", r)
	}
	if r := resp.Results[5].Check; r == nil || r.CheckID != "txn-web-alive" || r.Status != api.HealthPassing {
		t.Errorf("check result = %+v", r)
	}
	index := resp.Results[0].KV.ModifyIndex
	for i, r := range resp.Results[:6] {
		var got uint64
		switch {
		case r.KV != nil:
			got = r.KV.ModifyIndex
		case r.Node != nil:
			got = r.Node.ModifyIndex
		case r.Service != nil:
			got = r.Service.ModifyIndex
		case r.Check != nil:
			got = r.Check.ModifyIndex
		}
		if got != index {
			t.Errorf("result %d modified at index %d, result 0 at %d: not one raft entry", i, got, index)
		}
	}
	// Everything is visible through the ordinary endpoints.
	if p, _, err := kv.Get("e2e/txn/b", nil); err != nil || p == nil || string(p.Value) != "b" {
		t.Errorf("e2e/txn/b = %+v, %v", p, err)
	}
	if p, _, err := kv.Get("e2e/txn/lock", nil); err != nil || p == nil || p.Session != sid {
		t.Errorf("e2e/txn/lock = %+v, %v; want locked by %s", p, err, sid)
	}
	entries, _, err := client.Health().Service("txn-web", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Node.Node != "txn-node" || entries[0].Node.Meta["via"] != "txn" {
		t.Errorf("health of txn-web = %+v, %v", entries, err)
	}

	// A failing check-index: nothing of the batch is applied, 409 names
	// the operation.
	a, _, err := kv.Get("e2e/txn/a", nil)
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	ops = api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "e2e/txn/d", Value: []byte("d")}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: "e2e/txn/a"}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: "e2e/txn/b", Index: a.ModifyIndex + 1000}},
		{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: "txn-node"}}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "e2e/txn/e", Value: []byte("e")}},
	}
	ok, resp, _, err = client.Txn().Txn(ops, nil)
	if err != nil || ok {
		t.Fatalf("failing txn = %v, %+v, %v; want a 409", ok, resp, err)
	}
	if len(resp.Results) != 0 || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 2 || !strings.Contains(resp.Errors[0].What, "index") {
		t.Fatalf("failing txn: results %+v, errors %+v; want one error at op 2 about the index", resp.Results, errs(resp.Errors))
	}
	for _, k := range []string{"e2e/txn/d", "e2e/txn/e"} {
		if p, _, err := kv.Get(k, nil); err != nil || p != nil {
			t.Errorf("%s = %+v, %v after a rolled back txn", k, p, err)
		}
	}
	if p, _, err := kv.Get("e2e/txn/a", nil); err != nil || p == nil || p.ModifyIndex != a.ModifyIndex {
		t.Errorf("e2e/txn/a = %+v, %v after a rolled back txn; want it unchanged", p, err)
	}
	if node, _, err := client.Catalog().Node("txn-node", nil); err != nil || node == nil {
		t.Errorf("txn-node = %+v, %v after a rolled back txn; want it still registered", node, err)
	}

	// Read-only transactions are served in every consistency mode.
	reads := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: "e2e/txn/"}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "e2e/txn/d"}},
		{Node: &api.NodeTxnOp{Verb: api.NodeGet, Node: api.Node{Node: "txn-node"}}},
	}
	for _, q := range []*api.QueryOptions{nil, {AllowStale: true}, {RequireConsistent: true}} {
		ok, resp, meta, err := client.Txn().Txn(reads, q)
		// A stale read reports the leader as catalogd's status cache last
		// saw it (refreshed every 500 ms); the others asked the leader.
		if err != nil || !ok || len(resp.Results) != 4 || (!meta.KnownLeader && (q == nil || !q.AllowStale)) {
			t.Errorf("read txn %+v = %v, %+v, %+v, %v; want 3 keys and the node", q, ok, resp, meta, err)
		}
	}

	// 128 operations are allowed, 129 are not.
	many := make(api.TxnOps, 129)
	for i := range many {
		many[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: fmt.Sprintf("e2e/txn/many/%03d", i), Value: []byte("x")}}
	}
	if ok, resp, _, err := client.Txn().Txn(many[:128], nil); err != nil || !ok || len(resp.Results) != 128 {
		t.Errorf("128 ops = %v, %v", ok, err)
	}
	_, _, _, err = client.Txn().Txn(many, nil)
	if err == nil || !strings.Contains(err.Error(), "Transaction contains too many operations (129 > 128)") {
		t.Errorf("129 ops: %v; want Consul's 413 naming the limit", err)
	}
	status, body := rawPut(t, n.HTTPAddr(), "/v1/txn", strings.NewReader(`[`+strings.Repeat(`{"KV":{"Verb":"get","Key":"k"}},`, 128)+`{"KV":{"Verb":"get","Key":"k"}}]`))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "(129 > 128)") {
		t.Errorf("129 ops raw: %d %q", status, body)
	}
	// A body over 512 KiB is refused before it is decoded.
	status, body = rawPut(t, n.HTTPAddr(), "/v1/txn", bytes.NewReader(bytes.Repeat([]byte(" "), 513<<10)))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") {
		t.Errorf("513 KiB body: %d %q", status, body)
	}
	status, body = rawPut(t, n.HTTPAddr(), "/v1/txn", strings.NewReader(`[{"KV":{"Verb":"set","Key":"k","Value":"@@"}}]`))
	if status != http.StatusBadRequest || !strings.Contains(body, "Failed to parse body") {
		t.Errorf("bad base64: %d %q", status, body)
	}
}

// errs renders transaction errors for a failure message.
func errs(es api.TxnErrors) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("{op %d: %s}", e.OpIndex, e.What))
	}
	return strings.Join(parts, ", ")
}

// rawPut issues a PUT and returns the status and body.
func rawPut(t *testing.T, addr, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
