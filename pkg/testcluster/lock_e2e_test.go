package testcluster

import (
	"encoding/json"
	"fmt"
	"os"
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

// Issue 5, points 1, 2 and 6: the Consul client's Lock and Semaphore, and
// `consort lock`, run by separate processes against a three-server
// cluster. Each holder appends "enter" and "exit" lines to one shared
// event log; the tests read the log in order and check that no more than
// the allowed number of holders were ever inside at once.

// contenderVar carries a contender's spec (JSON) to a re-executed test
// binary; set, TestHelperLockContender runs as that contender.
const contenderVar = "TESTCLUSTER_LOCK_CONTENDER"

// Session timing of the contenders: Consul's minimum TTL, and a lock-delay
// short enough for the hand-over tests.
const (
	contenderTTL       = 10 * time.Second
	contenderLockDelay = 3 * time.Second
)

// contenderSpec describes one contender process.
type contenderSpec struct {
	ID     string
	Addr   string // HTTP API of the node it talks to
	Mode   string // "lock" or "semaphore"
	Key    string // the lock's key, or the semaphore's prefix
	Limit  int    // semaphore slots
	Rounds int    // acquisitions; 0: acquire once and hold until lost
	Hold   time.Duration
	Log    string // the shared event log
}

// TestHelperLockContender is not a test: it is the body of a contender
// process that the lock tests start by running the test binary again with
// contenderVar set. It creates a TTL session (renewed in the background),
// then Rounds times acquires the lock or a semaphore slot with it, checks
// with a consistent read that it truly holds it, logs "enter", holds it,
// logs "exit" and releases it.
func TestHelperLockContender(t *testing.T) {
	raw := os.Getenv(contenderVar)
	if raw == "" {
		t.Skip("the body of a lock contender process started by the lock e2e tests")
	}
	var s contenderSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintf(os.Stderr, "contender: bad spec: %v\n", err)
		os.Exit(2)
	}
	if err := runContender(s); err != nil {
		fmt.Fprintf(os.Stderr, "contender %s: %v\n", s.ID, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runContender(s contenderSpec) error {
	f, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	logf := func(what string, rest ...any) {
		line := fmt.Sprintf("%d %s %s", time.Now().UnixNano(), s.ID, what)
		for _, r := range rest {
			line += " " + fmt.Sprint(r)
		}
		// One write per line: O_APPEND keeps lines whole and in order.
		f.WriteString(line + "\n")
	}
	client, err := api.NewClient(&api.Config{Address: s.Addr})
	if err != nil {
		return err
	}
	sid, _, err := client.Session().Create(&api.SessionEntry{
		Name:      s.ID,
		TTL:       contenderTTL.String(),
		LockDelay: contenderLockDelay,
		Behavior:  api.SessionBehaviorRelease,
	}, nil)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	logf("session", sid)
	renewDone := make(chan struct{})
	go client.Session().RenewPeriodic(contenderTTL.String(), sid, nil, renewDone)
	defer close(renewDone) // destroys the session

	var acquire func() (<-chan struct{}, error)
	var release func() error
	switch s.Mode {
	case "lock":
		l, err := client.LockOpts(&api.LockOptions{Key: s.Key, Session: sid})
		if err != nil {
			return err
		}
		acquire = func() (<-chan struct{}, error) { return l.Lock(nil) }
		release = l.Unlock
	case "semaphore":
		sem, err := client.SemaphoreOpts(&api.SemaphoreOptions{Prefix: s.Key, Limit: s.Limit, Session: sid})
		if err != nil {
			return err
		}
		acquire = func() (<-chan struct{}, error) { return sem.Acquire(nil) }
		release = sem.Release
	default:
		return fmt.Errorf("unknown mode %q", s.Mode)
	}
	for round := 0; s.Rounds == 0 || round < s.Rounds; round++ {
		lost, err := acquire()
		if err != nil {
			return fmt.Errorf("round %d: acquire: %w", round, err)
		}
		holds, detail := contenderHolds(client, s, sid)
		logf("enter", holds, detail)
		if s.Rounds == 0 {
			<-lost
			logf("lost")
			return nil
		}
		select {
		case <-time.After(s.Hold):
		case <-lost:
			logf("lost")
		}
		logf("exit")
		if err := release(); err != nil {
			return fmt.Errorf("round %d: release: %w", round, err)
		}
		// Pacing, so that the others get their turns.
		time.Sleep(s.Hold / 2)
	}
	logf("done")
	return nil
}

// contenderHolds asks the leader, with a consistent read, whether session
// sid holds the lock (the key's Session) or a semaphore slot (listed in
// the holders of <prefix>/.lock, and owner of its contender key).
func contenderHolds(client *api.Client, s contenderSpec, sid string) (bool, string) {
	q := &api.QueryOptions{RequireConsistent: true}
	if s.Mode == "lock" {
		p, _, err := client.KV().Get(s.Key, q)
		if err != nil || p == nil {
			return false, fmt.Sprintf("read=%v", err)
		}
		return p.Session == sid, "lockindex=" + strconv.FormatUint(p.LockIndex, 10)
	}
	p, _, err := client.KV().Get(s.Key+"/"+api.DefaultSemaphoreKey, q)
	if err != nil || p == nil {
		return false, fmt.Sprintf("read=%v", err)
	}
	var lock struct {
		Limit   int
		Holders map[string]bool
	}
	if err := json.Unmarshal(p.Value, &lock); err != nil {
		return false, "decode=" + err.Error()
	}
	mine, _, err := client.KV().Get(s.Key+"/"+sid, q)
	if err != nil || mine == nil || mine.Session != sid {
		return false, fmt.Sprintf("contender-key=%v/%v", mine, err)
	}
	return lock.Holders[sid], "holders=" + strconv.Itoa(len(lock.Holders))
}

// contender is a running contender process.
type contender struct {
	spec contenderSpec
	cmd  *exec.Cmd
	out  string        // its stdout and stderr
	done chan struct{} // closed when it exited; err is set then
	err  error
}

// startContender runs the test binary again as a contender.
func startContender(t *testing.T, s contenderSpec) *contender {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ct := &contender{spec: s, out: filepath.Join(filepath.Dir(s.Log), s.ID+".out"), done: make(chan struct{})}
	out, err := os.Create(ct.out)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ct.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperLockContender$", "-test.count=1")
	ct.cmd.Env = append(os.Environ(), contenderVar+"="+string(spec))
	ct.cmd.Stdout, ct.cmd.Stderr = out, out
	ct.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ct.cmd.Start(); err != nil {
		t.Fatalf("start contender %s: %v", s.ID, err)
	}
	go func() {
		ct.err = ct.cmd.Wait()
		close(ct.done)
	}()
	t.Cleanup(func() {
		ct.cmd.Process.Kill()
		<-ct.done
		if t.Failed() {
			if lines, err := tailLines(ct.out, 30); err == nil && len(lines) > 0 {
				t.Logf("contender %s output:\n%s", s.ID, strings.Join(lines, "\n"))
			}
		}
	})
	return ct
}

// wait waits for the contender to exit and fails the test unless it
// exited cleanly.
func (ct *contender) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-ct.done:
	case <-time.After(limit):
		t.Fatalf("contender %s still running after %v", ct.spec.ID, limit)
	}
	if ct.err != nil {
		lines, _ := tailLines(ct.out, 20)
		t.Fatalf("contender %s: %v\n%s", ct.spec.ID, ct.err, strings.Join(lines, "\n"))
	}
}

// event is one line of an event log: "<unix nanos> <id> <what> [rest…]".
type event struct {
	at   time.Time
	id   string
	what string
	rest []string
}

func (e event) String() string {
	return fmt.Sprintf("%s %s %s %s", e.at.Format("15:04:05.000"), e.id, e.what, strings.Join(e.rest, " "))
}

// readEvents reads an event log in order.
func readEvents(t *testing.T, path string) []event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("event log %s: bad line %q", path, line)
		}
		evs = append(evs, event{at: time.Unix(0, ns), id: f[1], what: f[2], rest: f[3:]})
	}
	return evs
}

// logEvent appends an event of the test's own (a kill, a destroy) to the
// log, in the contenders' format.
func logEvent(t *testing.T, path, id, what string) time.Time {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	now := time.Now()
	fmt.Fprintf(f, "%d %s %s\n", now.UnixNano(), id, what)
	return now
}

// findEvent returns the first event of id with what, if any.
func findEvent(evs []event, id, what string) (event, bool) {
	for _, e := range evs {
		if e.id == id && e.what == what {
			return e, true
		}
	}
	return event{}, false
}

// waitEvent waits until the log has an event of id with what.
func waitEvent(t *testing.T, path, id, what string, limit time.Duration) event {
	t.Helper()
	var got event
	waitFor(t, limit, fmt.Sprintf("%s %s in %s", id, what, filepath.Base(path)), func() error {
		e, ok := findEvent(readEvents(t, path), id, what)
		if !ok {
			return fmt.Errorf("not yet")
		}
		got = e
		return nil
	})
	return got
}

// checkExclusive fails the test if the log ever shows more than limit
// holders inside at once, a holder entering twice, or an "enter" whose
// consistent read did not confirm the holding. "exit", "lost", "killed"
// and "invalidated" end a holding. It returns the most holders seen at
// once and the number of entries per holder.
func checkExclusive(t *testing.T, evs []event, limit int) (int, map[string]int) {
	t.Helper()
	inside := map[string]bool{}
	entries := map[string]int{}
	most := 0
	for i, e := range evs {
		switch e.what {
		case "enter":
			if inside[e.id] {
				t.Errorf("event %d: %s entered twice: %s", i, e.id, e)
			}
			if len(e.rest) == 0 || e.rest[0] != "true" {
				t.Errorf("event %d: %s returned from acquiring without holding: %s", i, e.id, e)
			}
			inside[e.id] = true
			entries[e.id]++
			if len(inside) > limit {
				t.Errorf("event %d: %d holders inside at once (limit %d): %s", i, len(inside), limit, e)
			}
			most = max(most, len(inside))
		case "exit", "lost", "killed", "invalidated":
			delete(inside, e.id)
		}
	}
	if t.Failed() {
		for _, e := range evs {
			t.Log(e)
		}
	}
	return most, entries
}

// TestLockE2E runs the lock scenarios concurrently on one three-server
// cluster, each on its own key; most of their time is spent waiting for
// TTLs and lock-delays.
func TestLockE2E(t *testing.T) {
	c := New(t, Options{Servers: 3})
	c.WaitLeader(t)
	for _, n := range c.Nodes {
		n.WaitReady(t)
		n.WaitRegistered(t)
	}
	scenarios := []struct {
		name string
		run  func(t *testing.T, c *Cluster, dir string)
	}{
		{"LockExclusive", lockExclusive},
		{"LockHolderKilled", lockHolderKilled},
		{"LockSessionDestroyed", lockSessionDestroyed},
		{"Semaphore", semaphoreLimit},
		{"ConsortLock", consortLockExclusive},
		{"ConsortLockLost", consortLockLost},
		{"ConsortSemaphore", consortSemaphore},
		{"ConsortLockInterrupted", consortLockInterrupted},
	}
	// Goroutines rather than t.Parallel: the scenarios mostly wait, and
	// -parallel (GOMAXPROCS by default) would run them two at a time.
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		dir := t.TempDir()
		wg.Go(func() {
			t.Run(sc.name, func(t *testing.T) { sc.run(t, c, dir) })
		})
	}
	wg.Wait()
}

// lockExclusive: two contenders on different servers take turns; never
// both inside, every Lock() returned holding the key.
func lockExclusive(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	var cs []*contender
	for i, n := range c.Nodes[1:] {
		cs = append(cs, startContender(t, contenderSpec{
			ID: fmt.Sprintf("c%d", i+1), Addr: n.HTTPAddr(), Mode: "lock", Key: "e2e/lock/exclusive",
			Rounds: 4, Hold: 200 * time.Millisecond, Log: log,
		}))
	}
	for _, ct := range cs {
		ct.wait(t, 2*time.Minute)
	}
	_, entries := checkExclusive(t, readEvents(t, log), 1)
	for _, ct := range cs {
		if entries[ct.spec.ID] != 4 {
			t.Errorf("%s entered %d times, want 4", ct.spec.ID, entries[ct.spec.ID])
		}
	}
}

// lockHolderKilled: the holder's process is killed; its session is no
// longer renewed and expires (the leader's timer runs at 2 × TTL from the
// last renewal), and only then does the waiting contender get the lock.
func lockHolderKilled(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	spec := contenderSpec{Addr: c.Nodes[1].HTTPAddr(), Mode: "lock", Key: "e2e/lock/killed", Hold: 100 * time.Millisecond, Log: log}
	a := spec
	a.ID = "holder"
	holder := startContender(t, a)
	waitEvent(t, log, "holder", "enter", time.Minute)
	b := spec
	b.ID, b.Rounds, b.Addr = "waiter", 1, c.Nodes[2].HTTPAddr()
	waiter := startContender(t, b)
	waitEvent(t, log, "waiter", "session", time.Minute)

	holder.cmd.Process.Kill()
	<-holder.done
	killed := logEvent(t, log, "holder", "killed")

	// Note when the key is released, polling without blocking queries.
	client := c.Nodes[0].APIClient(t)
	var released time.Time
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			p, _, err := client.KV().Get(spec.Key, &api.QueryOptions{AllowStale: true})
			if err == nil && p != nil && p.Session == "" {
				released = logEvent(t, log, "holder", "released")
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// The session lives at least TTL after its last renewal (at most TTL/2
	// before the kill) and ends by 2 × TTL after it; the waiter retries
	// 5 s after a refusal during lock-delay.
	enter := waitEvent(t, log, "waiter", "enter", 2*contenderTTL+contenderLockDelay+30*time.Second)
	close(stop)
	<-polled
	waiter.wait(t, time.Minute)
	if took := enter.at.Sub(killed); took < contenderTTL {
		t.Errorf("the waiter got the lock %v after the holder was killed; its session (TTL %v) cannot have expired yet", took, contenderTTL)
	} else {
		t.Logf("lock handed over %v after the holder was killed; the key was released %v after the kill",
			took.Round(time.Millisecond), released.Sub(killed).Round(time.Millisecond))
	}
	checkExclusive(t, readEvents(t, log), 1)
}

// lockSessionDestroyed: destroying the holder's session releases the key;
// the holder's Lock channel closes, and the waiter gets the lock only
// after the session's lock-delay.
func lockSessionDestroyed(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	spec := contenderSpec{Addr: c.Nodes[2].HTTPAddr(), Mode: "lock", Key: "e2e/lock/destroyed", Hold: 100 * time.Millisecond, Log: log}
	a := spec
	a.ID = "holder"
	holder := startContender(t, a)
	sess := waitEvent(t, log, "holder", "session", time.Minute)
	waitEvent(t, log, "holder", "enter", time.Minute)
	b := spec
	b.ID, b.Rounds, b.Addr = "waiter", 1, c.Nodes[0].HTTPAddr()
	waiter := startContender(t, b)
	waitEvent(t, log, "waiter", "session", time.Minute)

	client := c.Nodes[1].APIClient(t)
	start := time.Now()
	if _, err := client.Session().Destroy(sess.rest[0], nil); err != nil {
		t.Fatalf("destroy the holder's session: %v", err)
	}
	logEvent(t, log, "holder", "invalidated")

	waitEvent(t, log, "holder", "lost", 30*time.Second)
	holder.wait(t, 30*time.Second)
	enter := waitEvent(t, log, "waiter", "enter", contenderLockDelay+30*time.Second)
	waiter.wait(t, time.Minute)
	if took := enter.at.Sub(start); took < contenderLockDelay {
		t.Errorf("the waiter got the lock %v after the destroy, inside the lock-delay of %v", took, contenderLockDelay)
	} else {
		t.Logf("lock handed over %v after the destroy (lock-delay %v)", took.Round(time.Millisecond), contenderLockDelay)
	}
	checkExclusive(t, readEvents(t, log), 1)
}

// semaphoreLimit: four contenders share a semaphore of two slots over
// many rounds; never more than two inside, and two at once does happen.
func semaphoreLimit(t *testing.T, c *Cluster, dir string) {
	log := filepath.Join(dir, "events")
	var cs []*contender
	for i := range 4 {
		cs = append(cs, startContender(t, contenderSpec{
			ID: fmt.Sprintf("s%d", i+1), Addr: c.Nodes[i%len(c.Nodes)].HTTPAddr(), Mode: "semaphore",
			Key: "e2e/semaphore", Limit: 2, Rounds: 5, Hold: 250 * time.Millisecond, Log: log,
		}))
	}
	for _, ct := range cs {
		ct.wait(t, 3*time.Minute)
	}
	most, entries := checkExclusive(t, readEvents(t, log), 2)
	for _, ct := range cs {
		if entries[ct.spec.ID] != 5 {
			t.Errorf("%s entered %d times, want 5", ct.spec.ID, entries[ct.spec.ID])
		}
	}
	if most != 2 {
		t.Errorf("at most %d holders at once with 4 contenders on 2 slots: the semaphore never shared", most)
	}
}
