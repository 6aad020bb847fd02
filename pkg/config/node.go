package config

import "time"

// Node is the node config every daemon reads. HCL/JSON keys are the
// snake_case names in the hcl tags. Zero values are filled by Defaults.
type Node struct {
	NodeName        string   `hcl:"node_name"`
	NodeID          string   `hcl:"node_id"` // raft server ID; default: generated once and kept in data_dir/node-id
	Datacenter      string   `hcl:"datacenter"`
	Server          bool     `hcl:"server"`
	Bootstrap       bool     `hcl:"bootstrap"`        // bootstrap a one-server cluster
	BootstrapExpect int      `hcl:"bootstrap_expect"` // wait for this many servers, then bootstrap
	RetryJoin       []string `hcl:"retry_join"`       // for now: other servers' raft addresses (host:port)
	BindAddr        string   `hcl:"bind_addr"`
	AdvertiseAddr   string   `hcl:"advertise_addr"`
	ClientAddr      string   `hcl:"client_addr"` // HTTP and DNS listen address
	DataDir         string   `hcl:"data_dir"`    // state: <data_dir>/<daemon>/
	RunDir          string   `hcl:"run_dir"`     // sockets: <run_dir>/<daemon>.sock
	LogLevel        string   `hcl:"log_level"`
	// EnableScriptChecks lets healthd run script (args) checks, as
	// NodeMeta is registered with this node in the catalog (Consul's
	// node_meta): node_meta { rack = "r1" }; env/--set as "k:v,k:v".
	NodeMeta map[string]string `hcl:"node_meta"`
	// Consul's enable_script_checks; off by default.
	EnableScriptChecks bool   `hcl:"enable_script_checks"`
	Ports              Ports  `hcl:"ports"`
	NATS               NATS   `hcl:"nats"`
	Raft               Raft   `hcl:"raft"`
	Limits             Limits `hcl:"limits"`
	// Source lists the files the node was read from, for messages.
	Source []string `hcl:"-"`
}

// Ports holds listen ports; -1 disables a listener.
type Ports struct {
	Raft    int `hcl:"raft"`     // 8300: raft transport, forwarded apply, read index
	SerfLAN int `hcl:"serf_lan"` // 8301
	SerfWAN int `hcl:"serf_wan"` // 8302
	Server  int `hcl:"server"`   // 8303: catalogd server RPC
	HTTP    int `hcl:"http"`     // 8500
	DNS     int `hcl:"dns"`      // 8600
}

// NATS says where the event bus is.
type NATS struct {
	URL           string `hcl:"url"`            // nats://127.0.0.1:4222
	SubjectPrefix string `hcl:"subject_prefix"` // consort
}

// Raft tunes raftd.
type Raft struct {
	SnapshotThreshold uint64        `hcl:"snapshot_threshold"` // entries between snapshots (8192)
	SnapshotInterval  time.Duration `hcl:"snapshot_interval"`  // Go duration string in files ("30s")
	TrailingLogs      uint64        `hcl:"trailing_logs"`      // entries kept after a snapshot (10240)
	Multiplier        int           `hcl:"raft_multiplier"`    // Consul's performance.raft_multiplier (1 = production timing)
}

// Limits bounds request handling.
type Limits struct {
	KVMaxValueSize int `hcl:"kv_max_value_size"` // 512 KiB, as Consul
}

// Defaults returns a Node with every default filled.
func Defaults() Node {
	return Node{
		Datacenter: "dc1",
		BindAddr:   "0.0.0.0",
		ClientAddr: "127.0.0.1",
		DataDir:    "/var/lib/consort",
		RunDir:     "/run/consort",
		LogLevel:   "info",
		Ports:      Ports{Raft: 8300, SerfLAN: 8301, SerfWAN: 8302, Server: 8303, HTTP: 8500, DNS: 8600},
		NATS:       NATS{URL: "nats://127.0.0.1:4222", SubjectPrefix: "consort"},
		Raft: Raft{
			SnapshotThreshold: 8192,
			SnapshotInterval:  30 * time.Second,
			TrailingLogs:      10240,
			Multiplier:        1,
		},
		Limits: Limits{KVMaxValueSize: 512 << 10},
	}
}

// SocketPath returns the Unix socket path of a daemon ("raftd", "catalogd"…).
func (n Node) SocketPath(daemon string) string { return n.RunDir + "/" + daemon + ".sock" }

// StateDir returns a daemon's state directory.
func (n Node) StateDir(daemon string) string { return n.DataDir + "/" + daemon }
