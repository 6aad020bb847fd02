package catalogd

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/hashicorp/consul/api"
)

func TestKVPutGet(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	kv := n.api.KV()
	if _, err := kv.Put(&api.KVPair{Key: "app/config", Value: []byte("v1"), Flags: 42}, nil); err != nil {
		t.Fatal(err)
	}
	p, qm, err := kv.Get("app/config", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || string(p.Value) != "v1" || p.Flags != 42 || p.CreateIndex == 0 || p.ModifyIndex != p.CreateIndex {
		t.Fatalf("get = %+v", p)
	}
	if qm.LastIndex != p.ModifyIndex || !qm.KnownLeader {
		t.Fatalf("meta = %+v, want index %d and a known leader", qm, p.ModifyIndex)
	}
	if _, err := kv.Put(&api.KVPair{Key: "app/config", Value: []byte("v2")}, nil); err != nil {
		t.Fatal(err)
	}
	p2, _, err := kv.Get("app/config", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(p2.Value) != "v2" || p2.CreateIndex != p.CreateIndex || p2.ModifyIndex <= p.ModifyIndex || p2.Flags != 0 {
		t.Fatalf("after update: %+v (before %+v)", p2, p)
	}
}

func TestKVGetMissing(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	p, qm, err := n.api.KV().Get("nope", nil)
	if err != nil || p != nil {
		t.Fatalf("get missing = %+v, %v", p, err)
	}
	if qm == nil || qm.LastIndex == 0 {
		t.Fatalf("missing key meta = %+v: want X-Consul-Index > 0", qm)
	}
	code, h, body := n.do(t, "GET", "/v1/kv/nope", nil)
	if code != 404 || body != "" || h.Get("X-Consul-Index") == "" || h.Get("X-Consul-KnownLeader") != "true" {
		t.Fatalf("404 answer: %d %q %v", code, body, h)
	}
	list, qm, err := n.api.KV().List("nothing/", nil)
	if err != nil || len(list) != 0 || qm.LastIndex == 0 {
		t.Fatalf("list missing = %v, %+v, %v", list, qm, err)
	}
}

func TestKVListAndKeys(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	for _, k := range []string{"a/b/c", "a/d", "a/e/f", "a/e/g", "b"} {
		n.put(t, k, "x-"+k)
	}
	list, _, err := n.api.KV().List("a/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range list {
		got = append(got, p.Key+"="+string(p.Value))
	}
	want := []string{"a/b/c=x-a/b/c", "a/d=x-a/d", "a/e/f=x-a/e/f", "a/e/g=x-a/e/g"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("list a/ = %v, want %v", got, want)
	}
	keys, _, err := n.api.KV().Keys("a/", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b/", "a/d", "a/e/"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys a/ sep / = %v, want %v", keys, want)
	}
	keys, _, err = n.api.KV().Keys("", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b/c", "a/d", "a/e/f", "a/e/g", "b"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("all keys = %v, want %v", keys, want)
	}
	// Consul: nothing under a prefix is 404, an empty root is [].
	if code, _, _ := n.do(t, "GET", "/v1/kv/zzz?keys", nil); code != 404 {
		t.Fatalf("keys under empty prefix: %d, want 404", code)
	}
	n2 := startNode(t, catalogdtest.Start(t))
	if code, _, body := n2.do(t, "GET", "/v1/kv/?keys", nil); code != 200 || body != "[]" {
		t.Fatalf("keys of empty store: %d %q, want 200 []", code, body)
	}
}

func TestKVCAS(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	kv := n.api.KV()
	cas := func(key, val string, idx uint64) bool {
		t.Helper()
		ok, _, err := kv.CAS(&api.KVPair{Key: key, Value: []byte(val), ModifyIndex: idx}, nil)
		if err != nil {
			t.Fatalf("cas %s@%d: %v", key, idx, err)
		}
		return ok
	}
	if !cas("k", "1", 0) {
		t.Fatal("cas create on missing key failed")
	}
	if cas("k", "2", 0) {
		t.Fatal("cas create on existing key succeeded")
	}
	p, _, _ := kv.Get("k", nil)
	if cas("k", "3", p.ModifyIndex+100) {
		t.Fatal("cas with wrong index succeeded")
	}
	if !cas("k", "4", p.ModifyIndex) {
		t.Fatal("cas with right index failed")
	}
	p, _, _ = kv.Get("k", nil)
	if string(p.Value) != "4" {
		t.Fatalf("value after cas = %q", p.Value)
	}
}

func TestKVDelete(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	kv := n.api.KV()
	for _, k := range []string{"d/1", "d/2", "d/3/x", "e"} {
		n.put(t, k, "v")
	}
	if _, err := kv.Delete("e", nil); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := kv.Get("e", nil); p != nil {
		t.Fatalf("e survived delete: %+v", p)
	}
	p, _, _ := kv.Get("d/1", nil)
	ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "d/1", ModifyIndex: p.ModifyIndex + 1}, nil)
	if err != nil || ok {
		t.Fatalf("delete-cas wrong index = %v, %v", ok, err)
	}
	ok, _, err = kv.DeleteCAS(&api.KVPair{Key: "d/1", ModifyIndex: p.ModifyIndex}, nil)
	if err != nil || !ok {
		t.Fatalf("delete-cas right index = %v, %v", ok, err)
	}
	if _, err := kv.DeleteTree("d/", nil); err != nil {
		t.Fatal(err)
	}
	keys, _, err := kv.Keys("", "", nil)
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys after delete-tree = %v, %v", keys, err)
	}
	// Raw answers: true/false bodies as Consul.
	if code, _, body := n.do(t, "DELETE", "/v1/kv/none?cas=5", nil); code != 200 || body != "true" {
		t.Fatalf("delete-cas of missing key: %d %q", code, body)
	}
	if code, _, body := n.do(t, "DELETE", "/v1/kv/?recurse", nil); code != 200 || body != "true" {
		t.Fatalf("delete whole tree: %d %q", code, body)
	}
	if code, _, body := n.do(t, "DELETE", "/v1/kv/", nil); code != 400 || body != "Missing key name" {
		t.Fatalf("delete without key: %d %q", code, body)
	}
}

func TestKVJSONAndRaw(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	n.put(t, "k", "v")
	n.put(t, "empty", "")
	p, _, _ := n.api.KV().Get("k", nil)
	_, h, body := n.do(t, "GET", "/v1/kv/k", nil)
	want := fmt.Sprintf(`[{"LockIndex":0,"Key":"k","Flags":0,"Value":"dg==","CreateIndex":%d,"ModifyIndex":%d}]`, p.CreateIndex, p.ModifyIndex)
	if body != want || h.Get("Content-Type") != "application/json" {
		t.Fatalf("json = %s (%s)\nwant %s", body, h.Get("Content-Type"), want)
	}
	if _, _, body := n.do(t, "GET", "/v1/kv/empty", nil); !strings.Contains(body, `"Value":null`) {
		t.Fatalf("empty value json = %s", body)
	}
	code, h, body := n.do(t, "GET", "/v1/kv/k?raw", nil)
	if code != 200 || body != "v" || h.Get("Content-Type") != "text/plain" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("raw = %d %q %v", code, body, h)
	}
	if h.Get("X-Consul-Index") != fmt.Sprint(p.ModifyIndex) {
		t.Fatalf("raw index header = %q", h.Get("X-Consul-Index"))
	}
	if _, _, body := n.do(t, "GET", "/v1/kv/k?pretty", nil); !strings.Contains(body, "\n    {") {
		t.Fatalf("pretty json = %q", body)
	}
}

func TestKVTooLarge(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	max := n.d.cfg.KVMaxValueSize
	if _, err := n.api.KV().Put(&api.KVPair{Key: "big", Value: bytes.Repeat([]byte("x"), max)}, nil); err != nil {
		t.Fatalf("value at the limit: %v", err)
	}
	code, _, body := n.do(t, "PUT", "/v1/kv/big", bytes.NewReader(make([]byte, max+1)))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large, max size: 524288 bytes") {
		t.Fatalf("over the limit: %d %q", code, body)
	}
	// Chunked, without a Content-Length.
	code, _, _ = n.do(t, "PUT", "/v1/kv/big", struct{ *bytes.Reader }{bytes.NewReader(make([]byte, max+1))})
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over the limit: %d", code)
	}
	_, err := n.api.KV().Put(&api.KVPair{Key: "big2", Value: make([]byte, max+10)}, nil)
	if err == nil || !strings.Contains(err.Error(), "413") {
		t.Fatalf("client put over the limit: %v", err)
	}
}

func TestKVBadRequests(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	n.put(t, "k", "v")
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/v1/kv/k?index=abc", 400, "Invalid index"},
		{"GET", "/v1/kv/k?index=1&wait=10", 400, "Invalid wait time"},
		{"GET", "/v1/kv/k?stale&consistent", 400, "Cannot specify ?stale with ?consistent, conflicting semantics."},
		{"GET", "/v1/kv/k?max_stale=soon", 400, `Invalid max_stale value "soon"`},
		{"GET", "/v1/kv/k?a=%zz", 400, "Invalid query string"},
		{"GET", "/v1/kv/", 400, "Missing key name"},
		{"PUT", "/v1/kv/k?flags=x", 400, `Invalid flags "x"`},
		{"PUT", "/v1/kv/k?cas=-1", 400, `Invalid cas "-1"`},
		{"PUT", "/v1/kv/k?cas=1&acquire=s", 400, "Conflicting flags"},
		{"PUT", "/v1/kv/", 400, "Missing key name"},
		{"DELETE", "/v1/kv/k?recurse&cas=1", 400, "Conflicting flags"},
		{"PUT", "/v1/kv/k?acquire=abc", 500, `invalid session "abc"`},
		{"PUT", "/v1/kv/k?acquire", 500, "missing session"},
		{"PUT", "/v1/kv/k?release=abc", 200, "false"},
		{"POST", "/v1/kv/k", 405, "method POST not allowed"},
		{"PUT", "/v1/status/leader", 405, "method PUT not allowed"},
		{"GET", "/v1/catalog/nope", 404, "Unknown endpoint GET /v1/catalog/nope"},
		{"GET", "/v1/kv/k?dc=dc9", 500, "No path to datacenter"},
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

func TestKVBlocking(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	kv := n.api.KV()
	n.put(t, "watched", "1")
	p, qm, err := kv.Get("watched", nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		p   *api.KVPair
		qm  *api.QueryMeta
		err error
	}
	got := make(chan result, 1)
	go func() {
		p, qm, err := kv.Get("watched", &api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 30 * time.Second})
		got <- result{p, qm, err}
	}()
	// A write to another key must not wake this watcher.
	n.put(t, "other", "x")
	select {
	case r := <-got:
		t.Fatalf("blocking get returned after another key changed: %+v %v", r.p, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	n.put(t, "watched", "2")
	select {
	case r := <-got:
		if r.err != nil || string(r.p.Value) != "2" || r.qm.LastIndex <= p.ModifyIndex {
			t.Fatalf("blocking get = %+v %+v %v", r.p, r.qm, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking get did not return after its key changed")
	}
}

func TestKVBlockingTimeout(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	n.put(t, "k", "1")
	_, qm, _ := n.api.KV().Get("k", nil)
	_, qm2, err := n.api.KV().Get("k", &api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 50 * time.Millisecond})
	if err != nil || qm2.LastIndex != qm.LastIndex {
		t.Fatalf("timed-out blocking get = %+v, %v; want the same index %d", qm2, err, qm.LastIndex)
	}
	// A blocking list wakes on a key under its prefix.
	got := make(chan uint64, 1)
	_, lqm, _ := n.api.KV().List("dir/", nil)
	go func() {
		_, qm, err := n.api.KV().List("dir/", &api.QueryOptions{WaitIndex: lqm.LastIndex, WaitTime: 30 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- qm.LastIndex
	}()
	n.put(t, "dir/a", "1")
	select {
	case idx := <-got:
		if idx <= lqm.LastIndex {
			t.Fatalf("list woke with index %d, not above %d", idx, lqm.LastIndex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking list did not return")
	}
}

func TestKVBusEvents(t *testing.T) {
	n := startNode(t, catalogdtest.Start(t))
	kv := n.api.KV()
	kv.Put(&api.KVPair{Key: "a", Value: []byte("1"), Flags: 7}, nil)
	kv.CAS(&api.KVPair{Key: "a", ModifyIndex: 999}, nil) // fails: no event
	kv.Delete("a", nil)
	kv.DeleteTree("p/", nil)
	want := []bus.KV{
		{Kind: bus.KindKV, Key: "a", Op: bus.KVOpSet, Flags: 7},
		{Kind: bus.KindKV, Key: "a", Op: bus.KVOpDelete},
		{Kind: bus.KindKV, Key: "p/", Op: bus.KVOpDeleteTree},
	}
	waitFor(t, "3 kv events", func() bool { return len(n.bus.kv()) >= 3 })
	got := n.bus.kv()
	for i := range got {
		if got[i].Index == 0 {
			t.Errorf("event %d without index", i)
		}
		got[i].Index = 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %+v\nwant %+v", got, want)
	}
	if n.bus.subjects[0] != "consort.kv" {
		t.Fatalf("subject = %q", n.bus.subjects[0])
	}
}
