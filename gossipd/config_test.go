package gossipd

import (
	"slices"
	"strings"
	"testing"

	"github.com/consort-io/consort/pkg/config"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.NodeName = "n1"
	if err := ok.withDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.NodeName = "" }, "node name"},
		{"bad bind", func(c *Config) { c.BindAddr = "eth0" }, "bind address"},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "x:1" }, "advertise address"},
		{"lan disabled", func(c *Config) { c.LANPort = -1 }, "serf_lan"},
		{"bad profile", func(c *Config) { c.WANProfile = "fast" }, "gossip profile"},
		{"negative expect", func(c *Config) { c.BootstrapExpect = -1 }, "bootstrap_expect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok.withDefaults()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestConfigFromNode(t *testing.T) {
	n := config.Defaults()
	n.NodeName, n.NodeID, n.Server, n.BootstrapExpect = "s1", "uuid-1", true, 3
	n.DataDir, n.RunDir = "/d", "/r"
	n.RetryJoin = []string{"10.0.0.1", "10.0.0.2:9301"}
	n.Ports.SerfWAN = -1
	c := ConfigFromNode(n)
	if c.NodeName != "s1" || c.NodeID != "uuid-1" || !c.Server || c.BootstrapExpect != 3 ||
		c.DataDir != "/d/gossipd" || c.SocketPath != "/r/gossipd.sock" || c.LANPort != 8301 ||
		c.ServerPort != 8300 || c.wanEnabled() || c.Datacenter != "dc1" {
		t.Errorf("ConfigFromNode = %+v", c)
	}
	if got := joinAddrs(c.RetryJoin, c.LANPort); !slices.Equal(got, []string{"10.0.0.1:8301", "10.0.0.2:9301"}) {
		t.Errorf("join addresses = %v", got)
	}
}

func TestTags(t *testing.T) {
	c := DefaultConfig()
	c.NodeName, c.NodeID, c.Server, c.Bootstrap = "s1", "id", true, true
	c.Tags = map[string]string{"role": "spoof", "rack": "r1"}
	lan := c.tags(false, 8302)
	if lan["role"] != "consul" || lan["rack"] != "r1" || lan["bootstrap"] != "1" || lan["wan_join_port"] != "8302" ||
		lan["raft_vsn"] != "3" || lan["acls"] != "0" {
		t.Errorf("server LAN tags = %v", lan)
	}
	if wan := c.tags(true, 8302); wan["wan_join_port"] != "" {
		t.Errorf("WAN tags carry wan_join_port: %v", wan)
	}
	c.Server = false
	if cl := c.tags(false, -1); cl["role"] != "node" || cl["port"] != "" || cl["expect"] != "" {
		t.Errorf("client tags = %v", cl)
	}
}
