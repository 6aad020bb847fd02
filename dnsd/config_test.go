package dnsd

import (
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
)

func TestConfigFromNode(t *testing.T) {
	n := config.Defaults()
	n.NodeName = "n1"
	c := ConfigFromNode(n)
	if c.Addr != "127.0.0.1:8600" || c.CatalogHTTP != "127.0.0.1:8500" || c.Domain != "consul." ||
		c.Datacenter != "dc1" || c.Node != "n1" || c.NATSURL != "nats://127.0.0.1:4222" {
		t.Errorf("defaults: %+v", c)
	}
	n.ClientAddr, n.Ports.DNS, n.Ports.HTTP = "0.0.0.0", 53, 8501
	c = ConfigFromNode(n)
	if c.Addr != "0.0.0.0:53" || c.CatalogHTTP != "127.0.0.1:8501" {
		t.Errorf("wildcard: %q %q", c.Addr, c.CatalogHTTP)
	}
	n.Ports.DNS = -1
	if c := ConfigFromNode(n); c.Addr != "" {
		t.Errorf("disabled: %q", c.Addr)
	}
}

func TestValidate(t *testing.T) {
	c := Config{Datacenter: "dc1", AltDomain: "Consul", MaxAge: -1}.withDefaults()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "alt domain") || !strings.Contains(err.Error(), "max age") {
		t.Errorf("validate: %v", err)
	}
	if _, err := New(Config{Datacenter: "dc1"}); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestServiceTTL(t *testing.T) {
	c := Config{ServiceTTL: map[string]time.Duration{"web": 5 * time.Second, "we*": 7 * time.Second, "*": time.Second}}
	for name, want := range map[string]uint32{"web": 5, "west": 7, "db": 1} {
		if got := c.serviceTTL(name); got != want {
			t.Errorf("%s: %d, want %d", name, got, want)
		}
	}
}
