package catalogd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/hashicorp/consul/api"
)

// TestTxnWrite: a batch through the Consul client commits as one raft
// entry and answers Results in order, as Consul writes them.
func TestTxnWrite(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "t/old", "x")
	before := raft.LastIndex()
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "t/a", Value: []byte("A"), Flags: 5}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: "t/b", Value: []byte("B")}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: "t/old"}},
		{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: "n1", Address: "10.0.0.1"}}},
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: "n1", Service: api.AgentService{ID: "web", Service: "web", Port: 80}}},
		{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{Node: "n1", CheckID: "c", Name: "c", Status: api.HealthCritical, ServiceID: "web"}}},
		{KV: &api.KVTxnOp{Verb: api.KVGet, Key: "t/a"}},
	}
	ok, resp, _, err := n.api.Txn().Txn(ops, nil)
	if err != nil || !ok {
		t.Fatalf("txn = %v, %+v, %v", ok, resp, err)
	}
	if got := raft.LastIndex() - before; got != 1 {
		t.Errorf("the transaction took %d raft entries, want 1", got)
	}
	if len(resp.Errors) != 0 || len(resp.Results) != 6 {
		t.Fatalf("results %d, errors %+v; want 6 results (the delete yields none)", len(resp.Results), resp.Errors)
	}
	r := resp.Results
	if r[0].KV == nil || r[0].KV.Key != "t/a" || r[0].KV.Value != nil || r[0].KV.Flags != 5 ||
		r[2].Node == nil || r[2].Node.Datacenter != "dc1" || r[3].Service == nil || r[3].Service.Port != 80 ||
		r[4].Check == nil || r[4].Check.Status != api.HealthCritical || r[5].KV == nil || string(r[5].KV.Value) != "A" {
		b, _ := json.Marshal(r)
		t.Errorf("results %s", b)
	}
	if p, _, err := n.api.KV().Get("t/old", nil); err != nil || p != nil {
		t.Errorf("t/old = %+v, %v; want deleted", p, err)
	}
	// The raw answer is Consul's shape: only the set part of each result.
	code, _, body := n.do(t, http.MethodPut, "/v1/txn", strings.NewReader(`[{"KV":{"Verb":"get","Key":"t/b"}}]`))
	if code != http.StatusOK || !strings.Contains(body, `"Results":[{"KV":{"LockIndex":0,"Key":"t/b","Flags":0,"Value":"Qg==","CreateIndex":`) ||
		!strings.Contains(body, `"Errors":null`) {
		t.Errorf("raw read txn: %d %s", code, body)
	}
}

// TestTxnConflict: a failing operation rolls everything back and answers
// 409 with the failed operations' indexes and Consul's words, unknown
// verbs included; nothing else is answered.
func TestTxnConflict(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	n.put(t, "c/a", "1")
	p, _, err := n.api.KV().Get("c/a", nil)
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "c/new", Value: []byte("x")}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: "c/a", Index: p.ModifyIndex + 1}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: "c/a"}},
	}
	ok, resp, _, err := n.api.Txn().Txn(ops, nil)
	if err != nil || ok || resp == nil {
		t.Fatalf("txn = %v, %+v, %v; want a conflict", ok, resp, err)
	}
	if resp.Results != nil || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 1 || !strings.Contains(resp.Errors[0].What, "index") {
		t.Fatalf("results %+v errors %s", resp.Results, jsonOf(resp.Errors))
	}
	if p2, _, _ := n.api.KV().Get("c/new", nil); p2 != nil {
		t.Errorf("c/new written by a failed transaction")
	}
	if p2, _, _ := n.api.KV().Get("c/a", nil); p2 == nil {
		t.Errorf("c/a deleted by a failed transaction")
	}
	for _, tc := range []struct{ body, what string }{
		{`[{"KV":{"Verb":"set","Key":"c/x"}},{"KV":{"Verb":"frob","Key":"c/a"}}]`, "frob"},
		{`[{"KV":{"Verb":"frob","Key":"c/a"}}]`, "frob"},
		{`[{"Node":{"Verb":"poke","Node":{"Node":"n"}}}]`, "poke"},
		{`[{"KV":{"Verb":"get"}}]`, "Must provide key"},
	} {
		code, h, body := n.do(t, http.MethodPut, "/v1/txn", strings.NewReader(tc.body))
		var got struct {
			Results []any
			Errors  []struct {
				OpIndex int
				What    string
			}
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusConflict || got.Results != nil ||
			len(got.Errors) != 1 || !strings.Contains(got.Errors[0].What, tc.what) || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", tc.body, code, body)
		}
	}
}

// TestTxnRead: a read-only transaction is answered from the store in every
// consistency mode without a raft entry; ?stale works without a leader.
func TestTxnRead(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "r/1", "one")
	n.put(t, "r/2", "two")
	reads := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: "r/"}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "r/3"}},
		{KV: &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: "r/3"}},
	}
	before := raft.LastIndex()
	consistent := raft.ReadIndexCalls(true)
	for _, q := range []*api.QueryOptions{nil, {AllowStale: true}, {RequireConsistent: true}} {
		ok, resp, meta, err := n.api.Txn().Txn(reads, q)
		if err != nil || !ok || len(resp.Results) != 3 || string(resp.Results[1].KV.Value) != "two" || resp.Results[2].KV.Key != "r/3" {
			t.Fatalf("read %+v = %v, %s, %v", q, ok, jsonOf(resp), err)
		}
		if !meta.KnownLeader {
			t.Errorf("read %+v: no known leader in %+v", q, meta)
		}
	}
	if raft.LastIndex() != before {
		t.Errorf("read-only transactions went through raft")
	}
	if raft.ReadIndexCalls(true) != consistent+1 {
		t.Errorf("?consistent did not ask for a confirmed read index")
	}
	raft.SetLeader(false)
	if ok, _, _, err := n.api.Txn().Txn(reads, &api.QueryOptions{AllowStale: true}); err != nil || !ok {
		t.Errorf("stale read without a leader = %v, %v", ok, err)
	}
	if _, _, _, err := n.api.Txn().Txn(reads, nil); err == nil {
		t.Errorf("default read without a leader succeeded")
	}
	code, _, body := n.do(t, http.MethodPut, "/v1/txn?stale&consistent", strings.NewReader(`[]`))
	if code != http.StatusBadRequest || !strings.Contains(body, "conflicting") {
		t.Errorf("?stale&consistent: %d %q", code, body)
	}
}

// TestTxnRefused: requests refused before anything is applied, with
// Consul's status and words.
func TestTxnRefused(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	many := `[` + strings.Repeat(`{"KV":{"Verb":"set","Key":"k"}},`, 128) + `{"KV":{"Verb":"set","Key":"k"}}]`
	big := fmt.Sprintf(`[{"KV":{"Verb":"set","Key":"k","Value":"%s"}}]`, strings.Repeat("A", 700<<10))
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{http.MethodPut, "/v1/txn", many, http.StatusRequestEntityTooLarge, "Transaction contains too many operations (129 > 128)"},
		{http.MethodPut, "/v1/txn", big, http.StatusRequestEntityTooLarge, "too large, max size: 524288 bytes"},
		{http.MethodPut, "/v1/txn", `{"KV":{}}`, http.StatusBadRequest, "Failed to parse body"},
		{http.MethodPut, "/v1/txn", `[{}]`, http.StatusBadRequest, "exactly one of KV, Node, Service or Check"},
		{http.MethodPut, "/v1/txn?dc=elsewhere", `[]`, http.StatusInternalServerError, "No path to datacenter"},
		{http.MethodGet, "/v1/txn", ``, http.StatusMethodNotAllowed, "method GET not allowed"},
	} {
		code, _, body := n.do(t, tc.method, tc.path, bytes.NewReader([]byte(tc.body)))
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s (%d bytes): %d %q; want %d with %q", tc.method, tc.path, len(tc.body), code, trim(body), tc.code, tc.want)
		}
	}
	// A value over kv_max_value_size, in a body within txn_max_req_len.
	small := startNode(t, catalogdtest.Start(t), func(c *Config) { c.KVMaxValueSize = 16 })
	code, _, body := small.do(t, http.MethodPut, "/v1/txn", strings.NewReader(`[{"KV":{"Verb":"set","Key":"k","Value":"`+strings.Repeat("QUFB", 6)+`"}}]`))
	if code != http.StatusRequestEntityTooLarge || body != `Value for key "k" is too large (18 > 16 bytes)` {
		t.Errorf("value over the limit: %d %q", code, body)
	}
	// An empty transaction is a successful read of nothing, as in Consul.
	code, _, body = n.do(t, http.MethodPut, "/v1/txn", strings.NewReader(`[]`))
	if code != http.StatusOK || !strings.Contains(body, `"Results":null,"Errors":null`) {
		t.Errorf("empty txn: %d %s", code, body)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// TestTxnEvents: a committed transaction announces its KV writes (with
// flags) and its catalog changes on the bus, all with its raft index; a
// failed one announces nothing.
func TestTxnEvents(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	rec := &n.bus.all
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "ev/a", Value: []byte("A"), Flags: 9}},
		{KV: &api.KVTxnOp{Verb: api.KVDeleteTree, Key: "ev/old/"}},
		{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: "ev-node", Address: "10.0.0.9"}}},
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: "ev-node", Service: api.AgentService{ID: "ev-web", Service: "ev-web"}}},
	}
	ok, resp, _, err := n.api.Txn().Txn(ops, nil)
	if err != nil || !ok {
		t.Fatalf("txn = %v, %+v, %v", ok, resp, err)
	}
	index := resp.Results[0].KV.ModifyIndex
	var kv bus.KV
	rec.Expect(t, 10*time.Second, func(e bustest.Event) bool {
		return e.Subject == "consort.kv" && e.Decode(&kv) == nil && kv.Key == "ev/a"
	}).Decode(&kv)
	if kv.Op != bus.KVOpSet || kv.Flags != 9 || kv.Index != index {
		t.Errorf("kv event %+v; want set with flags 9 at %d", kv, index)
	}
	var tree bus.KV
	rec.Expect(t, 10*time.Second, func(e bustest.Event) bool {
		return e.Subject == "consort.kv" && e.Decode(&tree) == nil && tree.Key == "ev/old/"
	})
	if tree.Op != bus.KVOpDeleteTree || tree.Index != index {
		t.Errorf("delete-tree event %+v", tree)
	}
	var node bus.CatalogNode
	rec.Expect(t, 10*time.Second, bustest.Subject("consort.catalog.node.ev-node")).Decode(&node)
	if node.Op != bus.CatalogOpRegister || node.Index != index {
		t.Errorf("node event %+v; want register at %d", node, index)
	}
	var svc bus.CatalogService
	rec.Expect(t, 10*time.Second, bustest.Subject("consort.catalog.service.ev-web")).Decode(&svc)
	if svc.Op != bus.CatalogOpRegister || svc.Index != index || svc.Node != "ev-node" {
		t.Errorf("service event %+v; want register on ev-node at %d", svc, index)
	}

	before := rec.Len()
	ops = api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "ev/b", Value: []byte("B")}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "ev/a"}},
	}
	if ok, _, _, err := n.api.Txn().Txn(ops, nil); err != nil || ok {
		t.Fatalf("failing txn = %v, %v", ok, err)
	}
	n.put(t, "ev/after", "x") // its event marks the end of the failed txn's
	rec.Expect(t, 10*time.Second, func(e bustest.Event) bool {
		return e.Subject == "consort.kv" && e.Decode(&kv) == nil && kv.Key == "ev/after"
	})
	for _, e := range rec.Events()[before:] {
		if e.Decode(&kv) == nil && kv.Key == "ev/b" {
			t.Errorf("a failed transaction published %s %s", e.Subject, e.JSON)
		}
	}
}
