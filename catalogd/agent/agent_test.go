package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

func TestPersistAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cat := newFakeCatalog()
	withDir := func(c *Config) { c.Dir = dir }
	a := newTestAgent(t, cat, withDir)
	web := ttlService("web")
	web.ID = "web/1 ünïcode" // IDs may hold anything
	web.Meta = map[string]string{"v": "1"}
	if err := a.AddService(web, AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddCheck(CheckDefinition{Name: "disk", Type: structs.CheckType{TTL: int64(time.Minute)}}, SourceAPI); err != nil {
		t.Fatal(err)
	}
	if err := a.AddService(ttlService("gone"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveService("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateTTL("service:web/1 ünïcode", "passing", "fine"); err != nil {
		t.Fatal(err)
	}
	if err := a.EnableNodeMaintenance("patching"); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	cat.takeWrites()
	wantSvcs, wantChecks := a.Services(), a.Checks()

	// A torn temporary file and a corrupt entry do not stop the restart.
	os.WriteFile(filepath.Join(dir, "checks", ".tmp-123"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, "checks", "bad.json"), []byte("not json"), 0o600)

	b := newTestAgent(t, cat, withDir)
	if got := b.Services(); !equalJSON(got, wantSvcs) {
		t.Errorf("services after restart\n%+v\nwant\n%+v", got, wantSvcs)
	}
	if got := b.Checks(); !equalJSON(got, wantChecks) {
		t.Errorf("checks after restart\n%+v\nwant\n%+v", got, wantChecks)
	}
	if c := b.Check("service:web/1 ünïcode"); c == nil || c.Status != "passing" || c.Output != "fine" {
		t.Errorf("TTL check state lost: %+v", c)
	}
	// The restarted agent finds the catalog as it left it: nothing to write.
	if err := b.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, cat)
	if _, err := os.Stat(filepath.Join(dir, "checks", ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

func equalJSON[T any](a, b []T) bool {
	return strings.TrimSpace(mustJSON(a)) == strings.TrimSpace(mustJSON(b))
}

func TestReloadDefinitions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	state := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("web.hcl", `service {
  name = "web"
  port = 80
  check { id = "web-ttl", ttl = "1m" }
}`)
	write("node.hcl", `node_name = "ignored here"`)
	write("notes.txt", `service { this is not read }`)
	cat := newFakeCatalog()
	cfg := func(c *Config) { c.DefinitionPaths = []string{dir}; c.Dir = state }
	a := newTestAgent(t, cat, cfg)
	if src, ok := a.ServiceSource("web"); !ok || src != filepath.Join(dir, "web.hcl") {
		t.Fatalf("web source %q %v", src, ok)
	}
	if err := a.AddService(ttlService("api"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	cat.takeWrites()
	if _, err := a.UpdateCheck("web-ttl", "passing", ""); err != nil {
		t.Fatal(err)
	}

	// Unchanged files: nothing changes, statuses stay.
	res, err := a.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 0 || res.Removed != 0 || res.Services != 1 {
		t.Errorf("reload of unchanged files: %+v", res)
	}
	if c := a.Check("web-ttl"); c.Status != "passing" {
		t.Errorf("reload reset the status to %s", c.Status)
	}

	// A broken file: the reload fails naming it, nothing changes.
	write("zz.hcl", "service {\n  name = \"x\"\n  bogus = 1\n}\n")
	if _, err := a.Reload(); err == nil || !strings.Contains(err.Error(), "zz.hcl:3") {
		t.Fatalf("reload with a bad file: %v", err)
	}
	os.Remove(filepath.Join(dir, "zz.hcl"))

	// A new file adds; a changed one replaces; statuses stay.
	write("db.json", `{"service": {"name": "db", "port": 5432}, "check": {"name": "db-up", "service_id": "db", "ttl": "30s"}}`)
	write("web.hcl", `service {
  name = "web"
  port = 8080
  check { id = "web-ttl", ttl = "1m" }
}`)
	if _, err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := a.Service("db"); s == nil || s.Port != 5432 {
		t.Fatalf("db after reload: %+v", s)
	}
	if c := a.Check("db-up"); c == nil || c.ServiceName != "db" {
		t.Fatalf("db check after reload: %+v", c)
	}
	if s := a.Service("web"); s.Port != 8080 {
		t.Errorf("web not replaced: %+v", s)
	}
	if c := a.Check("web-ttl"); c.Status != "passing" {
		t.Errorf("status after replacing the service: %s", c.Status)
	}

	// Removing a file removes what it defined, locally and in the catalog;
	// API registrations stay.
	os.Remove(filepath.Join(dir, "web.hcl"))
	if _, err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.Service("web") != nil || a.Check("web-ttl") != nil {
		t.Error("web still registered after its file was removed")
	}
	if a.Service("api") == nil {
		t.Error("API-registered service removed by reload")
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if cat.service("n1", "web") != nil || cat.service("n1", "db") == nil || cat.service("n1", "api") == nil {
		t.Errorf("catalog after reload: web %v db %v api %v", cat.service("n1", "web"), cat.service("n1", "db"), cat.service("n1", "api"))
	}

	// A restart reads the files again and keeps persisted statuses.
	if _, err := a.UpdateCheck("db-up", "warning", "slow"); err != nil {
		t.Fatal(err)
	}
	b := newTestAgent(t, cat, cfg)
	if c := b.Check("db-up"); c == nil || c.Status != "warning" {
		t.Errorf("file check after restart: %+v", c)
	}
	if b.Service("web") != nil {
		t.Error("removed file's service came back from persisted state")
	}
	// A file that disappears while catalogd is down is noticed at start.
	os.Remove(filepath.Join(dir, "db.json"))
	c := newTestAgent(t, cat, cfg)
	if c.Service("db") != nil {
		t.Error("db came back from persisted state after its file was removed")
	}
	if c.Service("api") == nil {
		t.Error("api lost across restart")
	}

	// A bad file at start-up fails New with file and line.
	write("bad.hcl", "check {\n  name = \"x\"\n}\n")
	_, err = New(Config{Node: NodeInfo{Name: "n1"}, Catalog: cat, DefinitionPaths: []string{dir}})
	if err == nil || !strings.Contains(err.Error(), "bad.hcl:1") {
		t.Errorf("New with a bad file: %v", err)
	}
}

func TestServiceOperations(t *testing.T) {
	cat := newFakeCatalog()
	a := newTestAgent(t, cat)
	web := ServiceDefinition{Name: "web", Checks: []CheckDefinition{
		{Type: structs.CheckType{TTL: int64(time.Minute)}},
		{Name: "http", Type: structs.CheckType{HTTP: "http://x", Interval: int64(time.Second)}},
	}}
	if err := a.AddService(web, AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	// Two unnamed checks are numbered as Consul numbers them.
	if c := a.Check("service:web:1"); c == nil || c.Name != "Service 'web' check" || c.Type != "ttl" {
		t.Fatalf("check 1: %+v", c)
	}
	if c := a.Check("service:web:2"); c == nil || c.Name != "http" || c.Type != "http" {
		t.Fatalf("check 2: %+v", c)
	}
	if got := len(a.RunnableChecks()); got != 2 {
		t.Errorf("%d runnable checks, want 2", got)
	}

	// Re-registering keeps statuses; without replace-existing-checks the
	// checks it no longer names stay, with it they go.
	if _, err := a.UpdateCheck("service:web:2", "passing", "200 OK"); err != nil {
		t.Fatal(err)
	}
	web.Checks = web.Checks[1:2]
	web.Checks[0].ID = "service:web:2"
	web.Tags = []string{"new"}
	if err := a.AddService(web, AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := a.Check("service:web:2"); c.Status != "passing" || c.Output != "200 OK" || len(c.ServiceTags) != 1 {
		t.Errorf("re-registered check %+v", c)
	}
	if c := a.Check("service:web:1"); c == nil || c.ServiceTags[0] != "new" {
		t.Errorf("kept check %+v", c)
	}
	if err := a.AddService(web, AddServiceOptions{ReplaceExistingChecks: true}); err != nil {
		t.Fatal(err)
	}
	if a.Check("service:web:1") != nil {
		t.Error("replace-existing-checks kept an unnamed check")
	}

	// Errors.
	var ve *ValidationError
	if err := a.AddService(ServiceDefinition{}, AddServiceOptions{}); !errors.As(err, &ve) || ve.Msg != "Missing service name" {
		t.Errorf("no name: %v", err)
	}
	if err := a.AddCheck(CheckDefinition{Name: "c", ServiceID: "nope", Type: structs.CheckType{TTL: 1}}, SourceAPI); !errors.Is(err, ErrUnknownService) {
		t.Errorf("check of unknown service: %v", err)
	}
	if err := a.AddCheck(CheckDefinition{Type: structs.CheckType{TTL: 1}}, SourceAPI); !errors.As(err, &ve) || ve.Msg != "Missing check name" {
		t.Errorf("check without name: %v", err)
	}
	if err := a.RemoveService("nope"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("remove unknown service: %v", err)
	}
	if err := a.RemoveCheck("nope"); !errors.Is(err, ErrUnknownCheck) {
		t.Errorf("remove unknown check: %v", err)
	}
	if _, err := a.UpdateTTL("service:web:2", "passing", ""); !errors.Is(err, ErrNotTTL) {
		t.Errorf("TTL update of an HTTP check: %v", err)
	}
	if _, err := a.UpdateTTL("nope", "passing", ""); !errors.Is(err, ErrUnknownCheck) {
		t.Errorf("TTL update of an unknown check: %v", err)
	}
	if _, err := a.UpdateCheck("nope", "passing", ""); !errors.Is(err, ErrUnknownCheck) {
		t.Errorf("update of an unknown check: %v", err)
	}

	// TTL output is capped as Consul caps it.
	if err := a.AddCheck(CheckDefinition{Name: "ttl", Type: structs.CheckType{TTL: int64(time.Minute)}}, SourceAPI); err != nil {
		t.Fatal(err)
	}
	out, err := a.UpdateTTL("ttl", "warning", strings.Repeat("x", 5000))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("x", 4096) + " ... (captured 4096 of 5000 bytes)"; out != want || a.Check("ttl").Output != want {
		t.Errorf("output not capped: %d bytes", len(out))
	}

	// Maintenance.
	if err := a.EnableServiceMaintenance("nope", ""); !errors.Is(err, ErrUnknownService) {
		t.Errorf("maintenance of unknown service: %v", err)
	}
	if err := a.EnableServiceMaintenance("web", ""); err != nil {
		t.Fatal(err)
	}
	c := a.Check("_service_maintenance:web")
	if c == nil || c.Status != "critical" || c.Notes != DefaultServiceMaintReason || c.ServiceName != "web" {
		t.Fatalf("service maintenance check %+v", c)
	}
	if _, checks := a.ServiceHealth("web"); AggregatedStatus(checks) != "maintenance" {
		t.Errorf("aggregated status in maintenance: %s", AggregatedStatus(checks))
	}
	if err := a.EnableNodeMaintenance("kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	if err := a.EnableNodeMaintenance("second reason ignored"); err != nil {
		t.Fatal(err)
	}
	if c := a.Check("_node_maintenance"); c == nil || c.Notes != "kernel upgrade" || c.Name != "Node Maintenance Mode" {
		t.Fatalf("node maintenance check %+v", c)
	}
	if len(a.RunnableChecks()) != 2 {
		t.Errorf("maintenance checks are runnable: %+v", a.RunnableChecks())
	}
	for _, f := range []func() error{a.DisableNodeMaintenance, a.DisableNodeMaintenance, func() error { return a.DisableServiceMaintenance("web") }} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if a.Check("_node_maintenance") != nil || a.Check("_service_maintenance:web") != nil {
		t.Error("maintenance checks left")
	}

	// Removing the service removes its checks.
	if err := a.RemoveService("web"); err != nil {
		t.Fatal(err)
	}
	if a.Check("service:web:2") != nil {
		t.Error("check of a removed service left")
	}
}

func TestChangedWakes(t *testing.T) {
	a := newTestAgent(t, newFakeCatalog())
	ch := a.Changed()
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by a registration")
	}
	// An identical registration is no change.
	ch = a.Changed()
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("identical registration signalled a change")
	default:
	}
}
