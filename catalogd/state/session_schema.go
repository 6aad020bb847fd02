package state

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Session tables.
const (
	tableSessions      = "sessions"
	tableSessionChecks = "session_checks"
	tableSessionRenew  = "session_renew"
	tableLockDelays    = "lock_delays"
	tableKVLocks       = "kv_locks"
)

// Session index names.
const (
	indexSession   = "session"    // kv_locks and session_checks by session ID
	indexNode      = "node"       // sessions by node
	indexNodeCheck = "node_check" // session_checks by node and check ID
	indexUntil     = "until"      // lock_delays by expiry
)

// writerClockKey names the index-table row holding the highest Now any
// command carried (unix nanoseconds). A command that needs a time but was
// not stamped uses it, so lock-delays never start at the epoch.
const writerClockKey = "writer_clock"

// MaxLockDelay caps a session's lock-delay, as Consul's
// structs.MaxLockDelay does.
const MaxLockDelay int64 = 60e9

// sessionCheck ties a session to a check of its node; one row per check,
// rebuilt from the sessions on Restore (Consul's sessionCheck).
type sessionCheck struct {
	Node    string
	CheckID string
	Session string
}

// sessionRenew records when a session was last created or renewed (the
// writer's Now), for the leader's TTL timers. Kept apart from the session
// so a renew wakes no reader of the session.
type sessionRenew struct {
	ID string `codec:"id"`
	At int64  `codec:"at"`
}

// lockDelay refuses acquires of Key until Until (unix nanoseconds). Consul
// keeps these in memory on each server, measured on its own clock; here
// they follow from the commands (destroy time from the writer's Now), so
// they are part of the state, its snapshots and its dumps.
type lockDelay struct {
	Key   string `codec:"key"`
	Until int64  `codec:"until"`
}

// kvLock records that Session holds Key: one row per key whose Session is
// set, so a session's keys are found without a second index on the kvs
// table (every index there costs each plain KV write). Rebuilt from the KV
// entries on Restore.
type kvLock struct {
	Key     string
	Session string
}

// sessionTables returns the schemas of the session tables.
func sessionTables() []*memdb.TableSchema {
	return []*memdb.TableSchema{
		{
			Name: tableSessions,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: stringIndexer{sessionID}},
				indexNode: {Name: indexNode, Indexer: keyIndexer{obj: sessionNodeKey, args: oneArgTerminated}},
			},
		},
		{
			Name: tableSessionChecks,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:        {Name: indexID, Unique: true, Indexer: keyIndexer{obj: sessionCheckKey, args: sessionCheckArgs}},
				indexNodeCheck: {Name: indexNodeCheck, Indexer: keyIndexer{obj: sessionCheckNodeCheckKey, args: pairArgsTerminated}},
				indexSession:   {Name: indexSession, Indexer: keyIndexer{obj: sessionCheckSessionKey, args: exactArgTerminated}},
			},
		},
		{
			Name: tableSessionRenew,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: stringIndexer{sessionRenewID}},
			},
		},
		{
			Name: tableKVLocks,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:      {Name: indexID, Unique: true, Indexer: stringIndexer{kvLockKey}},
				indexSession: {Name: indexSession, Indexer: keyIndexer{obj: kvLockSessionKey, args: exactArgTerminated}},
			},
		},
		{
			Name: tableLockDelays,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:    {Name: indexID, Unique: true, Indexer: stringIndexer{lockDelayKey}},
				indexUntil: {Name: indexUntil, Indexer: untilIndexer{}},
			},
		},
	}
}

func sessionID(obj any) (string, bool) {
	s, ok := obj.(*structs.Session)
	if !ok || s == nil {
		return "", false
	}
	return s.ID, true
}

func sessionRenewID(obj any) (string, bool) {
	r, ok := obj.(*sessionRenew)
	if !ok || r == nil {
		return "", false
	}
	return r.ID, true
}

func lockDelayKey(obj any) (string, bool) {
	d, ok := obj.(*lockDelay)
	if !ok || d == nil {
		return "", false
	}
	return d.Key, true
}

func sessionNodeKey(obj any) ([]byte, bool, error) {
	s, ok := obj.(*structs.Session)
	if !ok || s == nil {
		return nil, false, fmt.Errorf("unexpected object type %T", obj)
	}
	if s.Node == "" {
		return nil, false, nil
	}
	return appendLower(nil, s.Node, true), true, nil
}

func asSessionCheck(obj any) (*sessionCheck, error) {
	c, ok := obj.(*sessionCheck)
	if !ok || c == nil {
		return nil, fmt.Errorf("unexpected object type %T", obj)
	}
	return c, nil
}

func sessionCheckKey(obj any) ([]byte, bool, error) {
	c, err := asSessionCheck(obj)
	if err != nil || c.Node == "" || c.CheckID == "" || c.Session == "" {
		return nil, false, err
	}
	b := appendLower(appendLower(nil, c.Node, true), c.CheckID, true)
	return append(b, c.Session...), true, nil
}

// sessionCheckArgs: node, check ID (folded, terminated), session ID.
func sessionCheckArgs(args []any) ([]byte, error) {
	a, err := stringArgs(args, 3)
	if err != nil {
		return nil, err
	}
	b := appendLower(appendLower(nil, a[0], true), a[1], true)
	return append(b, a[2]...), nil
}

func sessionCheckNodeCheckKey(obj any) ([]byte, bool, error) {
	c, err := asSessionCheck(obj)
	if err != nil {
		return nil, false, err
	}
	return appendLower(appendLower(nil, c.Node, true), c.CheckID, true), true, nil
}

func sessionCheckSessionKey(obj any) ([]byte, bool, error) {
	c, err := asSessionCheck(obj)
	if err != nil {
		return nil, false, err
	}
	return append([]byte(c.Session), 0), true, nil
}

func kvLockKey(obj any) (string, bool) {
	l, ok := obj.(*kvLock)
	if !ok || l == nil {
		return "", false
	}
	return l.Key, true
}

func kvLockSessionKey(obj any) ([]byte, bool, error) {
	l, ok := obj.(*kvLock)
	if !ok || l == nil {
		return nil, false, fmt.Errorf("unexpected object type %T", obj)
	}
	return append([]byte(l.Session), 0), true, nil
}

// untilIndexer indexes lock-delays by expiry: the int64 with its sign bit
// flipped, big endian, so byte order is numeric order. Lookups take an
// int64.
type untilIndexer struct{}

// FromObject implements memdb.SingleIndexer.
func (untilIndexer) FromObject(obj any) (bool, []byte, error) {
	d, ok := obj.(*lockDelay)
	if !ok || d == nil {
		return false, nil, fmt.Errorf("unexpected object type %T", obj)
	}
	return true, untilKey(d.Until), nil
}

// FromArgs implements memdb.Indexer.
func (untilIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("need one argument, got %d", len(args))
	}
	v, ok := args[0].(int64)
	if !ok {
		return nil, fmt.Errorf("argument must be an int64, got %T", args[0])
	}
	return untilKey(v), nil
}

func untilKey(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v)^(1<<63))
	return b[:]
}
