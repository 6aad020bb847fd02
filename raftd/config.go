package raftd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
)

// Connection preambles on the raft port. The first byte a client writes
// says what the connection carries, as Consul's RPCType does.
const (
	// RaftPreamble starts a connection of raft's own transport.
	RaftPreamble byte = 0x01
	// RPCPreamble starts an ipc (yamux) connection serving raftd's
	// methods to other servers: forwarded Apply and ReadIndex, and Status
	// for bootstrap discovery. Dial it with
	// ipc.TCPDialer(addr, []byte{RPCPreamble}).
	RPCPreamble byte = 0x02
)

// Consul's production raft timing; Multiplier scales it.
const (
	baseHeartbeatTimeout   = 1000 * time.Millisecond
	baseElectionTimeout    = 1000 * time.Millisecond
	baseLeaderLeaseTimeout = 500 * time.Millisecond
)

// Config holds everything raftd needs.
type Config struct {
	// ID is the raft server ID (the node's node_id). Required; it must
	// never change for a data directory.
	ID string
	// Bind is the TCP address raft and raftd's RPC listen on (host:port).
	Bind string
	// Advertise is the address other servers dial (host:port). Empty:
	// Bind's host when it is specific, else the one private IPv4 address
	// of this machine; the port defaults to the listening port.
	Advertise string
	// Listener, when set, is used instead of listening on Bind (tests,
	// socket activation). Run closes it.
	Listener net.Listener
	// DataDir is raftd's own state directory: raft.db and snapshots/.
	DataDir string
	// SocketPath is the local Unix socket raftd serves.
	SocketPath string
	// SocketMode is the socket file's mode.
	SocketMode os.FileMode
	// CatalogSocket is catalogd's socket; raftd asks it for state when
	// writing a raft snapshot.
	CatalogSocket string
	// Bootstrap makes a one-server cluster on first start.
	Bootstrap bool
	// BootstrapExpect waits for this many servers (this one included,
	// found through Peers) and then bootstraps them all. 0: never bootstrap
	// unless Bootstrap.
	BootstrapExpect int
	// Peers are other servers' raft addresses (host:port), asked for
	// their Status during bootstrap.
	Peers []string
	// Bus receives leader events; nil publishes nothing.
	Bus bus.Publisher
	// Subjects is the bus subject prefix ("consort").
	Subjects string
	// Log is the logger; nil discards.
	Log *slog.Logger

	// SnapshotThreshold is the number of new entries that makes raft
	// consider a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks the threshold.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot.
	TrailingLogs uint64
	// Multiplier scales Consul's production timing (1 = fastest allowed).
	Multiplier int
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout override
	// the timing derived from Multiplier when not zero (tests).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds how long a write waits to be queued into raft.
	// A write that times out there was not applied.
	ApplyTimeout time.Duration
	// HoldTimeout is how long Apply and ReadIndex wait for a leader before
	// answering raftapi.ErrNoLeader (Consul's RPCHoldTimeout).
	HoldTimeout time.Duration
	// SnapshotTimeout bounds asking catalogd for its state.
	SnapshotTimeout time.Duration
	// BootstrapPoll is how often peers are asked for their Status while
	// waiting for BootstrapExpect servers.
	BootstrapPoll time.Duration
}

// DefaultConfig returns the defaults; ID is left for the caller.
func DefaultConfig() Config {
	return Config{
		Bind:              "0.0.0.0:8300",
		DataDir:           "/var/lib/consort/raftd",
		SocketPath:        "/run/consort/raftd.sock",
		SocketMode:        0o660,
		CatalogSocket:     "/run/consort/catalogd.sock",
		Subjects:          "consort",
		SnapshotThreshold: 8192,
		SnapshotInterval:  30 * time.Second,
		TrailingLogs:      10240,
		Multiplier:        1,
		ApplyTimeout:      5 * time.Second,
		HoldTimeout:       7 * time.Second,
		SnapshotTimeout:   10 * time.Minute,
		BootstrapPoll:     time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Bind == "" && c.Listener == nil {
		c.Bind = d.Bind
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.SocketPath == "" {
		c.SocketPath = d.SocketPath
	}
	if c.SocketMode == 0 {
		c.SocketMode = d.SocketMode
	}
	if c.CatalogSocket == "" {
		c.CatalogSocket = d.CatalogSocket
	}
	if c.Subjects == "" {
		c.Subjects = d.Subjects
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.Multiplier == 0 {
		c.Multiplier = d.Multiplier
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.HoldTimeout == 0 {
		c.HoldTimeout = d.HoldTimeout
	}
	if c.SnapshotTimeout == 0 {
		c.SnapshotTimeout = d.SnapshotTimeout
	}
	if c.BootstrapPoll == 0 {
		c.BootstrapPoll = d.BootstrapPoll
	}
	m := time.Duration(c.Multiplier)
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = baseHeartbeatTimeout * m
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = baseElectionTimeout * m
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = baseLeaderLeaseTimeout * m
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c, joined. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id is required (the node_id)"))
	}
	if c.Listener == nil {
		if _, port, err := net.SplitHostPort(c.Bind); err != nil {
			errs = append(errs, fmt.Errorf("bind %q: %w", c.Bind, err))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("bind %q: port must be 0-65535 (ports.raft cannot be disabled on a server)", c.Bind))
		}
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			if net.ParseIP(c.Advertise) == nil {
				errs = append(errs, fmt.Errorf("advertise %q: want an IP or IP:port", c.Advertise))
			}
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.SocketPath == "" {
		errs = append(errs, errors.New("socket path is required"))
	}
	if c.CatalogSocket == "" {
		errs = append(errs, errors.New("catalogd socket path is required"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap_expect %d: must not be negative", c.BootstrapExpect))
	}
	if c.Bootstrap && c.BootstrapExpect > 1 {
		errs = append(errs, errors.New("bootstrap and bootstrap_expect > 1 are mutually exclusive"))
	}
	if c.Multiplier < 1 || c.Multiplier > 10 {
		errs = append(errs, fmt.Errorf("raft_multiplier %d: must be between 1 and 10", c.Multiplier))
	}
	for _, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("peer %q: want host:port: %w", p, err))
		}
	}
	if c.SnapshotThreshold == 0 || c.TrailingLogs == 0 || c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("snapshot threshold, interval and trailing logs must be positive"))
	}
	if c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 {
		errs = append(errs, errors.New("raft timeouts must be positive"))
	} else if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, errors.New("leader lease timeout must not exceed the heartbeat timeout"))
	}
	if c.ApplyTimeout <= 0 || c.HoldTimeout <= 0 || c.SnapshotTimeout <= 0 || c.BootstrapPoll <= 0 {
		errs = append(errs, errors.New("apply, hold, snapshot and bootstrap poll timeouts must be positive"))
	}
	return errors.Join(errs...)
}

// ConfigFromNode turns the node config into raftd's Config. Log and Bus
// are left for the caller.
func ConfigFromNode(n config.Node) Config {
	d := DefaultConfig()
	port := n.Ports.Raft
	if port == 0 {
		port = 8300
	}
	ps := strconv.Itoa(port)
	c := d
	c.ID = n.NodeID
	c.Bind = net.JoinHostPort(n.BindAddr, ps)
	if n.AdvertiseAddr != "" {
		c.Advertise = net.JoinHostPort(n.AdvertiseAddr, ps)
	}
	c.DataDir = n.StateDir("raftd")
	c.SocketPath = n.SocketPath("raftd")
	c.CatalogSocket = n.SocketPath("catalogd")
	c.Bootstrap = n.Bootstrap
	c.BootstrapExpect = n.BootstrapExpect
	for _, p := range n.RetryJoin {
		if _, _, err := net.SplitHostPort(p); err != nil {
			p = net.JoinHostPort(p, ps) // a bare host gets the raft port
		}
		c.Peers = append(c.Peers, p)
	}
	if n.NATS.SubjectPrefix != "" {
		c.Subjects = n.NATS.SubjectPrefix
	}
	if n.Raft.SnapshotThreshold != 0 {
		c.SnapshotThreshold = n.Raft.SnapshotThreshold
	}
	if n.Raft.SnapshotInterval != 0 {
		c.SnapshotInterval = n.Raft.SnapshotInterval
	}
	if n.Raft.TrailingLogs != 0 {
		c.TrailingLogs = n.Raft.TrailingLogs
	}
	if n.Raft.Multiplier != 0 {
		c.Multiplier = n.Raft.Multiplier
	}
	return c
}

// advertiseAddr decides the address other servers dial, given the
// listener's actual address.
func advertiseAddr(advertise string, listen net.Addr) (string, error) {
	lhost, lport, err := net.SplitHostPort(listen.String())
	if err != nil {
		return "", fmt.Errorf("listener address %q: %w", listen, err)
	}
	host, port := "", lport
	if advertise != "" {
		if h, p, err := net.SplitHostPort(advertise); err == nil {
			host, port = h, p
		} else {
			host = advertise
		}
	}
	if host == "" {
		if ip := net.ParseIP(lhost); ip != nil && !ip.IsUnspecified() {
			host = lhost
		} else {
			ip, err := privateIPv4()
			if err != nil {
				return "", err
			}
			host = ip.String()
		}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("advertise address %s is unspecified; set advertise_addr", host)
	}
	return net.JoinHostPort(host, port), nil
}

// privateIPv4 returns this machine's one private IPv4 address, as Consul
// chooses its advertise address.
func privateIPv4() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var found []net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipn.IP.To4()
		if ip == nil || ip.IsLoopback() || !(ip.IsPrivate() || isSharedCGNAT(ip)) {
			continue
		}
		found = append(found, ip)
	}
	switch len(found) {
	case 0:
		return nil, errors.New("no private IPv4 address found; set advertise_addr or a specific bind_addr")
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("multiple private IPv4 addresses found (%v); set advertise_addr or a specific bind_addr", found)
	}
}

// isSharedCGNAT reports whether ip is in 100.64.0.0/10, which Consul also
// counts as private.
func isSharedCGNAT(ip net.IP) bool { return ip[0] == 100 && ip[1]&0xc0 == 64 }
