package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/embednats"
)

// devDaemons are the daemons dev mode runs, in start order; they stop in
// reverse. gossipd joins when it exists.
var devDaemons = []string{"raftd", "catalogd", "healthd", "dnsd"}

// maxSocketPath keeps <run_dir>/<daemon>.sock inside the 108-byte limit of
// a Unix socket address.
const maxSocketPath = 104

// devOptions are the dev command's flags.
type devOptions struct {
	DataDir  string
	HTTPPort int
	NATSPort int
	RaftPort int
	LogLevel string
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a one-node development cluster in the foreground",
		Description: "Writes a one-server node config into the data directory, starts an\n" +
			"embedded NATS server, then runs every daemon binary found next to\n" +
			"consort with --config-file, restarting any that dies. Ctrl-C stops them\n" +
			"in reverse order. State survives restarts; remove the data directory\n" +
			"to start empty.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: "./data", Usage: "config, state and sockets go here"},
			&cli.IntFlag{Name: "http-port", Value: 8500, Usage: "HTTP API port on 127.0.0.1"},
			&cli.IntFlag{Name: "nats-port", Value: 4222, Usage: "embedded NATS port on 127.0.0.1"},
			&cli.IntFlag{Name: "raft-port", Value: 8300, Usage: "raft port on 127.0.0.1"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			return runDev(c.Context, devOptions{
				DataDir:  c.String("data-dir"),
				HTTPPort: c.Int("http-port"),
				NATSPort: c.Int("nats-port"),
				RaftPort: c.Int("raft-port"),
				LogLevel: c.String("log-level"),
			})
		},
	}
}

// runDev runs the dev cluster until SIGINT or SIGTERM, then stops the
// children in reverse order and NATS last. A clean stop returns nil.
func runDev(ctx context.Context, o devOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	pre := stderrPrefixer(len("catalogd"))
	logger := func(name string) *slog.Logger {
		return slog.New(slog.NewTextHandler(pre.Writer(name), &slog.HandlerOptions{Level: level}))
	}
	log := logger("consort")

	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	runDir := filepath.Join(dataDir, "run")
	if n := len(filepath.Join(runDir, "catalogd.sock")); n > maxSocketPath {
		return fmt.Errorf("data dir %s: path too long for Unix sockets (%d bytes over the limit); use a shorter --data-dir", dataDir, n-maxSocketPath)
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--raft-port", o.RaftPort}, {"--http-port", o.HTTPPort}, {"--nats-port", o.NATSPort}} {
		if err := portFree(p.port); err != nil {
			return fmt.Errorf("port %d is not free (choose another with %s): %w", p.port, p.flag, err)
		}
	}

	bins, err := findDaemons(log)
	if err != nil {
		return err
	}

	ns, err := embednats.Start(embednats.Options{Host: "127.0.0.1", Port: o.NATSPort, Log: logger("nats")})
	if err != nil {
		return fmt.Errorf("start embedded nats on 127.0.0.1:%d (choose another port with --nats-port): %w", o.NATSPort, err)
	}
	defer ns.Shutdown()

	cfgFile := filepath.Join(dataDir, "consort.hcl")
	if err := os.WriteFile(cfgFile, []byte(devConfig(o, dataDir, runDir, ns.ClientURL())), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	// Check the file the way every daemon will read it, so a problem shows
	// once here instead of as a restart loop.
	if _, err := config.Load(config.LoadOptions{ConfigFile: cfgFile, Env: os.Environ()}); err != nil {
		return fmt.Errorf("dev config %s: %w", cfgFile, err)
	}
	log.Info("config written", "file", cfgFile)

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	var children []*child
	var wg sync.WaitGroup
	for i, b := range bins {
		ch := newChild(b.name, b.path, []string{"--config-file", cfgFile}, pre.Writer(b.name), log)
		children = append(children, ch)
		wg.Go(ch.run)
		// Let a daemon's socket come up before starting the ones that use
		// it; they cope without, but the log is quieter.
		if i < len(bins)-1 {
			waitSocket(ctx, filepath.Join(runDir, b.name+".sock"), 5*time.Second)
		}
	}

	httpURL := "http://127.0.0.1:" + strconv.Itoa(o.HTTPPort)
	if hasDaemon(bins, "catalogd") {
		wg.Go(func() {
			if waitLeader(ctx, log, httpURL) {
				fmt.Printf("consort dev: ready — HTTP %s, NATS %s, data %s\n", httpURL, ns.ClientURL(), o.DataDir)
			}
		})
	} else {
		log.Warn("catalogd not running; no HTTP API")
	}

	<-ctx.Done()
	stopSignals() // a second Ctrl-C ends consort at once; children die with it
	log.Info("stopping (Ctrl-C again to force)")
	for i := len(children) - 1; i >= 0; i-- {
		children[i].Stop()
	}
	wg.Wait()
	ns.Shutdown()
	log.Info("stopped")
	return nil
}

// devConfig renders the one-server node config dev mode writes. Ports it
// does not name keep their defaults.
func devConfig(o devOptions, dataDir, runDir, natsURL string) string {
	return strings.Join([]string{
		"# Written by `consort dev` on every start; change its flags, not this file.",
		`datacenter = "dc1"`,
		"server = true",
		"bootstrap = true",
		`bind_addr = "127.0.0.1"`,
		`advertise_addr = "127.0.0.1"`,
		`client_addr = "127.0.0.1"`,
		"data_dir = " + strconv.Quote(dataDir),
		"run_dir = " + strconv.Quote(runDir),
		"log_level = " + strconv.Quote(o.LogLevel),
		"ports {",
		"  raft = " + strconv.Itoa(o.RaftPort),
		"  http = " + strconv.Itoa(o.HTTPPort),
		"}",
		"nats {",
		"  url = " + strconv.Quote(natsURL),
		"}",
		"",
	}, "\n")
}

// daemonBin is a daemon binary found next to consort.
type daemonBin struct{ name, path string }

// findDaemons lists the devDaemons whose binaries sit in consort's own
// directory, logging the ones that do not.
func findDaemons(log *slog.Logger) ([]daemonBin, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	dir := filepath.Dir(exe)
	var bins []daemonBin
	for _, d := range devDaemons {
		p := filepath.Join(dir, d)
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			log.Warn("daemon binary not found; skipping", "daemon", d, "path", p)
			continue
		}
		bins = append(bins, daemonBin{d, p})
	}
	if len(bins) == 0 {
		return nil, fmt.Errorf("no daemon binaries in %s (%s); run make build", dir, strings.Join(devDaemons, ", "))
	}
	return bins, nil
}

func hasDaemon(bins []daemonBin, name string) bool {
	for _, b := range bins {
		if b.name == name {
			return true
		}
	}
	return false
}

// portFree reports whether 127.0.0.1:port can be listened on now.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// waitSocket waits up to limit for a Unix socket to accept a connection.
func waitSocket(ctx context.Context, path string, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitLeader polls /v1/status/leader until it names a leader (true) or ctx
// ends (false). It logs once if that takes long.
func waitLeader(ctx context.Context, log *slog.Logger, base string) bool {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	slow := time.After(20 * time.Second)
	var last error
	for {
		leader, err := statusLeader(ctx, client, base)
		if err == nil && leader != "" {
			return true
		}
		last = err
		if err == nil {
			last = errors.New("no leader yet")
		}
		select {
		case <-ctx.Done():
			return false
		case <-slow:
			log.Warn("not ready yet; still waiting", "url", base+"/v1/status/leader", "last", last)
		case <-tick.C:
		}
	}
}

func statusLeader(ctx context.Context, client *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/status/leader", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var leader string
	if err := json.Unmarshal(body, &leader); err != nil {
		return "", fmt.Errorf("decode %q: %w", body, err)
	}
	return leader, nil
}
