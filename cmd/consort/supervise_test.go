package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
)

// syncBuf is a bytes.Buffer safe for the child's copier and the test.
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

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLineWriter(t *testing.T) {
	var out bytes.Buffer
	p := &prefixer{w: &out, pad: 6}
	w := p.Writer("raftd")
	io.WriteString(w, "one\ntw")
	io.WriteString(w, "o\nthree\n\nfour")
	if got, want := out.String(), "raftd  | one\nraftd  | two\nraftd  | three\nraftd  | \n"; got != want {
		t.Fatalf("before flush:\n%q\nwant\n%q", got, want)
	}
	w.(*lineWriter).Flush()
	if !strings.HasSuffix(out.String(), "raftd  | four\n") {
		t.Fatalf("flush did not write the partial line: %q", out.String())
	}
	out.Reset()
	io.WriteString(w, strings.Repeat("x", maxLine+10))
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("overlong line: %d lines written, want 1 (split)", n)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChildRestarts runs a child that exits at once and checks it is
// started again, then stopped.
func TestChildRestarts(t *testing.T) {
	var out syncBuf
	p := &prefixer{w: &out, pad: 4}
	c := newChild("x", "/bin/sh", []string{"-c", "echo run"}, p.Writer("x"), testLogger(t))
	go c.run()
	waitFor(t, "two runs", 10*time.Second, func() bool { return strings.Count(out.String(), "x    | run\n") >= 2 })
	c.Stop()
	c.Stop() // idempotent
}

// TestChildStopKills checks a child ignoring SIGTERM is killed after the
// grace period.
func TestChildStopKills(t *testing.T) {
	var out syncBuf
	p := &prefixer{w: &out, pad: 4}
	c := newChild("x", "/bin/sh", []string{"-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"}, p.Writer("x"), testLogger(t))
	c.grace = 200 * time.Millisecond
	go c.run()
	waitFor(t, "child up", 10*time.Second, func() bool { return strings.Contains(out.String(), "up") })
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after SIGKILL")
	}
}

// TestDevConfigLoads checks the dev config passes config.Load.
func TestDevConfigLoads(t *testing.T) {
	dir := t.TempDir()
	o := devOptions{DataDir: dir, HTTPPort: 8500, NATSPort: 4222, RaftPort: 8300, LogLevel: "info"}
	file := filepath.Join(dir, "consort.hcl")
	if err := os.WriteFile(file, []byte(devConfig(o, dir, filepath.Join(dir, "run"), "nats://127.0.0.1:4222")), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := config.Load(config.LoadOptions{ConfigFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Server || !n.Bootstrap || n.Ports.HTTP != 8500 || n.Ports.Raft != 8300 || n.DataDir != dir || n.NATS.URL != "nats://127.0.0.1:4222" {
		t.Fatalf("loaded %+v", n)
	}
}
