package bus

// Gossip payload kinds.
const (
	KindMember = "member.v1"
	KindEvent  = "event.v1"
)

// Member is published by gossipd on <prefix>.member.<event> (MemberJoin,
// MemberLeave, MemberFailed, MemberUpdate, MemberReap) for each member a
// serf member event concerns, in the LAN or WAN pool. It is a hint:
// whoever acts on membership re-reads it from gossipd's socket.
type Member struct {
	Kind       string            `json:"kind"`
	Event      string            `json:"event"` // the subject's last token
	Node       string            `json:"node"`  // WAN pool: "<node>.<dc>"
	Address    string            `json:"address"`
	Port       int               `json:"port"` // serf port
	Tags       map[string]string `json:"tags"`
	Status     string            `json:"status"`     // alive, leaving, left, failed (reap: the last status)
	Pool       string            `json:"pool"`       // "lan" or "wan"
	Datacenter string            `json:"datacenter"` // the member's dc tag
	Observer   string            `json:"observer"`   // the node whose gossipd saw it
}

// UserEvent is published by gossipd on <prefix>.event.<name> for each
// serf user event it receives, its own included.
type UserEvent struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Payload  []byte `json:"payload"` // base64 in JSON
	LTime    uint64 `json:"ltime"`   // serf's lamport time of the event
	Coalesce bool   `json:"coalesce"`
	Observer string `json:"observer"`
}
