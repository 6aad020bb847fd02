package testcluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Issue 5, point 6: `consort lock` processes against the three-server
// cluster of TestLockE2E, which runs these scenarios. Their commands log
// "enter" and "exit" events in the format of the contenders of
// lock_e2e_test.go, checked the same way.

// consortLockScript is a shell command logging "enter" and "exit" events
// around a short sleep, in the contenders' format.
func consortLockScript(log, id string) string {
	return fmt.Sprintf(`echo "$(date +%%s%%N) %[2]s enter true" >> %[1]s; sleep 0.3; echo "$(date +%%s%%N) %[2]s exit" >> %[1]s`, log, id)
}

// consortLock returns the command `consort lock <args>`, not started;
// it is killed if it still runs after two minutes.
func consortLock(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, filepath.Join(Build(t), "consort"), append([]string{"lock"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// consortLockExclusive: two `consort lock` contenders on different
// servers run their command three times each; exactly one command runs
// at any time.
func consortLockExclusive(t *testing.T, c *Cluster, dir string) {
	consortLockRounds(t, c, dir, "e2e/consort-lock", 1, 2, 3)
}

// consortSemaphore: three `consort lock -n 2` contenders, two rounds each;
// never more than two commands at once.
func consortSemaphore(t *testing.T, c *Cluster, dir string) {
	consortLockRounds(t, c, dir, "e2e/consort-semaphore", 2, 3, 2)
}

// consortLockRounds runs contenders `consort lock -n limit` processes at
// once, each rounds times in a row, and checks the commands' event log.
func consortLockRounds(t *testing.T, c *Cluster, dir, prefix string, limit, contenders, rounds int) {
	log := filepath.Join(dir, "events")
	waiting := "waiting for lock on " + prefix
	if limit > 1 {
		waiting = fmt.Sprintf("waiting for one of %d slots on %s", limit, prefix)
	}
	var wg sync.WaitGroup
	for i := range contenders {
		id := fmt.Sprintf("cl%d", i+1)
		n := c.Nodes[i%len(c.Nodes)]
		wg.Go(func() {
			for round := range rounds {
				cmd := consortLock(t, "-n", strconv.Itoa(limit), "-http-addr", n.HTTPAddr(), "-name", id, prefix, consortLockScript(log, id))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Errorf("%s round %d: consort lock: %v\n%s", id, round, err, out)
					return
				}
				for _, want := range []string{waiting, "lock acquired", "lock released"} {
					if !strings.Contains(string(out), want) {
						t.Errorf("%s round %d: output lacks %q:\n%s", id, round, want, out)
					}
				}
			}
		})
	}
	wg.Wait()
	most, entries := checkExclusive(t, readEvents(t, log), limit)
	for i := range contenders {
		id := fmt.Sprintf("cl%d", i+1)
		if entries[id] != rounds {
			t.Errorf("%s's command ran %d times, want %d", id, entries[id], rounds)
		}
	}
	if limit > 1 && most < 2 {
		t.Errorf("never more than %d command at once with %d slots", most, limit)
	}
}

// consortLockInterrupted: SIGINT to `consort lock` (Ctrl-C) stops the
// command with SIGTERM and releases the lock before exiting.
func consortLockInterrupted(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	const prefix = "e2e/consort-lock-int"
	script := fmt.Sprintf(`trap 'echo "$(date +%%s%%N) victim term" >> %[1]s; exit 3' TERM; `+
		`echo "$(date +%%s%%N) victim enter true" >> %[1]s; while :; do sleep 0.1; done`, log)
	cmd := consortLock(t, "-http-addr", c.Nodes[1].HTTPAddr(), prefix, script)
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &out}
	cmd.Stderr = lockedWriter{&mu, &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	waitEvent(t, log, "victim", "enter", time.Minute)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, log, "victim", "term", 30*time.Second)
	select {
	case err := <-exited:
		exited <- err
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Errorf("consort lock exited %d (%v); want the command's 3\n%s", code, err, output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("consort lock still running 30s after SIGINT:\n%s", output())
	}
	for _, want := range []string{"interrupted, stopping child", "lock released"} {
		if !strings.Contains(output(), want) {
			t.Errorf("consort lock did not say %q:\n%s", want, output())
		}
	}
	// Released and cleaned up: the key is gone or free.
	p, _, err := c.Nodes[0].APIClient(t).KV().Get(prefix+"/"+api.DefaultSemaphoreKey, &api.QueryOptions{RequireConsistent: true})
	if err != nil || (p != nil && p.Session != "") {
		t.Errorf("lock key after the interrupt = %+v, %v; want it released", p, err)
	}
}

// consortLockLost: when the session behind `consort lock` is destroyed,
// the lock is lost and the command is stopped with SIGTERM.
func consortLockLost(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	const prefix = "e2e/consort-lock-lost"
	script := fmt.Sprintf(`trap 'echo "$(date +%%s%%N) victim term" >> %[1]s; exit 0' TERM; `+
		`echo "$(date +%%s%%N) victim enter true" >> %[1]s; while :; do sleep 0.1; done`, log)
	cmd := consortLock(t, "-http-addr", c.Nodes[2].HTTPAddr(), "-name", "victim", prefix, script)
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &out}
	cmd.Stderr = lockedWriter{&mu, &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }

	waitEvent(t, log, "victim", "enter", time.Minute)
	client := c.Nodes[0].APIClient(t)
	pair, _, err := client.KV().Get(prefix+"/"+api.DefaultSemaphoreKey, &api.QueryOptions{RequireConsistent: true})
	if err != nil || pair == nil || pair.Session == "" {
		t.Fatalf("lock key of consort lock = %+v, %v; want it held", pair, err)
	}
	if _, err := client.Session().Destroy(pair.Session, nil); err != nil {
		t.Fatalf("destroy consort lock's session: %v", err)
	}
	logEvent(t, log, "victim", "invalidated")
	waitEvent(t, log, "victim", "term", 30*time.Second)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("consort lock exited with %v; the command trapped SIGTERM and exited 0\n%s", err, output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("consort lock still running 30s after its session was destroyed:\n%s", output())
	}
	if !strings.Contains(output(), "lock lost, stopping child") {
		t.Errorf("consort lock did not say it lost the lock:\n%s", output())
	}
	checkExclusive(t, readEvents(t, log), 1)
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
