package bus

// Session and lock payload kinds.
const (
	KindSessionInvalidated = "session.invalidated.v1"
	KindLock               = "lock.v1"
)

// Reasons a session was invalidated, in SessionInvalidated.Reason.
const (
	// SessionReasonDestroyed: PUT /v1/session/destroy/<id>.
	SessionReasonDestroyed = "destroyed"
	// SessionReasonTTL: the session was not renewed in time; the leader's
	// catalogd destroyed it.
	SessionReasonTTL = "ttl"
	// SessionReasonCheckCritical: a check the session is tied to turned
	// critical.
	SessionReasonCheckCritical = "check-critical"
	// SessionReasonCheckDeleted: a check the session is tied to was
	// deregistered.
	SessionReasonCheckDeleted = "check-deleted"
	// SessionReasonNodeDeleted: the session's node was deregistered.
	SessionReasonNodeDeleted = "node-deleted"
	// LockReasonKeyDeleted (Lock events only): a held key was deleted by a
	// KV delete; its session lives on.
	LockReasonKeyDeleted = "key-deleted"
)

// SessionInvalidated is published by catalogd on
// <prefix>.session.invalidated after a command invalidated a session: an
// explicit destroy, TTL expiry, or a tied check or the node going away.
// The keys the session held are announced as Lock events with Op
// LockOpLost, from the same command and index.
type SessionInvalidated struct {
	Kind    string `json:"kind"`
	Session string `json:"session"` // session ID
	Node    string `json:"node"`    // the session's node ("" if unknown)
	Reason  string `json:"reason"`  // one of the SessionReason* values, or a newer one
	Index   uint64 `json:"index"`   // raft index of the command
}

// Lock operations, the last token of Subjects.Lock.
const (
	// LockOpAcquired: a session took a key (PUT ?acquire, or a txn lock)
	// that it did not hold before; LockIndex was bumped. The holder
	// acquiring again (to update the value) is not announced.
	LockOpAcquired = "acquired"
	// LockOpReleased: the holder let go (PUT ?release, or a txn unlock).
	LockOpReleased = "released"
	// LockOpLost: the holder lost the key without releasing it: its
	// session was invalidated (the key released, or deleted under behavior
	// delete), or the key was deleted. Reason says which.
	LockOpLost = "lost"
)

// Lock is published by catalogd on <prefix>.lock.<op> when a key's lock
// changes hands. LockIndex is the key's LockIndex at the acquisition the
// event is about: the fencing token a holder passes along with its
// writes, so a resource can refuse a writer whose LockIndex is older than
// one it has seen. For released and lost it is the LockIndex the holder
// had, which the release does not change.
type Lock struct {
	Kind      string `json:"kind"`
	Op        string `json:"op"` // LockOpAcquired, LockOpReleased or LockOpLost
	Key       string `json:"key"`
	Session   string `json:"session"` // the session that acquired, released or lost the key
	LockIndex uint64 `json:"lock_index"`
	// Deleted: for lost, the key was deleted (session behavior delete, or
	// a KV delete) rather than released.
	Deleted bool `json:"deleted,omitempty"`
	// Reason, for lost: the session's invalidation reason (a
	// SessionReason* value) or LockReasonKeyDeleted.
	Reason string `json:"reason,omitempty"`
	Index  uint64 `json:"index"` // raft index of the command
}

// SessionInvalidated is "<prefix>.session.invalidated", published by
// catalogd.
func (s Subjects) SessionInvalidated() string { return s.p() + ".session.invalidated" }

// Lock is "<prefix>.lock.<op>", op one of LockOpAcquired, LockOpReleased,
// LockOpLost; subscribe to "<prefix>.lock.*" for all three. Payloads name
// the key, so one subscription serves every lock; filter on Key.
func (s Subjects) Lock(op string) string { return s.p() + ".lock." + EncodeToken(op) }
