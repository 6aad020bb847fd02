package testcluster

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// followers returns the cluster's nodes other than leader.
func followers(c *Cluster, leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// TestThreeServerReads shows a write through a follower commits, a
// follower serves ?stale with the leader down and without quorum, and
// ?consistent fails cleanly without quorum (issue 3, point 2).
func TestThreeServerReads(t *testing.T) {
	c := New(t, Options{Servers: 3})
	leader := c.WaitLeader(t)
	fs := followers(c, leader)
	f := fs[0]
	fkv := f.APIClient(t).KV()
	if _, err := fkv.Put(&api.KVPair{Key: "via-follower", Value: []byte("yes")}, nil); err != nil {
		t.Fatalf("put via follower: %v", err)
	}
	p, _, err := leader.APIClient(t).KV().Get("via-follower", &api.QueryOptions{RequireConsistent: true})
	if err != nil || p == nil || string(p.Value) != "yes" {
		t.Fatalf("leader consistent read of follower write = %+v, %v", p, err)
	}
	// Default and consistent reads on a follower see the write too.
	for _, q := range []*api.QueryOptions{nil, {RequireConsistent: true}} {
		p, meta, err := fkv.Get("via-follower", q)
		if err != nil || p == nil || !meta.KnownLeader {
			t.Fatalf("follower read %+v = %+v, %+v, %v", q, p, meta, err)
		}
	}

	// Leader down, and then the second server: no quorum.
	if err := leader.KillAll(); err != nil {
		t.Fatal(err)
	}
	if err := fs[1].KillAll(); err != nil {
		t.Fatal(err)
	}
	p, meta, err := fkv.Get("via-follower", &api.QueryOptions{AllowStale: true})
	if err != nil || p == nil || string(p.Value) != "yes" {
		t.Fatalf("stale read without quorum = %+v, %v", p, err)
	}
	if meta.LastIndex == 0 {
		t.Fatal("stale read carries no index")
	}
	// LastContact grows while the leader is gone.
	waitFor(t, 10*time.Second, "stale read reports no known leader", func() error {
		code, hdr, body := rawGet(t, f.HTTPAddr(), "/v1/kv/via-follower?stale")
		if code != http.StatusOK {
			return errorf("stale status %d: %s", code, body)
		}
		if hdr.Get("X-Consul-KnownLeader") != "false" {
			return errorf("X-Consul-KnownLeader = %q", hdr.Get("X-Consul-KnownLeader"))
		}
		return nil
	})
	code, _, body := rawGet(t, f.HTTPAddr(), "/v1/kv/via-follower?consistent")
	if code != http.StatusInternalServerError || !strings.Contains(body, "No cluster leader") {
		t.Fatalf("consistent read without quorum: %d %q, want 500 No cluster leader", code, body)
	}
	if _, err := fkv.Put(&api.KVPair{Key: "lost", Value: []byte("x")}, nil); err == nil || !strings.Contains(err.Error(), "No cluster leader") {
		t.Fatalf("write without quorum: %v, want No cluster leader", err)
	}
}
