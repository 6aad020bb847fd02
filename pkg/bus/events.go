package bus

// Publisher is what daemons publish through. Publish never blocks: when
// the bus is down or slow the event is buffered (bounded) or dropped and
// counted. Safe for concurrent use.
type Publisher interface {
	Publish(subject string, payload any)
}

// Payload kinds, versioned: a reader checks Kind before trusting fields.
const (
	KindRaftLeader     = "raft.leader.v1"
	KindKV             = "kv.v1"
	KindCatalogService = "catalog.service.v1"
	KindCatalogNode    = "catalog.node.v1"
	KindHealth         = "health.v1"
)

// RaftLeader is published by raftd on consort.raft.leader whenever the
// leader it observes changes (including to "no leader").
type RaftLeader struct {
	Kind       string `json:"kind"`
	LeaderID   string `json:"leader_id"`   // empty: no known leader
	LeaderAddr string `json:"leader_addr"` // raft address
	Term       uint64 `json:"term"`
	Observer   string `json:"observer"` // the raftd's server ID that saw it
	Index      uint64 `json:"index"`    // raftd's last log index when seen
}

// KV operations in KV events.
const (
	KVOpSet        = "set"
	KVOpDelete     = "delete"
	KVOpDeleteTree = "delete-tree"
)

// KV is published by catalogd on consort.kv after a KV write applied.
type KV struct {
	Kind  string `json:"kind"`
	Key   string `json:"key"` // for delete-tree: the prefix
	Op    string `json:"op"`
	Index uint64 `json:"index"` // raft index of the write
	Flags uint64 `json:"flags,omitempty"`
}

// Catalog operations in catalog and health events: what happened to the
// node, service instance or check.
const (
	CatalogOpRegister   = "register"   // it did not exist before
	CatalogOpUpdate     = "update"     // it existed and changed
	CatalogOpDeregister = "deregister" // it no longer exists
)

// CatalogService is published by catalogd on
// <prefix>.catalog.service.<service name> after a command registered,
// changed or removed an instance of that service (one event per
// instance). Check changes are Health events, not these.
type CatalogService struct {
	Kind      string `json:"kind"`
	Op        string `json:"op"`
	Service   string `json:"service"`    // service name
	ServiceID string `json:"service_id"` // instance ID, unique on its node
	Node      string `json:"node"`
	Index     uint64 `json:"index"` // raft index of the command
}

// CatalogNode is published by catalogd on <prefix>.catalog.node.<node>
// after a command registered, changed (address, tagged addresses, meta)
// or removed a node.
type CatalogNode struct {
	Kind  string `json:"kind"`
	Op    string `json:"op"`
	Node  string `json:"node"`
	Index uint64 `json:"index"` // raft index of the command
}

// Health is published by catalogd after a command registered, changed
// (status, output or definition) or removed a health check.
//
// A service check is published once, on <prefix>.health.<its service
// name>. A node-level check (ServiceID "", such as serfHealth or
// _node_maintenance) affects the health of every service instance on its
// node, as Consul's /v1/health/service answers show, so it is published on
// <prefix>.health.~ (the empty service name) and also once on
// <prefix>.health.<name> for each distinct service name registered on the
// node after the command. A subscriber to one service's subject thus sees
// every check change that can change that service's health.
type Health struct {
	Kind        string `json:"kind"`
	Op          string `json:"op"`
	Node        string `json:"node"`
	CheckID     string `json:"check_id"`
	ServiceID   string `json:"service_id"`   // "" for a node-level check
	ServiceName string `json:"service_name"` // "" for a node-level check
	OldStatus   string `json:"old_status"`   // "" when the check is new
	NewStatus   string `json:"new_status"`   // "" when it was removed
	Output      string `json:"output"`
	Index       uint64 `json:"index"` // raft index of the command
}
