package testcluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consort-io/consort/pkg/config"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Node is one server node: a config file, a data and a run directory, and
// one process per daemon. Its methods are safe for concurrent use.
type Node struct {
	// Name is the node_name: node-1, node-2, …
	Name string
	// ID is the node_id (the raft server ID), a fixed UUID per position:
	// 00000000-0000-4000-8000-000000000001 for node-1, and so on.
	ID string
	// DataDir is the node's data_dir; each daemon keeps state in
	// DataDir/<daemon>.
	DataDir string
	// RunDir is the node's run_dir, holding <daemon>.sock.
	RunDir string
	// ConfigFile is the node's consort.hcl, passed as --config-file.
	ConfigFile string
	// ConfigDir is the node's consort.d, passed as --config-dir.
	ConfigDir string
	// LogDir holds <daemon>.log, each daemon's stdout and stderr across
	// restarts.
	LogDir string

	ports    config.Ports
	raftAddr string // 127.0.0.1:ports.Raft
	httpAddr string // 127.0.0.1:ports.HTTP
	c        *Cluster

	mu    sync.Mutex       // guards procs and exits
	procs map[string]*proc // latest process of each daemon
	exits []string         // daemons that exited by themselves
}

// proc is one run of a daemon.
type proc struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has been waited for
	err      error         // Wait's result; read after done
	stopping bool          // the harness killed or stopped it; guarded by Node.mu
}

// running reports whether p exists and has not exited.
func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// HTTPAddr is the host:port of the node's HTTP API (catalogd).
func (n *Node) HTTPAddr() string { return n.httpAddr }

// DNSAddr is the host:port where the node's dnsd answers, UDP and TCP.
func (n *Node) DNSAddr() string { return hostPort(n.ports.DNS) }

// RaftAddr is the host:port of the node's raft transport (raftd), which is
// what /v1/status/leader and /v1/status/peers name.
func (n *Node) RaftAddr() string { return n.raftAddr }

// Ports are the node's ports; -1 is off.
func (n *Node) Ports() config.Ports { return n.ports }

// SocketPath is the path of a daemon's Unix socket.
func (n *Node) SocketPath(daemon string) string {
	return filepath.Join(n.RunDir, daemon+".sock")
}

// LogPath is the path of a daemon's log file.
func (n *Node) LogPath(daemon string) string {
	return filepath.Join(n.LogDir, daemon+".log")
}

// Running reports whether the daemon's process is alive.
func (n *Node) Running(daemon string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.procs[daemon].running()
}

// Start starts the daemon with the node's config. It returns once the
// process has been started, not when it serves. Starting a running daemon
// is an error.
func (n *Node) Start(daemon string) error {
	if !slices.Contains(daemons, daemon) {
		return fmt.Errorf("start %s on %s: unknown daemon (known: %s)", daemon, n.Name, strings.Join(daemons, ", "))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.procs[daemon].running() {
		return fmt.Errorf("start %s on %s: already running", daemon, n.Name)
	}
	logf, err := os.OpenFile(n.LogPath(daemon), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", daemon, n.Name, err)
	}
	// The child gets its own copy of the descriptor; ours is only for the
	// marker lines.
	defer logf.Close()
	fmt.Fprintf(logf, "=== testcluster %s: start %s --config-file %s --config-dir %s\n", stamp(), daemon, n.ConfigFile, n.ConfigDir)

	cmd := exec.Command(filepath.Join(n.c.bin, daemon), "--config-file", n.ConfigFile, "--config-dir", n.ConfigDir)
	cmd.Dir = n.DataDir
	cmd.Env = childEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // Kill and Stop signal the whole group
		// Do not outlive a test binary killed by -timeout.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s on %s: %w", daemon, n.Name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	n.procs[daemon] = p
	n.c.wg.Go(func() { n.reap(daemon, p) })
	return nil
}

// reap waits for p to exit, records whether that was asked for and marks
// the end in the daemon's log.
func (n *Node) reap(daemon string, p *proc) {
	err := p.cmd.Wait()
	n.mu.Lock()
	p.err = err
	how := "exited"
	if err != nil {
		how = err.Error()
	}
	if !p.stopping {
		n.exits = append(n.exits, fmt.Sprintf("%s on %s exited by itself (%s); log %s", daemon, n.Name, how, n.LogPath(daemon)))
	}
	n.mu.Unlock()
	if f, ferr := os.OpenFile(n.LogPath(daemon), os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
		fmt.Fprintf(f, "=== testcluster %s: %s pid %d %s\n", stamp(), daemon, p.cmd.Process.Pid, how)
		f.Close()
	}
	close(p.done)
}

// Kill sends SIGKILL to the daemon's process group and waits for it to
// exit. Killing a daemon that is not running does nothing.
func (n *Node) Kill(daemon string) error {
	p := n.markStopping(daemon)
	if p == nil {
		return nil
	}
	signalGroup(p, syscall.SIGKILL)
	return n.awaitExit(daemon, p, 10*time.Second)
}

// WaitRegistered waits until the node's catalogd has registered its own
// node in the catalog (the agent's first sync), as sessions need.
func (n *Node) WaitRegistered(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(n.c.opts.WaitTimeout)
	for {
		resp, err := n.c.http.Get("http://" + n.httpAddr + "/v1/catalog/node/" + n.Name + "?stale")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) != "null" {
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		if xerr := n.c.exited(); xerr != nil {
			t.Fatalf("testcluster: waiting for %s to register: %v", n.Name, xerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcluster: %s not in the catalog after %v: %v", n.Name, n.c.opts.WaitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to a running daemon (e.g. SIGHUP to reload); it is an
// error when the daemon is not running.
func (n *Node) Signal(daemon string, sig syscall.Signal) error {
	n.mu.Lock()
	p := n.procs[daemon]
	n.mu.Unlock()
	if p == nil || !p.running() {
		return fmt.Errorf("%s: %s is not running", n.Name, daemon)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM to the daemon's process group and waits for it to
// exit; after 5 s it sends SIGKILL and returns an error saying so (the
// daemon is gone either way). Stopping a daemon that is not running does
// nothing.
func (n *Node) Stop(daemon string) error {
	p := n.markStopping(daemon)
	if p == nil {
		return nil
	}
	signalGroup(p, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	signalGroup(p, syscall.SIGKILL)
	if err := n.awaitExit(daemon, p, 10*time.Second); err != nil {
		return err
	}
	return fmt.Errorf("%s on %s did not exit within %v of SIGTERM; sent SIGKILL", daemon, n.Name, stopGrace)
}

// KillAll sends SIGKILL to every daemon of the node, in reverse start
// order, like a power cut.
func (n *Node) KillAll() error {
	var errs []error
	for _, d := range slices.Backward(daemons) {
		errs = append(errs, n.Kill(d))
	}
	return errors.Join(errs...)
}

// StartAll starts every daemon of the node that is not running, in start
// order, waiting for raftd's socket to accept connections before starting
// the others.
func (n *Node) StartAll() error {
	for i, d := range daemons {
		if n.Running(d) {
			continue
		}
		if err := n.Start(d); err != nil {
			return err
		}
		if i == 0 {
			if err := n.waitSocket(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopAll stops every daemon, in reverse start order.
func (n *Node) stopAll() error {
	var errs []error
	for _, d := range slices.Backward(daemons) {
		errs = append(errs, n.Stop(d))
	}
	return errors.Join(errs...)
}

// markStopping returns the daemon's running process, flagged as stopped on
// purpose, or nil.
func (n *Node) markStopping(daemon string) *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.procs[daemon]
	if !p.running() {
		return nil
	}
	p.stopping = true
	return p
}

func (n *Node) awaitExit(daemon string, p *proc, limit time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(limit):
		return fmt.Errorf("%s on %s (pid %d) still running %v after SIGKILL", daemon, n.Name, p.cmd.Process.Pid, limit)
	}
}

// signalGroup signals p's process group. Errors mean the group is already
// gone, which the caller learns from p.done.
func signalGroup(p *proc, sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// allRunning reports whether every daemon of the node is alive.
func (n *Node) allRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range daemons {
		if !n.procs[d].running() {
			return false
		}
	}
	return true
}

func (n *Node) unexpectedExits() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.exits)
}

// waitSocket waits until the daemon's socket accepts a connection. A stale
// socket file left by a killed process refuses connections, so existence
// alone is not enough.
func (n *Node) waitSocket(daemon string) error {
	path := n.SocketPath(daemon)
	deadline := time.Now().Add(n.c.opts.WaitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		last = err
		if !n.Running(daemon) {
			return fmt.Errorf("%s on %s exited before serving %s; log %s", daemon, n.Name, path, n.LogPath(daemon))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s: socket %s not accepting after %v: %v", daemon, n.Name, path, n.c.opts.WaitTimeout, last)
		}
		<-tick.C
	}
}

// WaitReady waits until the node's HTTP API answers /v1/status/leader with
// 200 (a leader need not be known yet). It fails the test at the deadline,
// or at once when a daemon exits by itself.
func (n *Node) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(n.c.opts.WaitTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := n.c.statusLeader(n.httpAddr)
		if err == nil {
			return
		}
		if xerr := n.c.exited(); xerr != nil {
			t.Fatalf("testcluster: waiting for %s HTTP: %v", n.Name, xerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("testcluster: %s HTTP %s not ready after %v: %v", n.Name, n.httpAddr, n.c.opts.WaitTimeout, err)
		}
		<-tick.C
	}
}

// APIClient returns a github.com/hashicorp/consul/api client for the
// node's HTTP address. Its idle connections are closed when the test ends.
func (n *Node) APIClient(t testing.TB) *api.Client {
	t.Helper()
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := api.NewClient(&api.Config{
		Address:    n.httpAddr,
		Scheme:     "http",
		Transport:  tr,
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatalf("testcluster: consul api client for %s: %v", n.Name, err)
	}
	return client
}

// childEnv is the test's environment without CONSORT_* variables, which
// would override the generated config, and with full tracebacks on crash.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSORT_") || strings.HasPrefix(kv, "GOTRACEBACK=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOTRACEBACK=all")
}

func stamp() string { return time.Now().Format("15:04:05.000") }
