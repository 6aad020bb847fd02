package agent

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

func ttlService(name string) ServiceDefinition {
	return ServiceDefinition{Name: name, Port: 80, Tags: []string{"t"},
		Checks: []CheckDefinition{{Type: structs.CheckType{TTL: int64(time.Minute)}}}}
}

func wantWrites(t *testing.T, cat *fakeCatalog, want ...string) {
	t.Helper()
	got := cat.takeWrites()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("catalog writes\n%q\nwant\n%q", got, want)
	}
}

func TestSyncDiff(t *testing.T) {
	ctx := context.Background()
	cat := newFakeCatalog()
	a := newTestAgent(t, cat)
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first sync is a full one: node, then the service with its check.
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, cat, "register node", "register service:web check:service:web")
	if s := cat.service("n1", "web"); s == nil || s.Port != 80 || *s.Weights != (structs.Weights{Passing: 1, Warning: 1}) {
		t.Fatalf("catalog service %+v", s)
	}
	if c := cat.check("n1", "service:web"); c == nil || c.Status != "critical" || c.ServiceName != "web" || c.Type != "ttl" {
		t.Fatalf("catalog check %+v", c)
	}

	t.Run("unchanged agent writes nothing", func(t *testing.T) {
		if err := a.SyncFull(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.SyncChanges(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat)
	})

	t.Run("catalog changed behind the agent's back is repaired", func(t *testing.T) {
		cat.mu.Lock()
		cat.services["n1"]["web"].Port = 81
		cat.checks["n1"]["service:web"].Status = "passing"
		cat.nodes["n1"].Meta = map[string]string{"rack": "other"}
		cat.mu.Unlock()
		if err := a.SyncFull(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat, "register node", "register service:web check:service:web")
		if s := cat.service("n1", "web"); s.Port != 80 {
			t.Errorf("port not repaired: %d", s.Port)
		}
		if c := cat.check("n1", "service:web"); c.Status != "critical" {
			t.Errorf("status not repaired: %s", c.Status)
		}
	})

	t.Run("catalog entries the agent lacks are removed, serfHealth kept", func(t *testing.T) {
		cat.mu.Lock()
		cat.services["n1"]["rogue"] = &structs.NodeService{ID: "rogue", Service: "rogue"}
		cat.checks["n1"]["rogue-check"] = &structs.HealthCheck{Node: "n1", CheckID: "rogue-check", ServiceID: "rogue", Status: "passing"}
		cat.checks["n1"]["orphan"] = &structs.HealthCheck{Node: "n1", CheckID: "orphan", Status: "passing"}
		cat.checks["n1"][structs.SerfCheckID] = &structs.HealthCheck{Node: "n1", CheckID: structs.SerfCheckID, Status: "passing"}
		cat.services["other"] = map[string]*structs.NodeService{"x": {ID: "x", Service: "x"}}
		cat.mu.Unlock()
		if err := a.SyncFull(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat, "deregister service:rogue", "deregister check:orphan")
		if cat.check("n1", structs.SerfCheckID) == nil {
			t.Error("serfHealth removed")
		}
		if cat.service("other", "x") == nil {
			t.Error("another node's service removed")
		}
		// Deleted entries are forgotten once the catalog forgot them.
		if err := a.SyncFull(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat)
		a.mu.Lock()
		n := len(a.services)
		a.mu.Unlock()
		if n != 1 {
			t.Errorf("agent keeps %d service entries, want 1", n)
		}
	})

	t.Run("local changes sync alone", func(t *testing.T) {
		if _, err := a.UpdateCheck("service:web", "passing", "ok"); err != nil {
			t.Fatal(err)
		}
		if err := a.SyncChanges(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat, "register check:service:web")
		if err := a.RemoveService("web"); err != nil {
			t.Fatal(err)
		}
		if err := a.SyncChanges(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat, "deregister service:web")
		if cat.check("n1", "service:web") != nil {
			t.Error("check of the removed service still in the catalog")
		}
		if err := a.SyncFull(ctx); err != nil {
			t.Fatal(err)
		}
		wantWrites(t, cat)
	})
}

// hookCatalog runs hook before each Register, once.
type hookCatalog struct {
	*fakeCatalog
	hook func()
}

func (h *hookCatalog) Register(ctx context.Context, req *structs.RegisterRequest) error {
	if h.hook != nil {
		f := h.hook
		h.hook = nil
		f()
	}
	return h.fakeCatalog.Register(ctx, req)
}

func TestSyncChangeDuringWrite(t *testing.T) {
	ctx := context.Background()
	fc := newFakeCatalog()
	cat := &hookCatalog{fakeCatalog: fc}
	a, err := New(Config{Node: NodeInfo{Name: "n1"}, Catalog: cat, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	fc.takeWrites()
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	// While the service is being written, it changes: the write must not
	// mark the new version in sync.
	cat.hook = func() {
		s := ttlService("web")
		s.Port = 99
		if err := a.AddService(s, AddServiceOptions{}); err != nil {
			t.Error(err)
		}
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if s := fc.service("n1", "web"); s == nil || s.Port != 99 {
		t.Fatalf("catalog service %+v, want port 99", s)
	}
}

func TestRunRetriesWithoutLeader(t *testing.T) {
	cat := newFakeCatalog()
	noLeader := errors.New("No cluster leader")
	cat.setErr(noLeader)
	a := newTestAgent(t, cat, func(c *Config) {
		c.RetryMin, c.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); !errors.Is(err, noLeader) {
		t.Fatalf("sync without leader: %v", err)
	}
	cat.setErr(nil)
	waitFor(t, "service in the catalog", func() bool { return cat.service("n1", "web") != nil })

	// Later changes are pushed by the loop without anyone calling sync.
	if _, err := a.UpdateCheck("service:web", "passing", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "check passing in the catalog", func() bool {
		c := cat.check("n1", "service:web")
		return c != nil && c.Status == "passing"
	})
}

func TestOutputChangeDeferred(t *testing.T) {
	ctx := context.Background()
	cat := newFakeCatalog()
	a := newTestAgent(t, cat, func(c *Config) { c.CheckUpdateInterval = time.Hour })
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	cat.takeWrites()

	// Output alone waits; the agent shows it at once.
	if _, err := a.UpdateTTL("service:web", "critical", "still down"); err != nil {
		t.Fatal(err)
	}
	if c := a.Check("service:web"); c.Output != "still down" {
		t.Errorf("agent output %q", c.Output)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, cat)

	// A status change goes at once, with the latest output.
	if _, err := a.UpdateTTL("service:web", "passing", "up"); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	wantWrites(t, cat, "register check:service:web")
	if c := cat.check("n1", "service:web"); c.Output != "up" || c.Status != "passing" {
		t.Errorf("catalog check %+v", c)
	}

	// When the deferral ends the output is synced.
	a.mu.Lock()
	a.cfg.CheckUpdateInterval = time.Millisecond
	a.mu.Unlock()
	if _, err := a.UpdateTTL("service:web", "passing", "up again"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deferral to end", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return !a.checks["service:web"].inSync
	})
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cat.check("n1", "service:web"); c.Output != "up again" {
		t.Errorf("catalog output %q", c.Output)
	}

	// A runner's report is synced at once, output alone included: the
	// runner already held it back.
	if _, err := a.UpdateCheck("service:web", "passing", "from healthd"); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cat.check("n1", "service:web"); c.Output != "from healthd" {
		t.Errorf("catalog output %q", c.Output)
	}
}

func TestRejectedWriteDoesNotLoop(t *testing.T) {
	ctx := context.Background()
	cat := newFakeCatalog()
	a := newTestAgent(t, cat)
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	cat.takeWrites()
	// The catalog loses the node: registering a check alone (node update
	// skipped) is refused; the pass still succeeds, and the next full
	// sync registers the node again.
	cat.mu.Lock()
	delete(cat.nodes, "n1")
	cat.mu.Unlock()
	if err := a.AddCheck(CheckDefinition{Name: "c", Type: structs.CheckType{TTL: int64(time.Minute)}}, SourceAPI); err != nil {
		t.Fatal(err)
	}
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatalf("rejected write failed the pass: %v", err)
	}
	if err := a.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	if cat.check("n1", "c") == nil {
		t.Error("check not registered after the full sync")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRunPeriodicRepair(t *testing.T) {
	cat := newFakeCatalog()
	a := newTestAgent(t, cat, func(c *Config) { c.SyncInterval = 20 * time.Millisecond })
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitFor(t, "initial sync", func() bool { return cat.service("n1", "web") != nil })
	// Nobody tells the agent: the periodic diff finds and repairs it.
	cat.mu.Lock()
	delete(cat.services["n1"], "web")
	cat.services["n1"]["rogue"] = &structs.NodeService{ID: "rogue", Service: "rogue"}
	cat.mu.Unlock()
	waitFor(t, "periodic repair", func() bool {
		return cat.service("n1", "web") != nil && cat.service("n1", "rogue") == nil
	})
}

func TestSyncDisabled(t *testing.T) {
	cat := newFakeCatalog()
	a := newTestAgent(t, cat, func(c *Config) { c.SyncInterval = -1 })
	if err := a.AddService(ttlService("web"), AddServiceOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := a.SyncChanges(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantWrites(t, cat)
}
