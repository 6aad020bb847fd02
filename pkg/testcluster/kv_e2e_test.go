package testcluster

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestKVConsulClient drives a one-node cluster with the real Consul API
// client through every KV verb (issue 3, point 1).
func TestKVConsulClient(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	kv := n.APIClient(t).KV()

	if _, err := kv.Put(&api.KVPair{Key: "app/config/a", Value: []byte("1"), Flags: 42}, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	p, meta, err := kv.Get("app/config/a", nil)
	if err != nil || p == nil || string(p.Value) != "1" || p.Flags != 42 || meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("get = %+v, %+v, %v", p, meta, err)
	}
	// A 404 still carries the index header.
	missing, meta, err := kv.Get("app/none", nil)
	if err != nil || missing != nil || meta.LastIndex == 0 {
		t.Fatalf("get missing = %+v, index %d, %v", missing, meta.LastIndex, err)
	}
	code, hdr, _ := rawGet(t, n.HTTPAddr(), "/v1/kv/app/none")
	if code != http.StatusNotFound || hdr.Get("X-Consul-Index") == "" {
		t.Fatalf("missing key: status %d, X-Consul-Index %q", code, hdr.Get("X-Consul-Index"))
	}

	for _, k := range []string{"app/config/b", "app/config/sub/c", "app/other"} {
		if _, err := kv.Put(&api.KVPair{Key: k, Value: []byte(k)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	list, _, err := kv.List("app/config/", nil)
	if err != nil || len(list) != 3 {
		t.Fatalf("list = %d pairs, %v", len(list), err)
	}
	keys, _, err := kv.Keys("app/", "/", nil)
	if err != nil || strings.Join(keys, ",") != "app/config/,app/other" {
		t.Fatalf("keys = %v, %v", keys, err)
	}

	// CAS: success with the current index, failure with a stale one.
	cur, _, _ := kv.Get("app/config/a", nil)
	ok, _, err := kv.CAS(&api.KVPair{Key: "app/config/a", Value: []byte("2"), ModifyIndex: cur.ModifyIndex}, nil)
	if err != nil || !ok {
		t.Fatalf("cas with current index = %v, %v", ok, err)
	}
	ok, _, err = kv.CAS(&api.KVPair{Key: "app/config/a", Value: []byte("3"), ModifyIndex: cur.ModifyIndex}, nil)
	if err != nil || ok {
		t.Fatalf("cas with stale index = %v, %v", ok, err)
	}
	ok, _, err = kv.CAS(&api.KVPair{Key: "app/new", Value: []byte("x"), ModifyIndex: 0}, nil)
	if err != nil || !ok {
		t.Fatalf("cas create = %v, %v", ok, err)
	}
	if p, _, _ := kv.Get("app/config/a", nil); string(p.Value) != "2" {
		t.Fatalf("after cas value = %q", p.Value)
	}

	// DeleteCAS fails on a stale index, succeeds on the current one.
	cur, _, _ = kv.Get("app/new", nil)
	if ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "app/new", ModifyIndex: cur.ModifyIndex + 100}, nil); err != nil || ok {
		t.Fatalf("delete-cas stale = %v, %v", ok, err)
	}
	if ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "app/new", ModifyIndex: cur.ModifyIndex}, nil); err != nil || !ok {
		t.Fatalf("delete-cas = %v, %v", ok, err)
	}
	if _, err := kv.Delete("app/other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.DeleteTree("app/config/", nil); err != nil {
		t.Fatal(err)
	}
	list, _, _ = kv.List("app/", nil)
	if len(list) != 0 {
		t.Fatalf("after deletes: %d keys left", len(list))
	}
}

// TestKVBlockingGet shows a blocking Get returns when its key changes and
// keeps waiting when another key changes (issue 3, point 1).
func TestKVBlockingGet(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	kv := n.APIClient(t).KV()
	if _, err := kv.Put(&api.KVPair{Key: "watched", Value: []byte("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	_, meta, err := kv.Get("watched", nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		p   *api.KVPair
		idx uint64
		err error
	}
	got := make(chan result, 1)
	go func() {
		p, m, err := kv.Get("watched", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second})
		got <- result{p, m.LastIndex, err}
	}()
	// Writes to other keys must not wake the watcher.
	for i := 0; i < 5; i++ {
		if _, err := kv.Put(&api.KVPair{Key: "other", Value: []byte{byte(i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-got:
		t.Fatalf("blocking get returned after writes to another key: %+v", r)
	case <-time.After(1500 * time.Millisecond):
	}
	if _, err := kv.Put(&api.KVPair{Key: "watched", Value: []byte("v2")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.p == nil || !bytes.Equal(r.p.Value, []byte("v2")) || r.idx <= meta.LastIndex {
			t.Fatalf("blocking get = %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("blocking get did not return after its key changed")
	}
}
