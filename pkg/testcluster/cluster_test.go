package testcluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
)

// TestSingleServer starts one node, waits for it to lead, checks the
// Consul API client agrees, then kills and restarts every daemon and waits
// for the node to lead again from its persisted state.
func TestSingleServer(t *testing.T) {
	c := New(t, Options{})
	leader := c.WaitLeader(t)
	if leader != c.Nodes[0] {
		t.Fatalf("leader = %s, want %s", leader.Name, c.Nodes[0].Name)
	}
	got, err := leader.APIClient(t).Status().Leader()
	if err != nil {
		t.Fatalf("consul api Status().Leader(): %v", err)
	}
	if got != leader.RaftAddr() {
		t.Fatalf("consul api leader = %q, want %q", got, leader.RaftAddr())
	}

	if err := leader.KillAll(); err != nil {
		t.Fatal(err)
	}
	for _, d := range daemons {
		if leader.Running(d) {
			t.Fatalf("%s still running after KillAll", d)
		}
	}
	if c.Leader() != nil {
		t.Fatal("Leader() found a leader with every daemon killed")
	}
	if err := leader.StartAll(); err != nil {
		t.Fatal(err)
	}
	leader.WaitReady(t)
	if again := c.WaitLeader(t); again != leader {
		t.Fatalf("leader after restart = %s, want %s", again.Name, leader.Name)
	}
}

// TestThreeServers starts three nodes and waits for them to agree on a
// leader.
func TestThreeServers(t *testing.T) {
	c := New(t, Options{Servers: 3})
	leader := c.WaitLeader(t)
	peers, err := leader.APIClient(t).Status().Peers()
	if err != nil {
		t.Fatalf("consul api Status().Peers(): %v", err)
	}
	var want []string
	for _, n := range c.Nodes {
		want = append(want, n.RaftAddr())
	}
	slices.Sort(peers)
	slices.Sort(want)
	if !slices.Equal(peers, want) {
		t.Fatalf("peers = %v, want %v", peers, want)
	}
}

// TestNodeConfig checks the generated config loads through config.Load
// with the values the harness means, for one and for three servers.
func TestNodeConfig(t *testing.T) {
	dir := t.TempDir()
	for _, servers := range []int{1, 3} {
		c := &Cluster{opts: Options{
			LogLevel:          "debug",
			SnapshotThreshold: 100,
			TrailingLogs:      50,
			SnapshotInterval:  5 * time.Second,
		}}
		for i := range servers {
			c.Nodes = append(c.Nodes, &Node{
				Name:    "node-" + string(rune('1'+i)),
				ID:      "00000000-0000-4000-8000-00000000000" + string(rune('1'+i)),
				DataDir: filepath.Join(dir, "x y", "data"),
				RunDir:  filepath.Join(dir, "r"),
				ports:   config.Ports{Raft: 1000 * (i + 1), HTTP: 1000*(i+1) + 500, SerfLAN: 1000*(i+1) + 301, Server: 1000*(i+1) + 303, SerfWAN: -1, DNS: -1},
			})
			c.Nodes[i].raftAddr = hostPort(c.Nodes[i].ports.Raft)
		}
		n := c.Nodes[0]
		text := c.nodeConfig(n, "nats://127.0.0.1:4333")
		file := filepath.Join(dir, "consort.hcl")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := config.Load(config.LoadOptions{ConfigFile: file})
		if err != nil {
			t.Fatalf("servers=%d: load:\n%s\n%v", servers, text, err)
		}
		check := func(what string, ok bool) {
			t.Helper()
			if !ok {
				t.Errorf("servers=%d: %s wrong in\n%s\ndecoded %+v", servers, what, text, got)
			}
		}
		check("node_name/node_id", got.NodeName == "node-1" && got.NodeID == "00000000-0000-4000-8000-000000000001")
		check("server", got.Server)
		check("dirs", got.DataDir == n.DataDir && got.RunDir == n.RunDir)
		check("addrs", got.BindAddr == "127.0.0.1" && got.AdvertiseAddr == "127.0.0.1" && got.ClientAddr == "127.0.0.1")
		check("ports", got.Ports == n.ports)
		check("nats", got.NATS.URL == "nats://127.0.0.1:4333")
		check("raft", got.Raft.SnapshotThreshold == 100 && got.Raft.TrailingLogs == 50 && got.Raft.SnapshotInterval == 5*time.Second)
		check("log_level", got.LogLevel == "debug")
		if servers == 1 {
			check("bootstrap", got.Bootstrap && got.BootstrapExpect == 0 && len(got.RetryJoin) == 0)
		} else {
			check("bootstrap_expect", !got.Bootstrap && got.BootstrapExpect == 3)
			check("retry_join", slices.Equal(got.RetryJoin, []string{"127.0.0.1:2000", "127.0.0.1:3000"}))
		}
	}
}

func TestTailLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := tailLines(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{strings.Repeat("x", 97), strings.Repeat("x", 98), strings.Repeat("x", 99)}
	if !slices.Equal(lines, want) {
		t.Fatalf("tail = %q, want %q", lines, want)
	}
	if _, err := tailLines(filepath.Join(dir, "missing"), 3); err == nil {
		t.Fatal("tail of a missing file: no error")
	}
	if hasDataRace(path) {
		t.Fatal("hasDataRace on a clean log")
	}
}
