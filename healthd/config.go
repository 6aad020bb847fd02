package healthd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/ipc"
)

// Catalog is what healthd needs from its node's catalogd: the stream of
// check definitions and a way to report status changes. A
// *catalogapi.Client satisfies it; unit tests serve catalogapi over
// pkg/ipc/ipctest. Both methods are safe for concurrent use.
type Catalog interface {
	// WatchChecks opens the check definition stream. It returns once the
	// stream is open; the stream ends when ctx ends or the connection
	// breaks. The first item is always a full set.
	WatchChecks(ctx context.Context, runner string) (*ipc.StreamReader[catalogapi.ChecksUpdate], error)
	// ReportChecks reports status changes and blocks for catalogd's
	// answer. A cancelled ctx abandons the call; the report may still
	// have been taken.
	ReportChecks(ctx context.Context, results []catalogapi.CheckResult) (*catalogapi.ReportChecksResponse, error)
}

// Config holds everything healthd needs; dependencies are interfaces.
type Config struct {
	// Node is this node's name: the runner name healthd gives catalogd,
	// and the node alias checks watch when they name none.
	Node string
	// SocketPath is healthd's own Unix socket (healthapi).
	SocketPath string
	// SocketMode is the socket file's mode.
	SocketMode os.FileMode
	// Listener, when set, is served instead of listening on SocketPath
	// (tests). Run closes it.
	Listener net.Listener
	// CatalogSocket is catalogd's socket, dialed when Catalog is nil.
	CatalogSocket string
	// Catalog is catalogd; nil dials CatalogSocket.
	Catalog Catalog
	// HTTPAddr is catalogd's HTTP API (host:port), which alias checks
	// poll. Empty: alias checks report critical saying so.
	HTTPAddr string
	// Clock schedules runs, TTLs and timers; nil is the system clock.
	Clock Clock
	// Log is the logger; nil discards.
	Log *slog.Logger

	// MaxRunning bounds the checks running at once (default 64). Due
	// checks wait for a free slot in the order they became due.
	MaxRunning int
	// EnableScriptChecks allows script (Args) checks; without it they
	// report critical. Off by default, as in Consul.
	EnableScriptChecks bool
	// MinInterval is the shortest run interval; shorter intervals are
	// raised to it, as Consul's agent does (1s).
	MinInterval time.Duration
	// ReportDelay is how long healthd gathers status changes before
	// sending them in one ReportChecks call.
	ReportDelay time.Duration
	// OutputUpdateInterval, when positive, defers reports of output-only
	// changes (status unchanged) by that long. Zero, the default, reports
	// them at once: catalogd's agent already defers syncing them to the
	// catalog, as Consul's check_update_interval does, and its
	// /v1/agent/checks shows the latest output as Consul's does.
	OutputUpdateInterval time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts
	// to reach catalogd.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// AliasWait is the wait of alias checks' blocking queries.
	AliasWait time.Duration
}

// Defaults.
const (
	DefaultMaxRunning  = 64
	DefaultReportDelay = 50 * time.Millisecond
	DefaultMinInterval = time.Second
	DefaultAliasWait   = time.Minute
	// DefaultOutputMaxSize caps a check's output, as Consul's
	// DefaultBufSize (4 KiB); a definition's OutputMaxSize overrides it.
	DefaultOutputMaxSize = 4 << 10
	// DefaultTimeout bounds one run of a network check (Consul's 10s).
	DefaultTimeout = 10 * time.Second
	// DefaultScriptTimeout bounds one run of a script check (Consul's 30s).
	DefaultScriptTimeout = 30 * time.Second
)

// DefaultConfig returns the defaults; Node is left for the caller.
func DefaultConfig() Config {
	return Config{
		SocketPath:    "/run/consort/healthd.sock",
		SocketMode:    0o660,
		CatalogSocket: "/run/consort/catalogd.sock",
		HTTPAddr:      "127.0.0.1:8500",
		MaxRunning:    DefaultMaxRunning,
		MinInterval:   DefaultMinInterval,
		ReportDelay:   DefaultReportDelay,
		ReconnectMin:  100 * time.Millisecond,
		ReconnectMax:  5 * time.Second,
		AliasWait:     DefaultAliasWait,
	}
}

// withDefaults fills zero fields from DefaultConfig. HTTPAddr stays empty
// when empty (alias checks then report that they cannot run).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SocketPath == "" && c.Listener == nil {
		c.SocketPath = d.SocketPath
	}
	if c.SocketMode == 0 {
		c.SocketMode = d.SocketMode
	}
	if c.CatalogSocket == "" {
		c.CatalogSocket = d.CatalogSocket
	}
	if c.MaxRunning == 0 {
		c.MaxRunning = d.MaxRunning
	}
	if c.MinInterval == 0 {
		c.MinInterval = d.MinInterval
	}
	if c.ReportDelay == 0 {
		c.ReportDelay = d.ReportDelay
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = d.ReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = d.ReconnectMax
	}
	if c.AliasWait == 0 {
		c.AliasWait = d.AliasWait
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c, joined. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("node name is required"))
	}
	if c.SocketPath == "" && c.Listener == nil {
		errs = append(errs, errors.New("socket path is required"))
	}
	if c.Catalog == nil && c.CatalogSocket == "" {
		errs = append(errs, errors.New("catalogd socket path is required"))
	}
	if c.MaxRunning < 1 {
		errs = append(errs, fmt.Errorf("max running %d: must be at least 1", c.MaxRunning))
	}
	if c.MinInterval <= 0 || c.ReportDelay < 0 || c.AliasWait <= 0 {
		errs = append(errs, errors.New("min interval and alias wait must be positive, report delay not negative"))
	}
	if c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("reconnect backoff %v..%v: want 0 < min <= max", c.ReconnectMin, c.ReconnectMax))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http address %q: %w", c.HTTPAddr, err))
		}
	}
	return errors.Join(errs...)
}

// ConfigFromNode turns the node config into healthd's Config. Log is left
// for the caller.
func ConfigFromNode(n config.Node) Config {
	c := DefaultConfig()
	c.Node = n.NodeName
	c.EnableScriptChecks = n.EnableScriptChecks
	if n.RunDir != "" {
		c.SocketPath = n.SocketPath("healthd")
		c.CatalogSocket = n.SocketPath("catalogd")
	}
	switch {
	case n.Ports.HTTP < 0:
		c.HTTPAddr = ""
	case n.Ports.HTTP > 0:
		host := n.ClientAddr
		if host == "" || host == "0.0.0.0" {
			host = "127.0.0.1"
		} else if host == "::" {
			host = "::1"
		}
		c.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(n.Ports.HTTP))
	}
	return c
}
