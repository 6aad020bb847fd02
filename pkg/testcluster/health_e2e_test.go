package testcluster

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Issue 4, points 1 and 5: services registered through the real Consul
// client with HTTP, TCP, gRPC and TTL checks, run by healthd, change health
// as their targets stop and start; killing healthd or catalogd flaps
// nothing.

// healthWait bounds each wait for a check to change: a 1 s interval, the
// report and the catalog write.
const healthWait = 20 * time.Second

// flipServer is a test server on a fixed loopback address that can be
// stopped and started again on the same address.
type flipServer struct {
	t     *testing.T
	addr  string
	serve func(l net.Listener) (stop func())

	mu   sync.Mutex // guards stop
	stop func()
}

// newFlipServer starts a server with serve on a free loopback port.
func newFlipServer(t *testing.T, serve func(l net.Listener) (stop func())) *flipServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &flipServer{t: t, addr: l.Addr().String(), serve: serve}
	s.stop = serve(l)
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server; the port refuses connections.
func (s *flipServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Start serves again on the same address.
func (s *flipServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.stop = s.serve(l)
}

// serveHTTP serves h on l; with h2c also HTTP/2 without TLS (gRPC).
func serveHTTP(h http.Handler, h2c bool) func(l net.Listener) func() {
	return func(l net.Listener) func() {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		if h2c {
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			srv.Protocols = &p
		}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(l) }()
		return func() { srv.Close(); <-done }
	}
}

// serveTCP accepts and closes connections on l.
func serveTCP(l net.Listener) func() { return serveTCPCounting(nil)(l) }

// serveTCPCounting is serveTCP counting accepted connections in n.
func serveTCPCounting(n *atomic.Int64) func(l net.Listener) func() {
	return func(l net.Listener) func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if n != nil {
					n.Add(1)
				}
				c.Close()
			}
		}()
		return func() { l.Close(); <-done }
	}
}

// grpcHealth answers grpc.health.v1.Health/Check with SERVING, as a gRPC
// server with the standard health service does, written out by hand
// (google.golang.org/grpc is not a dependency).
var grpcHealth = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/grpc")
	if r.URL.Path != "/grpc.health.v1.Health/Check" || r.ProtoMajor != 2 {
		w.Header().Set("Grpc-Status", "12")
		w.WriteHeader(http.StatusOK)
		return
	}
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Trailer", "Grpc-Status")
	w.WriteHeader(http.StatusOK)
	msg := []byte{0x08, 0x01} // status: SERVING
	frame := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	w.Write(append(frame, msg...))
	w.Header().Set("Grpc-Status", "0")
})

// checkOf returns the check's catalog record, or an error saying what is
// there instead.
func checkOf(c *api.Client, service, checkID string) (*api.HealthCheck, error) {
	checks, _, err := c.Health().Checks(service, nil)
	if err != nil {
		return nil, err
	}
	for _, chk := range checks {
		if chk.CheckID == checkID {
			return chk, nil
		}
	}
	return nil, fmt.Errorf("no check %s among %d checks of %s", checkID, len(checks), service)
}

// waitCheck waits until the catalog shows checkID with status, and the
// service's passing-only health list agrees, and returns the check.
func waitCheck(t *testing.T, c *api.Client, service, checkID, status string) *api.HealthCheck {
	t.Helper()
	var got *api.HealthCheck
	waitFor(t, healthWait, fmt.Sprintf("%s %s", checkID, status), func() error {
		chk, err := checkOf(c, service, checkID)
		if err != nil {
			return err
		}
		if chk.Status != status {
			return fmt.Errorf("status %s (%q)", chk.Status, chk.Output)
		}
		passing, _, err := c.Health().Service(service, "", true, nil)
		if err != nil {
			return err
		}
		if want := status == api.HealthPassing; (len(passing) == 1) != want {
			return fmt.Errorf("%d passing instances of %s with the check %s", len(passing), service, status)
		}
		got = chk
		return nil
	})
	return got
}

func TestHealthChecksFollowTargets(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)

	for _, tc := range []struct {
		name   string
		serve  func(l net.Listener) func()
		check  func(addr string) *api.AgentServiceCheck
		output string // prefix of the passing output
	}{
		{"http", serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), false),
			func(a string) *api.AgentServiceCheck {
				return &api.AgentServiceCheck{HTTP: "http://" + a + "/health", Interval: "1s", Timeout: "1s"}
			}, "HTTP GET http://"},
		{"tcp", serveTCP,
			func(a string) *api.AgentServiceCheck {
				return &api.AgentServiceCheck{TCP: a, Interval: "1s", Timeout: "1s"}
			}, "TCP connect "},
		{"grpc", serveHTTP(grpcHealth, true),
			func(a string) *api.AgentServiceCheck {
				return &api.AgentServiceCheck{GRPC: a, Interval: "1s", Timeout: "1s"}
			}, "gRPC check "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFlipServer(t, tc.serve)
			name := "svc-" + tc.name
			if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
				Name: name, Port: 8080, Check: tc.check(srv.addr),
			}); err != nil {
				t.Fatal(err)
			}
			checkID := "service:" + name
			chk := waitCheck(t, client, name, checkID, api.HealthPassing)
			if !strings.HasPrefix(chk.Output, tc.output) {
				t.Errorf("passing output %q, want %q…", chk.Output, tc.output)
			}
			srv.Stop()
			chk = waitCheck(t, client, name, checkID, api.HealthCritical)
			t.Logf("critical: %s", chk.Output)
			srv.Start()
			waitCheck(t, client, name, checkID, api.HealthPassing)
		})
	}

	t.Run("ttl", func(t *testing.T) {
		const name = "svc-ttl"
		if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			Name: name, Port: 8080, Check: &api.AgentServiceCheck{TTL: "3s"},
		}); err != nil {
			t.Fatal(err)
		}
		checkID := "service:" + name
		waitCheck(t, client, name, checkID, api.HealthCritical) // a new TTL check starts critical
		if err := client.Agent().UpdateTTL(checkID, "all good", api.HealthPassing); err != nil {
			t.Fatal(err)
		}
		chk := waitCheck(t, client, name, checkID, api.HealthPassing)
		if chk.Output != "all good" {
			t.Errorf("output %q", chk.Output)
		}
		// Nobody updates it: it expires.
		chk = waitCheck(t, client, name, checkID, api.HealthCritical)
		if chk.Output != "TTL expired (last output before timeout follows): all good" {
			t.Errorf("expired output %q", chk.Output)
		}
		// The legacy endpoints.
		if err := client.Agent().PassTTL(checkID, "pass"); err != nil {
			t.Fatal(err)
		}
		waitCheck(t, client, name, checkID, api.HealthPassing)
		if err := client.Agent().WarnTTL(checkID, "warn"); err != nil {
			t.Fatal(err)
		}
		waitCheck(t, client, name, checkID, api.HealthWarning)
		if err := client.Agent().FailTTL(checkID, "fail"); err != nil {
			t.Fatal(err)
		}
		waitCheck(t, client, name, checkID, api.HealthCritical)
		// Kept alive by updates more often than the TTL, it stays passing.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if err := client.Agent().UpdateTTL(checkID, "alive", api.HealthPassing); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the update cadence under test
		}
		chk = waitCheck(t, client, name, checkID, api.HealthPassing)
		if chk.Output != "alive" {
			t.Errorf("output %q", chk.Output)
		}
	})
}

// flapWatch polls a service's checks until stopped and records every
// status other than passing that it saw, ignoring failed requests (the
// daemon answering them may be down).
type flapWatch struct {
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex // guards seen, polls
	seen   []string
	polls  int
	errors int
}

func watchFlaps(t *testing.T, c *api.Client, services ...string) *flapWatch {
	w := &flapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, s := range services {
				checks, _, err := c.Health().Checks(s, &api.QueryOptions{AllowStale: true})
				w.mu.Lock()
				if err != nil {
					w.errors++
				} else {
					w.polls++
					for _, chk := range checks {
						if chk.Status != api.HealthPassing {
							w.seen = append(w.seen, fmt.Sprintf("%s %s %q", chk.CheckID, chk.Status, chk.Output))
						}
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.finish)
	return w
}

// finish stops the watch and returns what it saw that was not passing.
func (w *flapWatch) finish() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *flapWatch) report() (flaps []string, polls, errors int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...), w.polls, w.errors
}

func TestHealthSurvivesDaemonRestarts(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)

	var webHits, dbHits atomic.Int64
	web := newFlipServer(t, serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		webHits.Add(1)
		io.WriteString(w, "ok")
	}), false))
	db := newFlipServer(t, serveTCPCounting(&dbHits))
	for _, reg := range []*api.AgentServiceRegistration{
		{Name: "web", Port: 80, Check: &api.AgentServiceCheck{HTTP: "http://" + web.addr + "/", Interval: "1s", Timeout: "1s"}},
		{Name: "db", Port: 5432, Check: &api.AgentServiceCheck{TCP: db.addr, Interval: "1s", Timeout: "1s"}},
		{Name: "worker", Port: 9000, Check: &api.AgentServiceCheck{TTL: "60s"}},
	} {
		if err := client.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Agent().UpdateTTL("service:worker", "working", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"web", "db", "worker"} {
		waitCheck(t, client, s, "service:"+s, api.HealthPassing)
	}

	w := watchFlaps(t, client, "web", "db", "worker")
	for _, daemon := range []string{"healthd", "catalogd", "healthd"} {
		if err := n.Kill(daemon); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(daemon); err != nil {
			t.Fatal(err)
		}
		n.WaitReady(t)
		// Every registration is back in the agent, and a few rounds of
		// checks (1 s interval) run after the restart.
		waitFor(t, healthWait, "agent services after restarting "+daemon, func() error {
			svcs, err := client.Agent().Services()
			if err != nil {
				return err
			}
			for _, s := range []string{"web", "db", "worker"} {
				if _, ok := svcs[s]; !ok {
					return fmt.Errorf("service %s missing after restart (have %d)", s, len(svcs))
				}
			}
			return nil
		})
		// Three more runs of each interval check, watched all along.
		wantWeb, wantDB := webHits.Load()+3, dbHits.Load()+3
		waitFor(t, healthWait, "checks running after restarting "+daemon, func() error {
			if webHits.Load() < wantWeb || dbHits.Load() < wantDB {
				return fmt.Errorf("web checked %d, db %d times", webHits.Load(), dbHits.Load())
			}
			return nil
		})
		for _, s := range []string{"web", "db", "worker"} {
			waitCheck(t, client, s, "service:"+s, api.HealthPassing)
		}
	}
	w.finish()
	flaps, polls, errs := w.report()
	t.Logf("watched %d polls (%d failed while a daemon was down)", polls, errs)
	if len(flaps) > 0 {
		t.Errorf("checks left passing during restarts (%d observations), first: %s", len(flaps), flaps[0])
	}

	// After all that, the checks still follow their targets.
	web.Stop()
	waitCheck(t, client, "web", "service:web", api.HealthCritical)
	web.Start()
	waitCheck(t, client, "web", "service:web", api.HealthPassing)
}
