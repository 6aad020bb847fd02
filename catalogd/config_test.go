package catalogd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/consort-io/consort/pkg/config"
)

func TestConfigFromNode(t *testing.T) {
	n := config.Defaults()
	n.NodeName, n.NodeID, n.Server, n.RunDir = "web-1", "id-1", true, "/run/x"
	n.ClientAddr, n.Ports.HTTP = "0.0.0.0", 8501
	n.Limits.KVMaxValueSize = 1 << 20
	c := ConfigFromNode(n)
	want := Config{
		NodeName: "web-1", NodeID: "id-1", Datacenter: "dc1", Server: true, Advertise: "127.0.0.1",
		SerfLANPort: 8301, HTTPAddr: "0.0.0.0:8501", SocketPath: "/run/x/catalogd.sock",
		RaftSocket: "/run/x/raftd.sock", BusPrefix: "consort", KVMaxValueSize: 1 << 20,
		AgentDir: "/var/lib/consort/catalogd/agent", HealthdSocket: "/run/x/healthd.sock",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("ConfigFromNode =\n%+v\nwant\n%+v", c, want)
	}
	n.Ports.HTTP = -1
	if c := ConfigFromNode(n); c.HTTPAddr != "" {
		t.Fatalf("http disabled: addr %q", c.HTTPAddr)
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	c.KVMaxValueSize = -1
	c.HTTPAddr = "nope"
	err := c.Validate()
	for _, want := range []string{"raft log is not set", "kv max value size -1", `http address "nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a raft log succeeded")
	}
}
