package structs

// Session behaviors: what happens to the keys a session holds when it is
// invalidated (Consul's api.SessionBehaviorRelease and ...Delete).
const (
	SessionBehaviorRelease = "release"
	SessionBehaviorDelete  = "delete"
)

// Session is a Consul session: a handle tied to a node and some of its
// checks, under which KV locks are held.
type Session struct {
	ID   string `codec:"id"`
	Name string `codec:"name"`
	Node string `codec:"node"`
	// NodeChecks are node-level check IDs the session is tied to. The
	// default ["serfHealth"] is applied by the HTTP layer, not the state.
	NodeChecks []string `codec:"node_checks"`
	// ServiceChecks are service check IDs on Node the session is tied to.
	ServiceChecks []ServiceCheck `codec:"service_checks"`
	// LockDelay is in nanoseconds.
	LockDelay int64 `codec:"lock_delay"`
	// Behavior is SessionBehaviorRelease or SessionBehaviorDelete.
	Behavior string `codec:"behavior"`
	// TTL is kept as Consul keeps it, a duration string such as "15s";
	// empty for no TTL.
	TTL         string `codec:"ttl"`
	CreateIndex uint64 `codec:"create_index"`
	ModifyIndex uint64 `codec:"modify_index"`
}

// ServiceCheck names a service check a session is tied to.
type ServiceCheck struct {
	ID        string `codec:"id"`
	Namespace string `codec:"namespace"`
}
