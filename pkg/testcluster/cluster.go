package testcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/embednats"
)

// daemons lists the daemons a node runs, in start order; they stop in
// reverse order. gossipd joins this list when it serves.
var daemons = []string{"raftd", "catalogd", "healthd", "dnsd"}

// Options describes a cluster. The zero value is a one-server cluster.
type Options struct {
	// Servers is the number of server nodes: 1 (bootstrap = true) or at
	// least 3 (bootstrap_expect = Servers, retry_join naming the others).
	// Zero means 1.
	Servers int
	// SnapshotThreshold, TrailingLogs and SnapshotInterval set the raft
	// block of every node's config; zero leaves the daemon's default.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// LogLevel is every node's log_level; default "info".
	LogLevel string
	// WaitTimeout bounds each wait (WaitLeader, WaitReady, sockets);
	// default 30s, 60s when the daemons run under the race detector.
	WaitTimeout time.Duration
	// LogTailLines is how many lines of each log are printed when the test
	// fails; default 60.
	LogTailLines int
	// ConfigDirFiles are written into every node's config dir (passed as
	// --config-dir) before its daemons start: file name → contents, e.g.
	// service definitions.
	ConfigDirFiles map[string]string
	// AllowExit keeps a daemon that exits by itself from failing the test,
	// for tests that provoke exits on purpose.
	AllowExit bool
}

// Cluster is a set of nodes sharing one embedded NATS server. New starts
// it; the test's cleanup stops it.
type Cluster struct {
	// Nodes are the cluster's nodes, named node-1, node-2, …
	Nodes []*Node

	opts    Options
	bin     string // directory of the built binaries
	dir     string // t.TempDir() holding node configs, state and logs
	nats    *embednats.Server
	natsLog string
	http    *http.Client   // status polling; keep-alives off so nothing lingers
	wg      sync.WaitGroup // process reapers

	mu       sync.Mutex      // guards reported
	reported map[string]bool // unexpected exits already reported
}

// New builds the binaries (once per process), starts an embedded NATS
// server and the nodes' daemons, and returns without waiting for a leader:
// call WaitLeader or Node.WaitReady. Under -short it skips the test.
// Everything started is stopped by t.Cleanup: SIGTERM, then SIGKILL after
// 5 s.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := RequireBinaries(t, daemons...)
	if opts.Servers == 0 {
		opts.Servers = 1
	}
	if opts.Servers != 1 && opts.Servers < 3 {
		t.Fatalf("testcluster: Servers = %d; want 1 or at least 3", opts.Servers)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = 30 * time.Second
		if raceEnabled {
			opts.WaitTimeout = 60 * time.Second
		}
	}
	if opts.LogTailLines == 0 {
		opts.LogTailLines = 60
	}
	c := &Cluster{
		opts:     opts,
		bin:      bin,
		reported: map[string]bool{},
		dir:      t.TempDir(),
		http: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}

	// Unix socket paths are limited to 108 bytes and t.TempDir() holds the
	// test name, so sockets live in a short directory of their own.
	runRoot, err := os.MkdirTemp("", "cst")
	if err != nil {
		t.Fatalf("testcluster: make run dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runRoot) })

	c.startNATS(t)

	// raft, http, serf_lan, server and dns per node. A server may not
	// disable serf_lan or server (config.Validate), so they get real ports
	// even before gossipd and catalogd's server RPC listen on them;
	// serf_wan stays off until a test needs it.
	const perNode = 5
	ports, err := freePorts(perNode * opts.Servers)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	for i := range opts.Servers {
		name := "node-" + strconv.Itoa(i+1)
		base := filepath.Join(c.dir, name)
		n := &Node{
			Name:       name,
			ID:         fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
			DataDir:    filepath.Join(base, "data"),
			RunDir:     filepath.Join(runRoot, "n"+strconv.Itoa(i+1)),
			ConfigFile: filepath.Join(base, "consort.hcl"),
			ConfigDir:  filepath.Join(base, "consort.d"),
			LogDir:     filepath.Join(base, "log"),
			ports: config.Ports{
				Raft:    ports[perNode*i],
				HTTP:    ports[perNode*i+1],
				SerfLAN: ports[perNode*i+2],
				Server:  ports[perNode*i+3],
				SerfWAN: -1,
				DNS:     ports[perNode*i+4],
			},
			c:     c,
			procs: map[string]*proc{},
		}
		n.raftAddr = hostPort(n.ports.Raft)
		n.httpAddr = hostPort(n.ports.HTTP)
		for _, d := range []string{n.DataDir, n.RunDir, n.LogDir, n.ConfigDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatalf("testcluster: %v", err)
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := os.WriteFile(n.ConfigFile, []byte(c.nodeConfig(n, c.NATSURL())), 0o644); err != nil {
			t.Fatalf("testcluster: write config: %v", err)
		}
		for name, body := range opts.ConfigDirFiles {
			if err := os.WriteFile(filepath.Join(n.ConfigDir, name), []byte(body), 0o644); err != nil {
				t.Fatalf("testcluster: write config dir: %v", err)
			}
		}
	}

	t.Cleanup(func() { c.cleanup(t) })

	// All raftds first, so servers find each other while catalogds start.
	for _, n := range c.Nodes {
		if err := n.Start("raftd"); err != nil {
			t.Fatalf("testcluster: %v", err)
		}
	}
	for _, n := range c.Nodes {
		if err := n.waitSocket("raftd"); err != nil {
			t.Fatalf("testcluster: %v", err)
		}
		for _, d := range daemons[1:] {
			if err := n.Start(d); err != nil {
				t.Fatalf("testcluster: %v", err)
			}
		}
	}
	return c
}

func (c *Cluster) startNATS(t testing.TB) {
	t.Helper()
	c.natsLog = filepath.Join(c.dir, "nats.log")
	f, err := os.Create(c.natsLog)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	log := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := embednats.Start(embednats.Options{Host: "127.0.0.1", Port: 0, Log: log})
	if err != nil {
		t.Fatalf("testcluster: start embedded nats: %v", err)
	}
	c.nats = srv
	t.Cleanup(srv.Shutdown)
}

// NATSURL is the embedded NATS server's client URL, for subscribing to the
// cluster's events with nats.go.
func (c *Cluster) NATSURL() string { return c.nats.ClientURL() }

// Dir is the directory holding every node's config, state and logs.
func (c *Cluster) Dir() string { return c.dir }

// nodeConfig renders n's consort.hcl.
func (c *Cluster) nodeConfig(n *Node, natsURL string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by pkg/testcluster")
	w("node_name = %q", n.Name)
	w("node_id = %q", n.ID)
	w("datacenter = %q", "dc1")
	w("server = true")
	if len(c.Nodes) == 1 {
		w("bootstrap = true")
	} else {
		w("bootstrap_expect = %d", len(c.Nodes))
		var join []string
		for _, o := range c.Nodes {
			if o != n {
				join = append(join, strconv.Quote(o.raftAddr))
			}
		}
		w("retry_join = [%s]", strings.Join(join, ", "))
	}
	w(`bind_addr = "127.0.0.1"`)
	w(`advertise_addr = "127.0.0.1"`)
	w(`client_addr = "127.0.0.1"`)
	w("data_dir = %s", strconv.Quote(n.DataDir))
	w("run_dir = %s", strconv.Quote(n.RunDir))
	w("log_level = %q", c.opts.LogLevel)
	w("ports {")
	w("  raft = %d", n.ports.Raft)
	w("  http = %d", n.ports.HTTP)
	w("  serf_lan = %d", n.ports.SerfLAN)
	w("  serf_wan = %d", n.ports.SerfWAN)
	w("  server = %d", n.ports.Server)
	w("  dns = %d", n.ports.DNS)
	w("}")
	w("nats {")
	w("  url = %q", natsURL)
	w("}")
	w("raft {")
	if c.opts.SnapshotThreshold != 0 {
		w("  snapshot_threshold = %d", c.opts.SnapshotThreshold)
	}
	if c.opts.TrailingLogs != 0 {
		w("  trailing_logs = %d", c.opts.TrailingLogs)
	}
	if c.opts.SnapshotInterval != 0 {
		w("  snapshot_interval = %q", c.opts.SnapshotInterval.String())
	}
	w("}")
	return b.String()
}

// hostPort is a loopback address with the given port.
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts reserves n distinct ports on 127.0.0.1 that are free for both
// TCP and UDP (dns and serf use both). The sockets are held until all are
// chosen so no port is handed out twice; another process may still take
// one before a daemon binds it.
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries >= 10*n {
			return nil, fmt.Errorf("reserve ports: %d of %d free for TCP and UDP after %d tries", len(ports), n, tries)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve port: %w", err)
		}
		held = append(held, l) // held even when UDP fails, so it is not picked again
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", hostPort(port))
		if err != nil {
			continue // taken for UDP; try another
		}
		held = append(held, pc)
		ports = append(ports, port)
	}
	return ports, nil
}

// WaitLeader waits until every node whose daemons are all running reports
// the same non-empty leader on /v1/status/leader, and returns the node
// whose raft address that is. It fails the test at the deadline, or at
// once when a daemon exits by itself.
func (c *Cluster) WaitLeader(t testing.TB) *Node {
	t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, why := c.leaderRound()
		if leader != nil {
			return leader
		}
		if err := c.exited(); err != nil {
			t.Fatalf("testcluster: waiting for a leader: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcluster: no agreed leader after %v: %s", c.opts.WaitTimeout, why)
		}
		<-tick.C
	}
}

// Leader asks every node whose daemons are all running for the leader once
// and returns its node, or nil when they do not agree on one. Safe from any
// goroutine.
func (c *Cluster) Leader() *Node {
	n, _ := c.leaderRound()
	return n
}

// leaderRound polls the live nodes once. Without agreement it returns nil
// and a description of what each node answered.
func (c *Cluster) leaderRound() (*Node, string) {
	answers := map[string]string{}
	var names []string
	var agreed string
	same := true
	for _, n := range c.Nodes {
		if !n.allRunning() {
			continue
		}
		names = append(names, n.Name)
		leader, err := c.statusLeader(n.httpAddr)
		switch {
		case err != nil:
			answers[n.Name] = err.Error()
			same = false
		case leader == "":
			answers[n.Name] = "no leader"
			same = false
		default:
			answers[n.Name] = strconv.Quote(leader)
			if agreed == "" {
				agreed = leader
			} else if leader != agreed {
				same = false
			}
		}
	}
	if len(names) == 0 {
		return nil, "no node has all its daemons running"
	}
	var parts []string
	for _, name := range names {
		parts = append(parts, name+": "+answers[name])
	}
	why := strings.Join(parts, "; ")
	if !same {
		return nil, why
	}
	for _, n := range c.Nodes {
		if n.raftAddr == agreed {
			if !n.allRunning() {
				// The survivors have not noticed yet that it is gone.
				return nil, fmt.Sprintf("agreed leader %s is not running (%s)", n.Name, why)
			}
			return n, why
		}
	}
	return nil, fmt.Sprintf("leader %q is no node of this cluster (%s)", agreed, why)
}

// statusLeader asks addr's /v1/status/leader. The answer is a JSON string,
// empty when there is no leader.
func (c *Cluster) statusLeader(addr string) (string, error) {
	resp, err := c.http.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read /v1/status/leader: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/v1/status/leader: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var leader string
	if err := json.Unmarshal(body, &leader); err != nil {
		return "", fmt.Errorf("/v1/status/leader: decode %q: %w", body, err)
	}
	return leader, nil
}

// exited reports daemons that exited by themselves and were not reported
// by an earlier call, unless AllowExit.
func (c *Cluster) exited() error {
	if c.opts.AllowExit {
		return nil
	}
	var msgs []string
	for _, n := range c.Nodes {
		msgs = append(msgs, n.unexpectedExits()...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var fresh []string
	for _, m := range msgs {
		if !c.reported[m] {
			c.reported[m] = true
			fresh = append(fresh, m)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return errors.New(strings.Join(fresh, "; "))
}

// cleanup stops every node (in parallel; daemons in reverse start order),
// waits for every goroutine the cluster started, and reports: data races
// and unexpected exits fail the test; on failure every log's tail is
// printed.
func (c *Cluster) cleanup(t testing.TB) {
	var mu sync.Mutex
	var notes []string
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() {
			if err := n.stopAll(); err != nil {
				mu.Lock()
				notes = append(notes, err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	c.wg.Wait()
	c.http.CloseIdleConnections()
	slices.Sort(notes)
	for _, note := range notes {
		t.Logf("testcluster: %s", note)
	}
	if err := c.exited(); err != nil {
		t.Errorf("testcluster: %v", err)
	}
	for _, n := range c.Nodes {
		for _, d := range daemons {
			if hasDataRace(n.LogPath(d)) {
				t.Errorf("testcluster: %s on %s reported a data race (log %s)", d, n.Name, n.LogPath(d))
			}
		}
	}
	if t.Failed() {
		c.dumpLogs(t)
	}
}
