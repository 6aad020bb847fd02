package embednats_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/embednats"
	"github.com/nats-io/nats.go"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStartPubSub(t *testing.T) {
	var logs syncBuf
	s, err := embednats.Start(embednats.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.Port() <= 0 || !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("url %s port %d", s.ClientURL(), s.Port())
	}

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("a.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("a.b", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hi" {
		t.Fatalf("got %q", m.Data)
	}
	if !strings.Contains(logs.String(), "component=nats-server") {
		t.Errorf("no server logs through slog: %q", logs.String())
	}
}

func TestRestartSamePort(t *testing.T) {
	s, err := embednats.Start(embednats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	s.Shutdown()
	s.Shutdown() // idempotent

	s2, err := embednats.Start(embednats.Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	if s2.Port() != port {
		t.Fatalf("port %d, want %d", s2.Port(), port)
	}
	// The port is now taken: a second server must fail, not hang.
	if s3, err := embednats.Start(embednats.Options{Port: port}); err == nil {
		s3.Shutdown()
		t.Fatal("second server on a taken port started")
	}
}

func TestBadPort(t *testing.T) {
	if _, err := embednats.Start(embednats.Options{Port: 70000}); err == nil {
		t.Fatal("no error")
	}
}
