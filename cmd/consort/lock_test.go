package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLockOptionsValidate(t *testing.T) {
	ok := lockOptions{Prefix: "svc/leader", Command: []string{"true"}, Limit: 1}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		o    lockOptions
		want []string
	}{
		{"empty prefix", lockOptions{Prefix: "", Command: []string{"true"}, Limit: 1}, []string{"prefix is empty"}},
		{"no command", lockOptions{Prefix: "p", Command: []string{"  "}, Limit: 1}, []string{"no command"}},
		{"zero limit", lockOptions{Prefix: "p", Command: []string{"true"}}, []string{"-n 0"}},
		{"all at once", lockOptions{Limit: -1, Timeout: -time.Second, MonitorRetry: -1},
			[]string{"prefix is empty", "no command", "-n -1", "-timeout -1s", "-monitor-retry -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// startTestChild starts a command as runLock would.
func startTestChild(t *testing.T, cmd ...string) *lockChild {
	t.Helper()
	ch, err := startChild(lockOptions{Command: cmd, Stdout: &syncBuf{}, Stderr: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.signal(9)
		<-ch.done
	})
	return ch
}

func TestLockChildExitCode(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want int
	}{
		{[]string{"exit 0"}, 0},
		{[]string{"exit 7"}, 7},
		{[]string{"/bin/sh", "-c", "exit 3"}, 3},         // executed directly
		{[]string{"kill -TERM $$; sleep 5"}, 128 + 15},   // ended by a signal
		{[]string{`test "$CONSUL_LOCK_HELD" = true`}, 0}, // environment
	} {
		ch := startTestChild(t, tc.cmd...)
		ctx, cancel := context.WithCancel(context.Background())
		got := superviseChild(ctx, ch, nil, time.Second, t.Logf)
		cancel()
		if got != tc.want {
			t.Errorf("%q: exit status %d, want %d", tc.cmd, got, tc.want)
		}
	}
}

func TestLockChildStartFails(t *testing.T) {
	_, err := startChild(lockOptions{Command: []string{"/nonexistent/consort-test", "x"}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/consort-test") {
		t.Fatalf("error %v does not name the command", err)
	}
}

// TestLockChildStoppedWhenLost: closing the lost channel stops the child
// with SIGTERM; one that ignores SIGTERM gets SIGKILL after the grace
// period, and so do its own children (the whole process group).
func TestLockChildStoppedWhenLost(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		script string
		want   int
		kill   bool
	}{
		{"terminates", `echo started > %s; sleep 30`, 128 + 15, false},
		{"ignores SIGTERM", `trap '' TERM; echo started > %s; sleep 30 & wait; sleep 30`, 128 + 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			ch := startTestChild(t, strings.ReplaceAll(tc.script, "%s", marker))
			waitFor(t, "child started", 10*time.Second, func() bool {
				_, err := os.Stat(marker)
				return err == nil
			})
			lost := make(chan struct{})
			close(lost)
			var said []string
			say := func(format string, args ...any) { said = append(said, format) }
			start := time.Now()
			got := superviseChild(context.Background(), ch, lost, 300*time.Millisecond, say)
			if got != tc.want {
				t.Errorf("exit status %d, want %d", got, tc.want)
			}
			if len(said) == 0 || said[0] != "lock lost, stopping child" {
				t.Errorf("progress %q, want lock lost first", said)
			}
			if tc.kill && time.Since(start) < 300*time.Millisecond {
				t.Errorf("SIGKILL came before the grace period")
			}
			// Nothing of the group survives.
			waitFor(t, "process group gone", 5*time.Second, func() bool {
				return groupGone(ch.cmd.Process.Pid)
			})
		})
	}
}

// TestLockChildInterrupted: cancelling the context (Ctrl-C) stops the
// child too.
func TestLockChildInterrupted(t *testing.T) {
	ch := startTestChild(t, "sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := superviseChild(ctx, ch, make(chan struct{}), time.Second, t.Logf); got != 128+15 {
		t.Errorf("exit status %d, want %d", got, 128+15)
	}
}

// TestRunLockNoAgent: with nobody at the address, runLock fails at once
// naming it, and runs nothing.
func TestRunLockNoAgent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	marker := filepath.Join(t.TempDir(), "ran")
	stderr := &syncBuf{}
	code, err := runLock(context.Background(), lockOptions{
		Prefix: "p", Command: []string{"touch " + marker}, Limit: 1, HTTPAddr: addr, Stderr: stderr,
	})
	if err == nil || code == 0 || !strings.Contains(err.Error(), addr) {
		t.Fatalf("runLock = %d, %v; want an error naming %s", code, err, addr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without the lock")
	}
}

// groupGone reports whether no process is left in the process group pgid.
func groupGone(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return false
		}
	}
	return true
}
