package testcluster

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestServiceDefinitionFile shows a service defined in an HCL file in the
// config directory appears in the catalog at start-up, and that removing
// the file and reloading (SIGHUP, then the HTTP reload endpoint) removes
// it, while a file added before the reload is picked up (issue 4,
// point 2).
func TestServiceDefinitionFile(t *testing.T) {
	c := New(t, Options{ConfigDirFiles: map[string]string{
		"web.hcl": `service {
  name = "web"
  id   = "web-1"
  port = 8080
  tags = ["v1", "primary"]
  meta = { version = "1" }
}
`,
	}})
	n := c.WaitLeader(t)
	cl := n.APIClient(t)
	waitFor(t, 30*time.Second, "web from the config dir in the catalog", func() error {
		svcs, _, err := cl.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		if len(svcs) != 1 || svcs[0].ServiceID != "web-1" || svcs[0].ServicePort != 8080 || svcs[0].ServiceMeta["version"] != "1" {
			return errorf("catalog web = %+v", svcs)
		}
		return nil
	})

	// Remove web, add api as JSON, then SIGHUP catalogd.
	if err := os.Remove(filepath.Join(n.ConfigDir, "web.hcl")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.ConfigDir, "api.json"), []byte(`{"service": {"name": "api", "port": 9090}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Signal("catalogd", syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "reload removes web and adds api", func() error {
		web, _, err := cl.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		apis, _, err := cl.Catalog().Service("api", "", nil)
		if err != nil {
			return err
		}
		if len(web) != 0 || len(apis) != 1 {
			return errorf("web %d instances, api %d", len(web), len(apis))
		}
		return nil
	})

	// The HTTP reload endpoint does the same.
	if err := os.Remove(filepath.Join(n.ConfigDir, "api.json")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Agent().Reload(); err != nil {
		t.Fatalf("agent reload: %v", err)
	}
	waitFor(t, 30*time.Second, "HTTP reload removes api", func() error {
		apis, _, err := cl.Catalog().Service("api", "", &api.QueryOptions{})
		if err != nil {
			return err
		}
		if len(apis) != 0 {
			return errorf("api still has %d instances", len(apis))
		}
		return nil
	})
}
