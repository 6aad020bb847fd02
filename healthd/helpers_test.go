package healthd

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/ipc/ipctest"
	"github.com/consort-io/consort/pkg/structs"
)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	at     time.Time
	active bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{c: f, ch: make(chan time.Time, 1)}
	f.timers = append(f.timers, t)
	t.armLocked(d)
	return t
}

// Advance moves time forward by d and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.timers {
		if t.active && !t.at.After(f.now) {
			t.fireLocked()
		}
	}
}

func (t *fakeTimer) armLocked(d time.Duration) {
	t.at, t.active = t.c.now.Add(d), true
	if d <= 0 {
		t.fireLocked()
	}
}

func (t *fakeTimer) fireLocked() {
	t.active = false
	select {
	case t.ch <- t.c.now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	select {
	case <-t.ch:
	default:
	}
	return was
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.armLocked(d)
}

// fakeCatalog is an in-memory catalogd serving WatchChecks and
// ReportChecks over the real ipc framing. Like catalogd it applies
// reports to its checks and, with echo, streams the changed checks back.
type fakeCatalog struct {
	echo bool

	mu       sync.Mutex
	checks   map[string]catalogapi.CheckDefinition
	reports  []catalogapi.CheckResult
	watchers map[chan *catalogapi.ChecksUpdate]bool
	watches  int // WatchChecks calls served
	fail     bool
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{checks: map[string]catalogapi.CheckDefinition{}, watchers: map[chan *catalogapi.ChecksUpdate]bool{}}
}

func (f *fakeCatalog) WatchChecks(ctx context.Context, _ *catalogapi.WatchChecksRequest, send func(*catalogapi.ChecksUpdate) error) error {
	ch := make(chan *catalogapi.ChecksUpdate, 1024)
	f.mu.Lock()
	full := &catalogapi.ChecksUpdate{Full: true, Checks: f.sortedLocked()}
	f.watchers[ch] = true
	f.watches++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.watchers, ch)
		f.mu.Unlock()
	}()
	if err := send(full); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u := <-ch:
			if err := send(u); err != nil {
				return err
			}
		}
	}
}

func (f *fakeCatalog) ReportChecks(_ context.Context, req *catalogapi.ReportChecksRequest) (*catalogapi.ReportChecksResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, ipc.ErrUnavailable
	}
	resp := &catalogapi.ReportChecksResponse{}
	var changed []catalogapi.CheckDefinition
	for _, r := range req.Results {
		f.reports = append(f.reports, r)
		def, ok := f.checks[r.CheckID]
		if !ok {
			resp.Unknown = append(resp.Unknown, r.CheckID)
			continue
		}
		def.Status, def.Output = r.Status, r.Output
		f.checks[r.CheckID] = def
		changed = append(changed, def)
	}
	if f.echo && len(changed) > 0 {
		f.pushLocked(&catalogapi.ChecksUpdate{Checks: changed})
	}
	return resp, nil
}

func (f *fakeCatalog) sortedLocked() []catalogapi.CheckDefinition {
	out := make([]catalogapi.CheckDefinition, 0, len(f.checks))
	for _, d := range f.checks {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CheckID < out[j].CheckID })
	return out
}

func (f *fakeCatalog) pushLocked(u *catalogapi.ChecksUpdate) {
	for ch := range f.watchers {
		select {
		case ch <- u:
		default:
			panic("fakeCatalog: watcher too slow")
		}
	}
}

// set adds or replaces a check and streams it.
func (f *fakeCatalog) set(defs ...catalogapi.CheckDefinition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range defs {
		if d.Status == "" {
			d.Status = structs.HealthCritical
		}
		f.checks[d.CheckID] = d
	}
	f.pushLocked(&catalogapi.ChecksUpdate{Checks: defs})
}

// remove deletes checks and streams the removal.
func (f *fakeCatalog) remove(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.checks, id)
	}
	f.pushLocked(&catalogapi.ChecksUpdate{Removed: ids})
}

func (f *fakeCatalog) status(id string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.checks[id]
	return d.Status, d.Output
}

func (f *fakeCatalog) reportsFor(id string) []catalogapi.CheckResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []catalogapi.CheckResult
	for _, r := range f.reports {
		if r.CheckID == id {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeCatalog) allReports() []catalogapi.CheckResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]catalogapi.CheckResult(nil), f.reports...)
}

func (f *fakeCatalog) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

func (f *fakeCatalog) watchCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watches
}

// env is a healthd under test with its fake catalogd.
type env struct {
	t      *testing.T
	cat    *fakeCatalog
	catL   *ipctest.Listener // catalogd's socket; Cut breaks healthd's stream
	clock  *fakeClock
	d      *Daemon
	health *healthClient
	cancel context.CancelFunc
	done   chan error
	stopFn func()
}

// healthClient calls healthd's socket.
type healthClient struct{ c *ipc.Client }

func (h *healthClient) updateTTL(ctx context.Context, id, status, output string) error {
	_, err := ipc.Call[healthapi.UpdateTTLRequest, healthapi.UpdateTTLResponse](ctx, h.c, healthapi.MethodUpdateTTL, &healthapi.UpdateTTLRequest{CheckID: id, Status: status, Output: output})
	return err
}

func (h *healthClient) status(ctx context.Context) (*healthapi.StatusResponse, error) {
	return ipc.Call[healthapi.StatusRequest, healthapi.StatusResponse](ctx, h.c, healthapi.MethodStatus, &healthapi.StatusRequest{})
}

// newEnv starts a fake catalogd and a healthd on it; mod may change the
// healthd Config first.
func newEnv(t *testing.T, cat *fakeCatalog, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, cat: cat, clock: newFakeClock()}
	e.catL = ipctest.NewListener()
	mux := ipc.NewMux()
	catalogapi.RegisterChecks(mux, cat)
	srv := ipc.NewServer(ipc.ServerConfig{Mux: mux, Log: testLogger(t)})
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { defer close(sdone); srv.Serve(sctx, e.catL) }()
	t.Cleanup(func() { scancel(); e.catL.Cut(); <-sdone })
	e.start(mod)
	return e
}

// start starts a (new) healthd.
func (e *env) start(mod func(*Config)) {
	t := e.t
	t.Helper()
	hl := ipctest.NewListener()
	catClient := catalogapi.NewClient(e.catL.Client())
	cfg := Config{
		Node:         "node-1",
		Listener:     hl,
		Catalog:      catClient,
		Clock:        e.clock,
		Log:          testLogger(t),
		MinInterval:  time.Millisecond,
		ReportDelay:  time.Millisecond,
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.d, e.cancel, e.done = d, cancel, make(chan error, 1)
	go func() { e.done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-e.done:
		t.Fatalf("healthd Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("healthd not ready")
	}
	hc := hl.Client()
	e.health = &healthClient{c: hc}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-e.done; err != nil {
			t.Errorf("healthd Run: %v", err)
		}
		hc.Close()
		catClient.Close()
	}
	e.stopFn = stop
	t.Cleanup(stop)
}

// stop stops the running healthd (as a restart would, before start).
func (e *env) stop() { e.stopFn() }

// waitFor polls cond until it holds, advancing the fake clock by step
// between polls (0: not at all), failing the test after 10 s.
func (e *env) waitFor(what string, step time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		if step > 0 {
			e.clock.Advance(step)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitStatus waits until the fake catalogd holds status for id.
func (e *env) waitStatus(id, status string, step time.Duration) string {
	e.t.Helper()
	var out string
	e.waitFor(id+" "+status+" in catalogd", step, func() bool {
		var s string
		s, out = e.cat.status(id)
		return s == status
	})
	return out
}

// check is a CheckDefinition for tests.
func check(id string, t structs.CheckType, status string) catalogapi.CheckDefinition {
	return catalogapi.CheckDefinition{CheckID: id, Name: id, ServiceID: "web", ServiceName: "web", Status: status, Definition: t}
}

// testLogger writes through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
