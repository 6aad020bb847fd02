package healthd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/structs"
)

// switchServer is an HTTP server whose answer code the test sets.
type switchServer struct {
	*httptest.Server
	code atomic.Int32
	hits atomic.Int64
}

func newSwitchServer(t *testing.T, code int) *switchServer {
	s := &switchServer{}
	s.code.Store(int32(code))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.WriteHeader(int(s.code.Load()))
		fmt.Fprint(w, "body")
	}))
	t.Cleanup(s.Close)
	return s
}

func httpDef(url string, interval time.Duration) structs.CheckType {
	return structs.CheckType{HTTP: url, Interval: int64(interval), Timeout: int64(time.Second)}
}

func statuses(rs []catalogapi.CheckResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Status)
	}
	return out
}

func TestReportsOnlyChanges(t *testing.T) {
	srv := newSwitchServer(t, 200)
	cat := newFakeCatalog()
	cat.echo = true
	cat.set(check("web-http", httpDef(srv.URL, 10*time.Second), structs.HealthCritical))
	e := newEnv(t, cat, nil)

	out := e.waitStatus("web-http", structs.HealthPassing, time.Second)
	if want := "HTTP GET " + srv.URL + ": 200 OK Output: body"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	// Several more runs, all passing: nothing more is reported.
	hits := srv.hits.Load()
	e.waitFor("three more runs", time.Second, func() bool { return srv.hits.Load() >= hits+3 })
	srv.code.Store(500)
	e.waitStatus("web-http", structs.HealthCritical, time.Second)
	if got := statuses(e.cat.reportsFor("web-http")); strings.Join(got, ",") != "passing,critical" {
		t.Errorf("reports %v, want [passing critical]", got)
	}
}

func TestTTL(t *testing.T) {
	cat := newFakeCatalog()
	cat.set(
		check("web-ttl", structs.CheckType{TTL: int64(10 * time.Second)}, structs.HealthCritical),
		check("web-tcp", structs.CheckType{TCP: "127.0.0.1:1", Interval: int64(time.Hour)}, structs.HealthCritical),
	)
	e := newEnv(t, cat, nil)
	ctx := context.Background()
	e.waitFor("checks loaded", 0, func() bool { st, _ := e.health.status(ctx); return st != nil && len(st.Checks) == 2 })

	start := e.clock.Now()
	if err := e.health.updateTTL(ctx, "web-ttl", structs.HealthPassing, "all good"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("web-ttl", structs.HealthPassing, 0)
	e.clock.Advance(9 * time.Second)
	if err := e.health.updateTTL(ctx, "web-ttl", structs.HealthWarning, "meh"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("web-ttl", structs.HealthWarning, 0)
	st, _ := e.health.status(ctx)
	if got, want := st.Checks[1].NextRun, start.Add(19*time.Second); st.Checks[1].CheckID != "web-ttl" || !got.Equal(want) {
		t.Errorf("TTL expiry at %v, want %v (re-armed by the update)", got, want)
	}
	e.clock.Advance(9 * time.Second) // 18s after start, 9s after the update
	out := e.waitStatus("web-ttl", structs.HealthCritical, time.Second)
	if out != "TTL expired (last output before timeout follows): meh" {
		t.Errorf("expired output %q", out)
	}
	if now := e.clock.Now(); now.Before(start.Add(19 * time.Second)) {
		t.Errorf("expired at %v, before the TTL", now.Sub(start))
	}
	if got := statuses(cat.reportsFor("web-ttl")); strings.Join(got, ",") != "passing,warning,critical" {
		t.Errorf("reports %v", got)
	}

	for _, tc := range []struct {
		id, status string
		want       error
	}{
		{"nope", structs.HealthPassing, healthapi.ErrUnknownCheck},
		{"web-tcp", structs.HealthPassing, healthapi.ErrNotTTL},
		{"web-ttl", "green", ipc.ErrBadRequest},
	} {
		if err := e.health.updateTTL(ctx, tc.id, tc.status, ""); !errors.Is(err, tc.want) {
			t.Errorf("UpdateTTL(%s, %s): %v, want %v", tc.id, tc.status, err, tc.want)
		}
	}
}

func TestWorkerPoolBound(t *testing.T) {
	const n, limit = 40, 4
	release := make(chan struct{})
	var cur, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		<-release
		cur.Add(-1)
	}))
	defer srv.Close()
	cat := newFakeCatalog()
	var defs []catalogapi.CheckDefinition
	for i := range n {
		defs = append(defs, check(fmt.Sprintf("c%02d", i), structs.CheckType{HTTP: srv.URL, Interval: int64(time.Minute), Timeout: int64(30 * time.Second)}, structs.HealthCritical))
	}
	cat.set(defs...)
	e := newEnv(t, cat, func(c *Config) { c.MaxRunning = limit })
	ctx := context.Background()
	e.waitFor("checks loaded", 0, func() bool { st, _ := e.health.status(ctx); return st != nil && len(st.Checks) == n })

	// First runs are staggered over the interval.
	st, _ := e.health.status(ctx)
	now := e.clock.Now()
	distinct := map[time.Time]bool{}
	for _, c := range st.Checks {
		if c.NextRun.Before(now) || !c.NextRun.Before(now.Add(time.Minute)) {
			t.Errorf("%s first run at %v, outside the interval", c.CheckID, c.NextRun.Sub(now))
		}
		distinct[c.NextRun] = true
	}
	if len(distinct) < n/2 {
		t.Errorf("first runs not staggered: %d distinct times for %d checks", len(distinct), n)
	}

	e.clock.Advance(time.Minute) // every check is due
	e.waitFor("the pool full", 0, func() bool {
		st, _ := e.health.status(ctx)
		return cur.Load() == limit && st.Running == limit && st.Queued == n-limit
	})
	close(release)
	e.waitFor("every check reported", 0, func() bool {
		for _, d := range defs {
			if s, _ := cat.status(d.CheckID); s != structs.HealthPassing {
				return false
			}
		}
		return true
	})
	if p := peak.Load(); p > limit {
		t.Errorf("%d checks ran at once, limit %d", p, limit)
	}
}

func TestReconnectReportsDifferences(t *testing.T) {
	srv := newSwitchServer(t, 200)
	cat := newFakeCatalog()
	cat.echo = true
	cat.set(check("web-http", httpDef(srv.URL, 10*time.Second), structs.HealthCritical))
	e := newEnv(t, cat, nil)
	e.waitStatus("web-http", structs.HealthPassing, time.Second)

	// catalogd restarts (the stream breaks) and comes back: same state,
	// nothing to report.
	e.catL.Cut()
	e.waitFor("the stream reopened", 0, func() bool { return cat.watchCount() >= 2 })
	e.waitFor("connected", 0, func() bool { st, _ := e.health.status(context.Background()); return st != nil && st.Connected })

	// catalogd comes back with an older status (say it lost the last
	// report): healthd reports what it found.
	cat.mu.Lock()
	d := cat.checks["web-http"]
	d.Status, d.Output = structs.HealthWarning, "stale"
	cat.checks["web-http"] = d
	cat.mu.Unlock()
	e.catL.Cut()
	e.waitStatus("web-http", structs.HealthPassing, 0)
	for _, r := range cat.reportsFor("web-http") {
		if r.Status != structs.HealthPassing {
			t.Errorf("reported %s", r.Status)
		}
	}

	// While catalogd refuses reports, changes wait and then go through.
	cat.setFail(true)
	srv.code.Store(503)
	e.waitFor("a failing run", time.Second, func() bool {
		st, _ := e.health.status(context.Background())
		return st != nil && len(st.Checks) == 1 && st.Checks[0].Status == structs.HealthCritical
	})
	cat.setFail(false)
	e.waitStatus("web-http", structs.HealthCritical, 0)
}

func TestRestartDoesNotFlap(t *testing.T) {
	srv := newSwitchServer(t, 200)
	cat := newFakeCatalog()
	cat.echo = true
	cat.set(
		check("web-http", structs.CheckType{HTTP: srv.URL, Interval: int64(10 * time.Second), SuccessBeforePassing: 3}, structs.HealthCritical),
		check("web-ttl", structs.CheckType{TTL: int64(30 * time.Second)}, structs.HealthCritical),
	)
	e := newEnv(t, cat, nil)
	ctx := context.Background()
	e.waitStatus("web-http", structs.HealthPassing, time.Second)
	if err := e.health.updateTTL(ctx, "web-ttl", structs.HealthPassing, "fine"); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("web-ttl", structs.HealthPassing, 0)
	before := len(cat.allReports())

	// healthd restarts; catalogd streams the statuses it holds.
	e.stop()
	e.start(nil)
	e.waitFor("checks loaded", 0, func() bool { st, _ := e.health.status(ctx); return st != nil && st.Connected && len(st.Checks) == 2 })
	hits := srv.hits.Load()
	e.waitFor("two runs after the restart", time.Second, func() bool { return srv.hits.Load() >= hits+2 })
	if got := cat.allReports()[before:]; len(got) != 0 {
		t.Errorf("reports after the restart: %+v", got)
	}
	// The TTL restarted with healthd: it expires a full TTL after it.
	st, _ := e.health.status(ctx)
	if st.Checks[1].Status != structs.HealthPassing || st.Checks[1].NextRun.IsZero() {
		t.Errorf("TTL check after restart: %+v", st.Checks[1])
	}
	e.waitStatus("web-ttl", structs.HealthCritical, 5*time.Second)
}

func TestDeregisterCriticalServiceAfter(t *testing.T) {
	cat := newFakeCatalog()
	cat.set(check("web-tcp", structs.CheckType{TCP: "127.0.0.1:1", Interval: int64(5 * time.Second), DeregisterCriticalServiceAfter: int64(time.Minute)}, structs.HealthPassing))
	e := newEnv(t, cat, nil)
	e.waitStatus("web-tcp", structs.HealthCritical, time.Second)
	turned := e.clock.Now()
	e.waitFor("a deregister report", 5*time.Second, func() bool {
		for _, r := range cat.reportsFor("web-tcp") {
			if r.Deregister {
				return true
			}
		}
		return false
	})
	if d := e.clock.Now().Sub(turned); d < time.Minute-5*time.Second {
		t.Errorf("deregistered %v after turning critical", d)
	}
	// More runs, still critical: no second deregister report.
	e.clock.Advance(2 * time.Minute)
	n := 0
	for _, r := range cat.reportsFor("web-tcp") {
		if r.Deregister {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d deregister reports", n)
	}
}

func TestOutputOnlyChangesDeferred(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "run %d", n.Add(1))
	}))
	defer srv.Close()
	cat := newFakeCatalog()
	cat.set(check("web-http", httpDef(srv.URL, 10*time.Second), structs.HealthCritical))
	e := newEnv(t, cat, func(c *Config) { c.OutputUpdateInterval = time.Minute })
	e.waitStatus("web-http", structs.HealthPassing, time.Second)
	e.waitFor("more runs", 5*time.Second, func() bool { return n.Load() >= 4 })
	if got := len(cat.reportsFor("web-http")); got != 1 {
		t.Errorf("%d reports before the output interval", got)
	}
	e.waitFor("the deferred output report", 5*time.Second, func() bool { return len(cat.reportsFor("web-http")) == 2 })
	rs := cat.reportsFor("web-http")
	if rs[1].Status != structs.HealthPassing || rs[1].Output == rs[0].Output {
		t.Errorf("deferred report %+v", rs[1])
	}
}

func TestDefinitionChangesAndRemoval(t *testing.T) {
	srv := newSwitchServer(t, 200)
	cat := newFakeCatalog()
	cat.set(
		check("web-script", structs.CheckType{Args: []string{"true"}, Interval: int64(time.Second)}, structs.HealthPassing),
		check("web-bad", structs.CheckType{HTTP: srv.URL}, structs.HealthPassing), // no interval
		check("maint", structs.CheckType{}, structs.HealthCritical),               // not run by healthd
	)
	e := newEnv(t, cat, nil)
	out := e.waitStatus("web-script", structs.HealthCritical, time.Second)
	if !strings.Contains(out, "script checks are disabled") {
		t.Errorf("script output %q", out)
	}
	out = e.waitStatus("web-bad", structs.HealthCritical, 0)
	if !strings.Contains(out, "needs an interval") {
		t.Errorf("invalid output %q", out)
	}
	// A fixed definition replaces the check.
	cat.set(check("web-bad", httpDef(srv.URL, time.Second), structs.HealthCritical))
	e.waitStatus("web-bad", structs.HealthPassing, time.Second)
	cat.remove("web-bad")
	e.waitFor("the check gone", 0, func() bool {
		st, _ := e.health.status(context.Background())
		return st != nil && len(st.Checks) == 2
	})
	if got := cat.reportsFor("maint"); len(got) != 0 {
		t.Errorf("maintenance check reported: %+v", got)
	}
}

func TestScriptChecksEnabled(t *testing.T) {
	cat := newFakeCatalog()
	cat.set(check("web-script", structs.CheckType{Args: []string{"sh", "-c", "echo fine"}, Interval: int64(time.Second)}, structs.HealthCritical))
	e := newEnv(t, cat, func(c *Config) { c.EnableScriptChecks = true })
	if out := e.waitStatus("web-script", structs.HealthPassing, time.Second); out != "fine\n" {
		t.Errorf("output %q", out)
	}
}

// fakeHealthAPI serves /v1/health/node/<node> and /v1/catalog/node/<node>
// from a list of checks, with blocking queries on an index.
type fakeHealthAPI struct {
	mu       sync.Mutex
	index    uint64
	checks   []aliasCheck
	services map[string]bool
	changed  chan struct{}
}

func (f *fakeHealthAPI) set(checks []aliasCheck, services ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.checks = checks
	f.services = map[string]bool{}
	for _, s := range services {
		f.services[s] = true
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeHealthAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	idx, ch := f.index, f.changed
	f.mu.Unlock()
	if q := r.URL.Query().Get("index"); q != "" && q == fmt.Sprint(idx) {
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("X-Consul-Index", fmt.Sprint(f.index))
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/health/node/"):
		node := strings.TrimPrefix(r.URL.Path, "/v1/health/node/")
		var out []aliasCheck
		for _, c := range f.checks {
			if c.Node == node {
				out = append(out, c)
			}
		}
		writeJSON(w, out)
	case strings.HasPrefix(r.URL.Path, "/v1/catalog/node/"):
		svcs := map[string]any{}
		for s := range f.services {
			svcs[s] = map[string]string{"ID": s}
		}
		writeJSON(w, map[string]any{"Services": svcs})
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(v)
	w.Write(b)
}

func TestAliasCheck(t *testing.T) {
	api := &fakeHealthAPI{index: 1, changed: make(chan struct{})}
	api.set([]aliasCheck{
		{Node: "node-2", CheckID: "serfHealth", Name: "Serf", Status: structs.HealthPassing},
		{Node: "node-2", CheckID: "db-http", Name: "db http", Status: structs.HealthPassing, ServiceID: "db"},
		{Node: "node-2", CheckID: "other", Name: "other", Status: structs.HealthCritical, ServiceID: "other"},
	}, "db", "other")
	hs := httptest.NewServer(api)
	defer hs.Close()
	cat := newFakeCatalog()
	cat.set(check("web-alias", structs.CheckType{AliasNode: "node-2", AliasService: "db"}, structs.HealthCritical))
	e := newEnv(t, cat, func(c *Config) { c.HTTPAddr = hs.Listener.Addr().String(); c.AliasWait = time.Second })
	if out := e.waitStatus("web-alias", structs.HealthPassing, 0); out != "All checks passing." {
		t.Errorf("output %q", out)
	}
	api.set([]aliasCheck{
		{Node: "node-2", CheckID: "serfHealth", Name: "Serf", Status: structs.HealthPassing},
		{Node: "node-2", CheckID: "db-http", Name: "db http", Status: structs.HealthCritical, Output: "down", ServiceID: "db"},
	}, "db")
	if out := e.waitStatus("web-alias", structs.HealthCritical, 0); out != `Aliased check "db http" failing: down` {
		t.Errorf("output %q", out)
	}
	api.set(nil)
	e.waitFor("the alias critical for a missing service", 0, func() bool {
		s, out := cat.status("web-alias")
		return s == structs.HealthCritical && out == "Service db could not be found on node node-2"
	})
	api.set([]aliasCheck{{Node: "node-2", CheckID: "serfHealth", Name: "Serf", Status: structs.HealthWarning, Output: "slow"}}, "db")
	e.waitStatus("web-alias", structs.HealthWarning, 0)
}

func TestOutputChangesReportedByDefault(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "run %d", n.Add(1))
	}))
	defer srv.Close()
	cat := newFakeCatalog()
	cat.set(check("web-http", httpDef(srv.URL, 10*time.Second), structs.HealthCritical))
	e := newEnv(t, cat, nil)
	e.waitFor("three reports", 5*time.Second, func() bool { return len(cat.reportsFor("web-http")) >= 3 })
	if got := statuses(cat.reportsFor("web-http")); got[1] != structs.HealthPassing || got[2] != structs.HealthPassing {
		t.Errorf("reports %v", got)
	}
}

// TestThousandChecks runs a thousand TCP checks through a small pool: every
// one runs and is reported, in batches.
func TestThousandChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cat := newFakeCatalog()
	var defs []catalogapi.CheckDefinition
	for i := range 1000 {
		defs = append(defs, check(fmt.Sprintf("c%04d", i), structs.CheckType{TCP: l.Addr().String(), Interval: int64(10 * time.Second)}, structs.HealthCritical))
	}
	cat.set(defs...)
	e := newEnv(t, cat, func(c *Config) { c.MaxRunning = 16 })
	e.waitFor("every check passing", time.Second, func() bool {
		for _, d := range defs {
			if s, _ := cat.status(d.CheckID); s != structs.HealthPassing {
				return false
			}
		}
		return true
	})
	st, err := e.health.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Reports < 4 || st.Running > 16 {
		t.Errorf("%d report calls for 1000 checks (max 256 each), %d running", st.Reports, st.Running)
	}
	if n := len(cat.allReports()); n != 1000 {
		t.Errorf("%d results reported, want 1000", n)
	}
}
