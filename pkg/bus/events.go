package bus

// Publisher is what daemons publish through. Publish never blocks: when
// the bus is down or slow the event is buffered (bounded) or dropped and
// counted. Safe for concurrent use.
type Publisher interface {
	Publish(subject string, payload any)
}

// Payload kinds, versioned: a reader checks Kind before trusting fields.
const (
	KindRaftLeader = "raft.leader.v1"
	KindKV         = "kv.v1"
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
