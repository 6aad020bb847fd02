package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	valid := func() Node {
		n := Defaults()
		n.NodeName = "node-1"
		return n
	}
	tests := []struct {
		name   string
		change func(n *Node)
		want   string // "" means valid
	}{
		{"defaults", func(n *Node) {}, ""},
		{"server bootstrap", func(n *Node) { n.Server, n.Bootstrap = true, true }, ""},
		{"server expect", func(n *Node) { n.Server, n.BootstrapExpect = true, 3 }, ""},
		{"fqdn node name", func(n *Node) { n.NodeName = "web-1.example.com" }, ""},
		{"uuid node id", func(n *Node) { n.NodeID = "3F2A9C1E-8D4B-4F7A-9E21-5C6D7E8F9A0B" }, ""},
		{"disabled http", func(n *Node) { n.Ports.HTTP = -1 }, ""},
		{"empty node name", func(n *Node) { n.NodeName = "" }, "node_name: must be set"},
		{"node name charset", func(n *Node) { n.NodeName = "a b" }, "node_name: want letters"},
		{"node name leading dash", func(n *Node) { n.NodeName = "-a" }, "node_name: want letters"},
		{"node id", func(n *Node) { n.NodeID = "s1" }, "node_id: want a UUID"},
		{"datacenter case", func(n *Node) { n.Datacenter = "DC1" }, "datacenter: want lower-case"},
		{"datacenter dot", func(n *Node) { n.Datacenter = "dc.1" }, "datacenter: want lower-case"},
		{"bootstrap both", func(n *Node) { n.Server, n.Bootstrap, n.BootstrapExpect = true, true, 3 }, "exclusive"},
		{"bootstrap on client", func(n *Node) { n.Bootstrap = true }, "bootstrap: server-only option on a client"},
		{"expect on client", func(n *Node) { n.BootstrapExpect = 3 }, "bootstrap_expect: server-only option on a client"},
		{"negative expect", func(n *Node) { n.Server, n.BootstrapExpect = true, -1 }, "bootstrap_expect: want 0 or more"},
		{"empty retry join", func(n *Node) { n.RetryJoin = []string{"a:1", " "} }, "retry_join[1]: empty address"},
		{"port range", func(n *Node) { n.Ports.HTTP = 70000 }, "ports.http: want 1-65535"},
		{"port zero", func(n *Node) { n.Ports.DNS = 0 }, "ports.dns: want 1-65535"},
		{"port clash", func(n *Node) { n.Ports.DNS = 8500 }, "ports.dns: port 8500 already used by ports.http"},
		{"raft off on server", func(n *Node) { n.Server, n.Ports.Raft = true, -1 }, "ports.raft: cannot be disabled"},
		{"raft off on client", func(n *Node) { n.Ports.Raft = -1 }, ""},
		{"serf lan off", func(n *Node) { n.Ports.SerfLAN = -1 }, "ports.serf_lan: cannot be disabled"},
		{"bind addr", func(n *Node) { n.BindAddr = "localhost" }, "bind_addr: want an IP address"},
		{"advertise unspecified", func(n *Node) { n.AdvertiseAddr = "0.0.0.0" }, "advertise_addr: 0.0.0.0 cannot be advertised"},
		{"no data dir", func(n *Node) { n.DataDir = "" }, "data_dir: must be set"},
		{"log level", func(n *Node) { n.LogLevel = "loud" }, "log_level: want trace"},
		{"nats url scheme", func(n *Node) { n.NATS.URL = "http://x:1" }, "nats.url: unsupported scheme"},
		{"nats url list", func(n *Node) { n.NATS.URL = "nats://a:1, b:2" }, ""},
		{"nats empty", func(n *Node) { n.NATS.URL = "" }, "nats.url: must be set"},
		{"subject prefix", func(n *Node) { n.NATS.SubjectPrefix = "a.*" }, "nats.subject_prefix"},
		{"subject prefix empty token", func(n *Node) { n.NATS.SubjectPrefix = "a..b" }, "nats.subject_prefix"},
		{"snapshot interval", func(n *Node) { n.Raft.SnapshotInterval = 0 }, "raft.snapshot_interval: want a positive duration"},
		{"multiplier", func(n *Node) { n.Raft.Multiplier = 11 }, "raft.raft_multiplier: want 1-10"},
		{"kv size", func(n *Node) { n.Limits.KVMaxValueSize = 0 }, "limits.kv_max_value_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := valid()
			tt.change(&n)
			before := n
			err := n.Validate()
			if n.NodeName != before.NodeName || n.Raft != before.Raft {
				t.Fatal("validate changed the node")
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	for _, tt := range []struct {
		level     string
		debug, tr bool
	}{
		{"info", false, false},
		{"debug", true, false},
		{"trace", true, true},
		{"bogus", false, false},
	} {
		var buf bytes.Buffer
		n := Defaults()
		n.LogLevel = tt.level
		log := n.Logger("raftd", &buf)
		log.Info("hello", "k", 1)
		log.Debug("dbg")
		log.Log(nil, LevelTrace, "trc")
		out := buf.String()
		if !strings.Contains(out, "msg=hello") || !strings.Contains(out, "daemon=raftd") {
			t.Errorf("%s: info line missing: %q", tt.level, out)
		}
		if got := strings.Contains(out, "msg=dbg"); got != tt.debug {
			t.Errorf("%s: debug logged = %v", tt.level, got)
		}
		if got := strings.Contains(out, "level=TRACE msg=trc"); got != tt.tr {
			t.Errorf("%s: trace logged = %v: %q", tt.level, got, out)
		}
	}
}
