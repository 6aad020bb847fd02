package config

import (
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
)

func runCLI(t *testing.T, args ...string) (Node, error) {
	t.Helper()
	var n Node
	var lerr error
	app := &cli.App{
		Name:  "testd",
		Flags: Flags(),
		Action: func(c *cli.Context) error {
			n, lerr = FromCLI(c)
			return nil
		},
	}
	if err := app.Run(append([]string{"testd"}, args...)); err != nil {
		t.Fatalf("app: %v", err)
	}
	return n, lerr
}

func TestFromCLI(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"c.hcl":   "node_name = \"file\"\nports { http = 1001 }\n",
		"d/a.hcl": "ports { dns = 1002 }\n",
	})
	t.Setenv("CONSORT_PORTS_HTTP", "2001")
	t.Setenv("CONSORT_DATACENTER", "envdc")
	n, err := runCLI(t,
		"--config-file", filepath.Join(dir, "c.hcl"),
		"--config-dir", filepath.Join(dir, "d"),
		"--node", "flagnode",
		"--datacenter", "flagdc",
		"--set", "retry_join=a:1,b:2",
		"--set", "datacenter=setdc",
		"--log-level", "debug",
	)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "node_name", n.NodeName, "flagnode")
	eq(t, "datacenter (--set beats shortcut)", n.Datacenter, "setdc")
	eq(t, "ports.http (env)", n.Ports.HTTP, 2001)
	eq(t, "ports.dns (dir)", n.Ports.DNS, 1002)
	eq(t, "retry_join", n.RetryJoin, []string{"a:1", "b:2"})
	eq(t, "log_level", n.LogLevel, "debug")
}

func TestFromCLIDefaultsMissingFilesSkipped(t *testing.T) {
	// The default /etc/consort paths may be absent; that is not an error.
	t.Setenv("CONSORT_CONFIG_FILE", "")
	t.Setenv("CONSORT_CONFIG_DIR", "")
	if _, err := runCLI(t, "--node", "x", "--config-dir", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	// An explicitly named missing file is.
	if _, err := runCLI(t, "--config-file", filepath.Join(t.TempDir(), "nope.hcl")); err == nil {
		t.Fatal("missing explicit file: no error")
	}
}

func TestSetFlagFormat(t *testing.T) {
	var v setValue
	if err := v.Set("novalue"); err == nil {
		t.Fatal("accepted a --set without =")
	}
	if err := v.Set("a=b=c"); err != nil {
		t.Fatal(err)
	}
	eq(t, "pairs", v.pairs, []string{"a=b=c"})
}
