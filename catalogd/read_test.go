package catalogd

import (
	"strings"
	"testing"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/raftapi"
	"github.com/hashicorp/consul/api"
)

func TestConsistencyModes(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "k", "v")
	for _, tc := range []struct {
		query       string
		effective   string
		def, consis int // ReadIndex calls this read adds
	}{
		{"", "leader", 1, 0},
		{"?consistent", "consistent", 0, 1},
		{"?stale", "stale", 0, 0},
		{"?stale&max_stale=1h", "stale", 0, 0},
	} {
		def, con := raft.ReadIndexCalls(false), raft.ReadIndexCalls(true)
		code, h, _ := n.do(t, "GET", "/v1/kv/k"+tc.query, nil)
		if code != 200 {
			t.Fatalf("%q: %d", tc.query, code)
		}
		if got := h.Get("X-Consul-Effective-Consistency"); got != tc.effective {
			t.Errorf("%q: effective consistency %q, want %q", tc.query, got, tc.effective)
		}
		if h.Get("X-Consul-KnownLeader") != "true" || h.Get("X-Consul-LastContact") == "" || h.Get("X-Consul-Index") == "" {
			t.Errorf("%q: headers %v", tc.query, h)
		}
		if d, c := raft.ReadIndexCalls(false)-def, raft.ReadIndexCalls(true)-con; d != tc.def || c != tc.consis {
			t.Errorf("%q: read index calls default %d consistent %d, want %d %d", tc.query, d, c, tc.def, tc.consis)
		}
	}
}

func TestNoLeader(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	n.put(t, "k", "v")
	raft.SetLeader(false)
	// The cached status notices within a poll or two.
	waitFor(t, "stale reads to see no leader", func() bool {
		_, h, _ := n.do(t, "GET", "/v1/kv/k?stale", nil)
		return h.Get("X-Consul-KnownLeader") == "false"
	})

	code, _, body := n.do(t, "PUT", "/v1/kv/k", strings.NewReader("v2"))
	if code != 500 || body != "No cluster leader" {
		t.Fatalf("write without leader: %d %q", code, body)
	}
	if _, err := n.api.KV().Put(&api.KVPair{Key: "k", Value: []byte("v3")}, nil); err == nil || !strings.Contains(err.Error(), "No cluster leader") {
		t.Fatalf("client write without leader: %v", err)
	}
	for _, q := range []string{"", "?consistent"} {
		code, _, body = n.do(t, "GET", "/v1/kv/k"+q, nil)
		if code != 500 || body != "No cluster leader" {
			t.Fatalf("read %q without leader: %d %q", q, code, body)
		}
	}
	p, qm, err := n.api.KV().Get("k", &api.QueryOptions{AllowStale: true})
	if err != nil || p == nil || string(p.Value) != "v" || qm.KnownLeader {
		t.Fatalf("stale read without leader = %+v %+v %v", p, qm, err)
	}
	// Past max_stale, a stale read becomes a leader read, as in Consul.
	code, _, body = n.do(t, "GET", "/v1/kv/k?stale&max_stale=1ms", nil)
	if code != 500 || body != "No cluster leader" {
		t.Fatalf("stale read past max_stale without leader: %d %q", code, body)
	}

	raft.SetLeader(true)
	n.put(t, "k", "v4")
	if p, _, _ := n.api.KV().Get("k", nil); string(p.Value) != "v4" {
		t.Fatalf("after leader is back: %+v", p)
	}
}

func TestApplyErrors(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)

	raft.SetApplyErr(raftapi.ErrTimeout)
	code, _, body := n.do(t, "PUT", "/v1/kv/k", strings.NewReader("v"))
	if code != 500 || !strings.Contains(body, "outcome is unknown") {
		t.Fatalf("raft timeout: %d %q", code, body)
	}
	raft.SetApplyErr(nil)

	raft.SetDown(true)
	code, _, body = n.do(t, "PUT", "/v1/kv/k", strings.NewReader("v"))
	if code != 500 || !strings.HasPrefix(body, "rpc error: raftd unavailable") || !strings.Contains(body, "start raftd") {
		t.Fatalf("raftd down, write: %d %q", code, body)
	}
	code, _, body = n.do(t, "GET", "/v1/kv/k", nil)
	if code != 500 || !strings.HasPrefix(body, "rpc error: raftd unavailable") {
		t.Fatalf("raftd down, read: %d %q", code, body)
	}
	if code, _, _ := n.do(t, "GET", "/v1/kv/k?stale", nil); code != 404 {
		t.Fatalf("raftd down, stale read: %d, want 404 from local state", code)
	}
	raft.SetDown(false)
	// The client redials and the feed reopens by themselves.
	waitFor(t, "writes to work again", func() bool {
		_, err := n.api.KV().Put(&api.KVPair{Key: "k", Value: []byte("back")}, nil)
		return err == nil
	})
	if p, _, err := n.api.KV().Get("k", nil); err != nil || string(p.Value) != "back" {
		t.Fatalf("after raftd is back: %+v %v", p, err)
	}
}

func TestStatusAndAgent(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	leader, err := n.api.Status().Leader()
	if err != nil || leader != catalogdtest.LeaderAddr {
		t.Fatalf("leader = %q, %v", leader, err)
	}
	peers, err := n.api.Status().Peers()
	if err != nil || len(peers) != 3 || peers[0] != catalogdtest.LeaderAddr {
		t.Fatalf("peers = %v, %v", peers, err)
	}
	name, err := n.api.Agent().NodeName()
	if err != nil || name != "node-1" {
		t.Fatalf("node name = %q, %v", name, err)
	}
	self, err := n.api.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	if self["Config"]["Datacenter"] != "dc1" || self["Config"]["Server"] != true || self["Member"]["Name"] != "node-1" {
		t.Fatalf("self = %v", self)
	}
	if self["Config"]["NodeID"] != catalogdtest.ServerID {
		t.Fatalf("node id = %v, want raftd's server id", self["Config"]["NodeID"])
	}
	raft.SetLeader(false)
	if leader, err := n.api.Status().Leader(); err != nil || leader != "" {
		t.Fatalf("leader without one = %q, %v", leader, err)
	}
}
