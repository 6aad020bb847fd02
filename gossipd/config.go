package gossipd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
)

// Gossip timing profiles, as Consul's memberlist profiles.
const (
	ProfileLAN   = "lan"   // memberlist.DefaultLANConfig
	ProfileWAN   = "wan"   // memberlist.DefaultWANConfig
	ProfileLocal = "local" // memberlist.DefaultLocalConfig: loopback and tests
)

// Default ports and timing.
const (
	DefaultLANPort          = 8301
	DefaultWANPort          = 8302
	DefaultServerPort       = 8300
	DefaultRetryInterval    = 30 * time.Second // Consul's retry_interval
	DefaultReconnectTimeout = 72 * time.Hour   // Consul's reconnect_timeout
	// DefaultBuild is the build tag gossipd announces: the Consul version
	// catalogd speaks, then "consort".
	DefaultBuild = "1.22.0:consort"
)

// Config holds everything gossipd needs.
type Config struct {
	// NodeName is this node's name in the LAN pool ("<name>.<dc>" in the
	// WAN pool). Required.
	NodeName string
	// NodeID goes in the "id" tag (the raft server ID on servers).
	NodeID string
	// Datacenter goes in the "dc" tag and names WAN members. Required.
	Datacenter string
	// Server makes this a server: role "consul" and a WAN pool (unless
	// WANPort < 0). Otherwise role "node", LAN only.
	Server bool
	// Bootstrap and BootstrapExpect are announced in tags for raftd's
	// bootstrap (servers only).
	Bootstrap       bool
	BootstrapExpect int
	// ServerPort is the raft/server port announced in the "port" tag.
	ServerPort int
	// Build is the "build" tag.
	Build string
	// Tags are extra tags; gossipd's own tags win on conflict.
	Tags map[string]string

	// BindAddr is the IP serf listens on (both pools).
	BindAddr string
	// AdvertiseAddr is the IP other members reach this node at. Empty:
	// the bind address when specific, else memberlist's choice of a
	// private address.
	AdvertiseAddr string
	// LANPort and WANPort are the serf ports; 0 picks a free port (tests);
	// WANPort < 0 disables the WAN pool.
	LANPort int
	WANPort int
	// LANProfile and WANProfile pick memberlist timing: ProfileLAN,
	// ProfileWAN or ProfileLocal.
	LANProfile string
	WANProfile string
	// Tune, when set, adjusts a pool's memberlist config after the
	// profile is applied (tests that want faster failure detection).
	Tune func(pool string, c *memberlist.Config)

	// RetryJoin and RetryJoinWAN are addresses (host or host:port) joined
	// at start, retried every RetryInterval until one join succeeds.
	RetryJoin     []string
	RetryJoinWAN  []string
	RetryInterval time.Duration
	// ReconnectTimeout is how long a failed member is kept (and tried)
	// before it is reaped.
	ReconnectTimeout time.Duration
	// RejoinAfterLeave lets a restarted gossipd rejoin from its snapshot
	// even after a graceful Leave (Consul's rejoin_after_leave).
	RejoinAfterLeave bool

	// DataDir holds serf's snapshots (serf/local.snapshot and
	// serf/wan.snapshot). Empty: no snapshot (a restart does not rejoin
	// by itself).
	DataDir string
	// SocketPath is gossipd's Unix socket.
	SocketPath string
	// SocketMode is the socket file's mode.
	SocketMode os.FileMode
	// Listener, when set, is served instead of listening on SocketPath
	// (tests). Run closes it.
	Listener net.Listener

	// Bus receives member and user events; nil publishes nothing.
	Bus bus.Publisher
	// Subjects is the bus subject prefix ("consort").
	Subjects string
	// Log is the logger; nil discards.
	Log *slog.Logger
	// WatchBuffer bounds the changes queued for one WatchMembers stream;
	// a stream that falls further behind is ended (the reader reopens it).
	WatchBuffer int
}

// DefaultConfig returns the defaults; NodeName is left for the caller.
func DefaultConfig() Config {
	return Config{
		Datacenter:       "dc1",
		ServerPort:       DefaultServerPort,
		Build:            DefaultBuild,
		BindAddr:         "0.0.0.0",
		LANPort:          DefaultLANPort,
		WANPort:          DefaultWANPort,
		LANProfile:       ProfileLAN,
		WANProfile:       ProfileWAN,
		RetryInterval:    DefaultRetryInterval,
		ReconnectTimeout: DefaultReconnectTimeout,
		DataDir:          "/var/lib/consort/gossipd",
		SocketPath:       "/run/consort/gossipd.sock",
		SocketMode:       0o660,
		Subjects:         bus.DefaultPrefix,
		WatchBuffer:      1024,
	}
}

// withDefaults fills zero fields from DefaultConfig. Ports stay as given
// (0 means a free port).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Datacenter == "" {
		c.Datacenter = d.Datacenter
	}
	if c.Build == "" {
		c.Build = d.Build
	}
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.LANProfile == "" {
		c.LANProfile = d.LANProfile
	}
	if c.WANProfile == "" {
		c.WANProfile = d.WANProfile
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = d.ReconnectTimeout
	}
	if c.SocketPath == "" && c.Listener == nil {
		c.SocketPath = d.SocketPath
	}
	if c.SocketMode == 0 {
		c.SocketMode = d.SocketMode
	}
	if c.Subjects == "" {
		c.Subjects = d.Subjects
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = d.WatchBuffer
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c, joined. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is required"))
	}
	if c.Datacenter == "" {
		errs = append(errs, errors.New("datacenter is required"))
	}
	if net.ParseIP(c.BindAddr) == nil {
		errs = append(errs, fmt.Errorf("bind address %q: want an IP", c.BindAddr))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("advertise address %q: want an IP", c.AdvertiseAddr))
	}
	if c.LANPort < 0 || c.LANPort > 65535 {
		errs = append(errs, fmt.Errorf("serf_lan port %d: want 0-65535 (the LAN pool cannot be disabled)", c.LANPort))
	}
	if c.WANPort > 65535 {
		errs = append(errs, fmt.Errorf("serf_wan port %d: want 0-65535, or -1 to disable", c.WANPort))
	}
	for _, p := range []string{c.LANProfile, c.WANProfile} {
		if _, err := profile(p); err != nil {
			errs = append(errs, err)
		}
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap_expect %d: must not be negative", c.BootstrapExpect))
	}
	if c.RetryInterval <= 0 || c.ReconnectTimeout <= 0 {
		errs = append(errs, errors.New("retry interval and reconnect timeout must be positive"))
	}
	if c.SocketPath == "" && c.Listener == nil {
		errs = append(errs, errors.New("socket path is required"))
	}
	if c.WatchBuffer < 1 {
		errs = append(errs, fmt.Errorf("watch buffer %d: must be at least 1", c.WatchBuffer))
	}
	return errors.Join(errs...)
}

// wanEnabled reports whether this node runs a WAN pool.
func (c Config) wanEnabled() bool { return c.Server && c.WANPort >= 0 }

// profile returns a fresh memberlist config for a profile name.
func profile(name string) (*memberlist.Config, error) {
	switch name {
	case ProfileLAN:
		return memberlist.DefaultLANConfig(), nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		return memberlist.DefaultLocalConfig(), nil
	}
	return nil, fmt.Errorf("gossip profile %q: want %q, %q or %q", name, ProfileLAN, ProfileWAN, ProfileLocal)
}

// ConfigFromNode turns the node config into gossipd's Config. Log and Bus
// are left for the caller. retry_join entries are serf LAN addresses, as
// in Consul (a bare host gets the serf_lan port).
func ConfigFromNode(n config.Node) Config {
	c := DefaultConfig()
	c.NodeName = n.NodeName
	c.NodeID = n.NodeID
	if n.Datacenter != "" {
		c.Datacenter = n.Datacenter
	}
	c.Server = n.Server
	c.Bootstrap = n.Bootstrap
	c.BootstrapExpect = n.BootstrapExpect
	if n.Ports.Raft > 0 {
		c.ServerPort = n.Ports.Raft
	}
	if n.BindAddr != "" {
		c.BindAddr = n.BindAddr
	}
	c.AdvertiseAddr = n.AdvertiseAddr
	if n.Ports.SerfLAN > 0 {
		c.LANPort = n.Ports.SerfLAN
	}
	if n.Ports.SerfWAN != 0 {
		c.WANPort = n.Ports.SerfWAN
	}
	c.RetryJoin = append([]string(nil), n.RetryJoin...)
	if n.DataDir != "" {
		c.DataDir = n.StateDir("gossipd")
	}
	if n.RunDir != "" {
		c.SocketPath = n.SocketPath("gossipd")
	}
	if n.NATS.SubjectPrefix != "" {
		c.Subjects = n.NATS.SubjectPrefix
	}
	return c
}

// joinAddrs gives every address without a port the default port.
func joinAddrs(addrs []string, port int) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, strconv.Itoa(port))
		}
		out = append(out, a)
	}
	return out
}
