package bus_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/embednats"
	"github.com/nats-io/nats.go"
)

// testLog is a slog logger writing through t.Log that goes quiet once the
// test ends (nats.go callbacks may log late).
func testLog(t *testing.T) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func startNATS(t *testing.T, port int) *embednats.Server {
	t.Helper()
	s, err := embednats.Start(embednats.Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// subscribe returns a synchronous subscription to every consort event.
func subscribe(t *testing.T, url string) *nats.Subscription {
	t.Helper()
	nc, err := bus.Connect(url, "test-subscriber")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(bus.Subjects{}.All())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return sub
}

// within fails the test if f does not return before the deadline: the
// guard that shows Publish never blocks.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s still running after %s", what, d)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestPublishDelivers(t *testing.T) {
	s := startNATS(t, 0)
	sub := subscribe(t, s.ClientURL())
	p := bus.NewPublisher(bus.Config{URL: s.ClientURL(), Name: "test", Log: testLog(t)})
	defer p.Close()

	subj := bus.Subjects{}
	want := bus.RaftLeader{Kind: bus.KindRaftLeader, LeaderID: "s1", LeaderAddr: "127.0.0.1:8300", Term: 3, Observer: "s2", Index: 42}
	p.Publish(subj.RaftLeader(), want)
	p.Publish(subj.CatalogService("api.v2"), bus.KV{Kind: bus.KindKV, Key: "x"})

	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "consort.raft.leader" {
		t.Fatalf("subject %q", m.Subject)
	}
	var got bus.RaftLeader
	if err := json.Unmarshal(m.Data, &got); err != nil {
		t.Fatalf("payload %s: %v", m.Data, err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	m, err = sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "consort.catalog.service.api~2Ev2" {
		t.Fatalf("subject %q", m.Subject)
	}
	waitFor(t, 5*time.Second, "published count", func() bool { return p.Published() == 2 })
	if p.Dropped() != 0 {
		t.Fatalf("dropped %d", p.Dropped())
	}
}

func TestPublishNATSDown(t *testing.T) {
	// A port where nothing listens: start a server, note its port, stop it.
	s := startNATS(t, 0)
	url, port := s.ClientURL(), s.Port()
	s.Shutdown()

	p := bus.NewPublisher(bus.Config{URL: url, Buffer: 8, Log: testLog(t)})
	within(t, 10*time.Second, "100 publishes with NATS down", func() {
		for i := range 100 {
			p.Publish("consort.test.down", i)
		}
	})
	// At most the buffer and the one event the drainer holds survive.
	if d := p.Dropped(); d < 100-8-1 {
		t.Fatalf("dropped %d, want at least %d", d, 100-8-1)
	}
	if p.Published() != 0 {
		t.Fatalf("published %d with NATS down", p.Published())
	}

	// NATS comes up: the publisher connects by itself and events flow.
	s2 := startNATS(t, port)
	sub := subscribe(t, s2.ClientURL())
	probe(t, p, sub)

	within(t, 10*time.Second, "close", func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
}

// probe publishes "consort.test.probe" until sub receives one.
func probe(t *testing.T, p *bus.NATSPublisher, sub *nats.Subscription) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		p.Publish("consort.test.probe", i)
		for {
			m, err := sub.NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			if m.Subject == "consort.test.probe" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe delivered; published %d dropped %d", p.Published(), p.Dropped())
		}
	}
}

func TestPublishReconnect(t *testing.T) {
	s := startNATS(t, 0)
	port := s.Port()
	p := bus.NewPublisher(bus.Config{URL: s.ClientURL(), Buffer: 16, Log: testLog(t)})
	defer p.Close()
	probe(t, p, subscribe(t, s.ClientURL()))

	s.Shutdown()
	before := p.Dropped()
	within(t, 10*time.Second, "publishes while NATS is down", func() {
		for i := range 200 {
			p.Publish("consort.test.down", i)
		}
	})
	waitFor(t, 5*time.Second, "drops while down", func() bool { return p.Dropped() > before })

	s2 := startNATS(t, port)
	sub := subscribe(t, s2.ClientURL())
	probe(t, p, sub)
}

func TestCloseFlushes(t *testing.T) {
	s := startNATS(t, 0)
	sub := subscribe(t, s.ClientURL())
	p := bus.NewPublisher(bus.Config{URL: s.ClientURL(), Log: testLog(t)})
	for i := range 50 {
		p.Publish(fmt.Sprintf("consort.test.n%d", i), i)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if p.Published() != 50 || p.Dropped() != 0 {
		t.Fatalf("published %d dropped %d", p.Published(), p.Dropped())
	}
	for i := range 50 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("consort.test.n%d", i); m.Subject != want {
			t.Fatalf("got %s, want %s", m.Subject, want)
		}
	}
	p.Publish("consort.test.late", 1)
	if p.Dropped() != 1 {
		t.Fatalf("publish after close: dropped %d", p.Dropped())
	}
}

func TestPublishBadPayloadAndSubject(t *testing.T) {
	s := startNATS(t, 0)
	sub := subscribe(t, s.ClientURL())
	p := bus.NewPublisher(bus.Config{URL: s.ClientURL(), Log: testLog(t)})
	defer p.Close()
	p.Publish("consort.test.chan", make(chan int)) // does not marshal
	p.Publish("consort.bad subject", 1)            // NATS refuses it
	p.Publish("consort.test.ok", 1)
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "consort.test.ok" {
		t.Fatalf("got %s", m.Subject)
	}
	waitFor(t, 5*time.Second, "two drops", func() bool { return p.Dropped() == 2 })
}

func TestPublishConcurrent(t *testing.T) {
	s := startNATS(t, 0)
	p := bus.NewPublisher(bus.Config{URL: s.ClientURL(), Buffer: 64, Log: testLog(t)})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				p.Publish(fmt.Sprintf("consort.test.g%d", g), i)
			}
		}()
	}
	within(t, 10*time.Second, "concurrent publishes", wg.Wait)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := p.Published() + p.Dropped(); got != 2000 {
		t.Fatalf("published %d + dropped %d != 2000", p.Published(), p.Dropped())
	}
}

func TestNewPublisherBadURL(t *testing.T) {
	p := bus.NewPublisher(bus.Config{URL: "nats://[::1", Log: testLog(t)})
	p.Publish("consort.x", 1)
	within(t, 10*time.Second, "close", func() { _ = p.Close() })
	if p.Dropped() != 1 {
		t.Fatalf("dropped %d", p.Dropped())
	}
}
