package catalogd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/raftapi"
)

// Log is what catalogd needs from raftd: append commands, follow the
// committed log, and learn read indexes and cluster status. A
// *raftapi.Client satisfies it; tests use catalogdtest's in-memory raft.
// All methods are safe for concurrent use.
type Log interface {
	// Apply appends data to the replicated log and blocks until it is
	// committed, returning its index. A cancelled ctx abandons the call;
	// the write may still commit. raftapi.ErrTimeout means the outcome is
	// unknown, raftapi.ErrNoLeader that nothing was written.
	Apply(ctx context.Context, data []byte) (uint64, error)
	// Feed opens the state machine feed after index after: an optional
	// snapshot, then every committed entry in order, then live entries.
	// It returns once the stream is open; the stream ends when ctx ends
	// or the connection breaks.
	Feed(ctx context.Context, after uint64) (*ipc.StreamReader[raftapi.FeedItem], error)
	// ReadIndex blocks until the leader answers with an index covering
	// every write acknowledged before the call. consistent makes the
	// leader confirm its leadership with a quorum first.
	ReadIndex(ctx context.Context, consistent bool) (*raftapi.ReadIndexResponse, error)
	// Status returns the local raftd's view of the cluster; it never
	// forwards, so it answers without a leader.
	Status(ctx context.Context) (*raftapi.StatusResponse, error)
}

// Config holds everything catalogd needs; dependencies are interfaces.
type Config struct {
	NodeName   string
	NodeID     string // reported by /v1/agent/self; empty: raftd's server ID
	Datacenter string
	Server     bool   // reported by /v1/agent/self; client mode (forwarding) is not built yet
	Advertise  string // address reported as this agent's member address
	// SerfLANPort is reported as this agent's member port.
	SerfLANPort int
	// HTTPAddr is the Consul HTTP API listen address; empty disables it.
	HTTPAddr string
	// SocketPath is catalogd's Unix socket (mode 0660); empty disables it.
	SocketPath string
	// RaftSocket names raftd's socket in error messages only.
	RaftSocket string
	// Raft is the replicated log: usually a *raftapi.Client on raftd's socket.
	Raft Log
	// Bus receives KV events on BusPrefix + ".kv"; nil publishes nothing.
	Bus       bus.Publisher
	BusPrefix string
	Log       *slog.Logger
	// KVMaxValueSize bounds a KV value in bytes (Consul's kv_max_value_size).
	KVMaxValueSize int
	// SessionTTLMin is the shortest session TTL accepted (Consul's
	// session_ttl_min); zero is DefaultSessionTTLMin, 10 s. Tests lower it
	// to see TTL expiry quickly.
	SessionTTLMin time.Duration

	// AgentDir is where this node's agent state (the services and checks
	// registered here) is persisted; empty keeps it in memory only.
	AgentDir string
	// ServiceDefinitions are files and directories of service and check
	// definitions in Consul's format (the node's config file and config
	// dir); Reload (SIGHUP, PUT /v1/agent/reload) reads them again.
	ServiceDefinitions []string
	// NodeMeta is registered with this node (Consul's node_meta).
	NodeMeta map[string]string
	// TaggedAddresses are registered with this node; empty: lan and wan,
	// and lan_ipv4 and wan_ipv4 (or _ipv6), all Advertise, as Consul.
	TaggedAddresses map[string]string
	// AntiEntropyInterval is the period of the agent's full diff against
	// the catalog; zero is a minute. Negative disables anti-entropy: the
	// agent API works but nothing is written to the catalog for it (not
	// even this node), for tests of the catalog alone.
	AntiEntropyInterval time.Duration
	// CheckUpdateInterval defers syncing a TTL check whose output changed
	// but whose status did not (Consul's check_update_interval); zero is
	// five minutes, negative syncs at once.
	CheckUpdateInterval time.Duration
	// HealthdSocket is healthd's socket, told about TTL updates so it
	// re-arms its timers; empty tells no one.
	HealthdSocket string
}

// DefaultConfig returns a usable Config apart from Raft, which has no
// default.
func DefaultConfig() Config {
	return Config{
		NodeName:       "consort",
		Datacenter:     "dc1",
		Server:         true,
		Advertise:      "127.0.0.1",
		SerfLANPort:    8301,
		HTTPAddr:       "127.0.0.1:8500",
		SocketPath:     "/run/consort/catalogd.sock",
		RaftSocket:     "/run/consort/raftd.sock",
		BusPrefix:      "consort",
		KVMaxValueSize: 512 << 10,
		AgentDir:       "/var/lib/consort/catalogd/agent",
		HealthdSocket:  "/run/consort/healthd.sock",
	}
}

// ConfigFromNode turns the node config into catalogd's Config. Raft, Bus
// and Log stay nil: the caller dials raftd at n.SocketPath("raftd"),
// connects the bus and builds the logger.
func ConfigFromNode(n config.Node) Config {
	c := DefaultConfig()
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.NodeName, n.NodeName)
	set(&c.NodeID, n.NodeID)
	set(&c.Datacenter, n.Datacenter)
	c.Server = n.Server
	set(&c.Advertise, n.AdvertiseAddr)
	if n.AdvertiseAddr == "" && n.BindAddr != "" && n.BindAddr != "0.0.0.0" && n.BindAddr != "::" {
		c.Advertise = n.BindAddr
	}
	if n.Ports.SerfLAN > 0 {
		c.SerfLANPort = n.Ports.SerfLAN
	}
	switch {
	case n.Ports.HTTP < 0:
		c.HTTPAddr = ""
	case n.Ports.HTTP > 0:
		host := n.ClientAddr
		if host == "" {
			host = "127.0.0.1"
		}
		c.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(n.Ports.HTTP))
	}
	if n.RunDir != "" {
		c.SocketPath = n.SocketPath("catalogd")
		c.RaftSocket = n.SocketPath("raftd")
		c.HealthdSocket = n.SocketPath("healthd")
	}
	if n.DataDir != "" {
		c.AgentDir = filepath.Join(n.StateDir("catalogd"), "agent")
	}
	set(&c.BusPrefix, n.NATS.SubjectPrefix)
	if len(n.NodeMeta) > 0 {
		c.NodeMeta = maps.Clone(n.NodeMeta)
	}
	if n.Limits.KVMaxValueSize > 0 {
		c.KVMaxValueSize = n.Limits.KVMaxValueSize
	}
	return c
}

// Validate reports every problem with c, joined. It never changes c.
func (c Config) Validate() error {
	var errs []error
	if c.Raft == nil {
		errs = append(errs, errors.New("raft log is not set: catalogd needs raftd (client mode is not built yet)"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is empty"))
	}
	if c.Datacenter == "" {
		errs = append(errs, errors.New("datacenter is empty"))
	}
	if c.KVMaxValueSize <= 0 {
		errs = append(errs, fmt.Errorf("kv max value size %d: must be positive", c.KVMaxValueSize))
	}
	if c.KVMaxValueSize > raftapi.MaxCommandSize/2 {
		errs = append(errs, fmt.Errorf("kv max value size %d: must be at most %d (half of raft's command limit)", c.KVMaxValueSize, raftapi.MaxCommandSize/2))
	}
	if c.SessionTTLMin < 0 || c.SessionTTLMin > SessionTTLMax {
		errs = append(errs, fmt.Errorf("session ttl min %s: must be between 0 and %s", c.SessionTTLMin, SessionTTLMax))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http address %q: %w", c.HTTPAddr, err))
		}
	}
	return errors.Join(errs...)
}

// fill returns c with zero fields taken from DefaultConfig.
func (c Config) fill() Config {
	d := DefaultConfig()
	if c.NodeName == "" {
		c.NodeName = d.NodeName
	}
	if c.Datacenter == "" {
		c.Datacenter = d.Datacenter
	}
	if c.Advertise == "" {
		c.Advertise = d.Advertise
	}
	if c.RaftSocket == "" {
		c.RaftSocket = d.RaftSocket
	}
	if c.BusPrefix == "" {
		c.BusPrefix = d.BusPrefix
	}
	if c.KVMaxValueSize == 0 {
		c.KVMaxValueSize = d.KVMaxValueSize
	}
	if c.SessionTTLMin == 0 {
		c.SessionTTLMin = DefaultSessionTTLMin
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}
