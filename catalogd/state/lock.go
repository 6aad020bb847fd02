package state

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// ReasonKeyDeleted is the Reason of a lock change for a held key removed
// by a KV delete (Consul lets a plain delete remove a locked key).
const ReasonKeyDeleted = "key-deleted"

// errMissingSession is Consul's answer to a lock or unlock without a
// session.
var errMissingSession = errors.New("missing session")

// kvLock is Consul's kvsLockTxn: e.Session must name a live session; a key
// held by another session is refused (false); the holder may re-acquire,
// which updates value and flags but not LockIndex; a free or new key gets
// Session and LockIndex + 1. The caller checks lock-delay first. Errors
// are Consul's words.
func (c *catalogTxn) kvLock(e *structs.KVEntry) (bool, error) {
	if e.Session == "" {
		return false, errMissingSession
	}
	sess, err := getSessionTxn(c.tx, e.Session)
	if err != nil {
		return false, err
	}
	if sess == nil {
		return false, fmt.Errorf("invalid session %q", e.Session)
	}
	existing, err := getKVTxn(c.tx, e.Key)
	if err != nil {
		return false, err
	}
	fresh := true
	switch {
	case existing == nil:
		e.LockIndex = 1
	case existing.Session == e.Session:
		e.LockIndex, fresh = existing.LockIndex, false
	case existing.Session != "":
		return false, nil
	default:
		e.LockIndex = existing.LockIndex + 1
	}
	if err := kvsSetTxn(c.tx, c.idx, e, true); err != nil {
		return false, err
	}
	if fresh {
		if err := c.tx.Insert(tableKVLocks, &kvLock{Key: e.Key, Session: e.Session}); err != nil {
			return false, fmt.Errorf("failed inserting lock: %s", err)
		}
		c.changes = append(c.changes, Change{Kind: ChangeLock, Op: OpAcquired, Node: sess.Node, Key: e.Key,
			Session: e.Session, LockIndex: e.LockIndex})
	}
	return true, nil
}

// kvUnlock is Consul's kvsUnlockTxn: only the holder may release; the key
// takes e's value and flags, loses its Session, keeps its LockIndex and
// gets ModifyIndex = idx. A missing key or another holder answers false.
func (c *catalogTxn) kvUnlock(e *structs.KVEntry) (bool, error) {
	if e.Session == "" {
		return false, errMissingSession
	}
	existing, err := getKVTxn(c.tx, e.Key)
	if err != nil {
		return false, err
	}
	if existing == nil || existing.Session != e.Session {
		return false, nil
	}
	session := e.Session
	e.Session = ""
	e.LockIndex = existing.LockIndex
	if err := kvsSetTxn(c.tx, c.idx, e, true); err != nil {
		return false, err
	}
	if err := dropKVLockTxn(c.tx, e.Key); err != nil {
		return false, err
	}
	c.changes = append(c.changes, Change{Kind: ChangeLock, Op: OpReleased, Key: e.Key, Session: session,
		LockIndex: e.LockIndex, Node: sessionNodeTxn(c.tx, session)})
	return true, nil
}

// sessionNodeTxn returns the node of a session, "" if it is gone.
func sessionNodeTxn(tx *memdb.Txn, id string) string {
	if sess, _ := getSessionTxn(tx, id); sess != nil {
		return sess.Node
	}
	return ""
}

// kvDelete deletes key, ending a lock on it.
func (c *catalogTxn) kvDelete(key string) error {
	existing, err := getKVTxn(c.tx, key)
	if err != nil || existing == nil {
		return err
	}
	if err := c.heldDeleted(existing); err != nil {
		return err
	}
	return kvsDeleteTxn(c.tx, c.idx, key)
}

// kvDeleteCAS is kvsDeleteCASTxn ending a lock on the key.
func (c *catalogTxn) kvDeleteCAS(cidx uint64, key string) (bool, error) {
	existing, err := getKVTxn(c.tx, key)
	if err != nil {
		return false, err
	}
	if existing == nil {
		return true, nil
	}
	if existing.ModifyIndex != cidx {
		return false, nil
	}
	if err := c.heldDeleted(existing); err != nil {
		return false, err
	}
	return true, kvsDeleteTxn(c.tx, c.idx, key)
}

// kvDeleteTree is kvsDeleteTreeTxn ending the locks on the keys under
// prefix, found in the locks table rather than by reading the tree.
func (c *catalogTxn) kvDeleteTree(prefix string) error {
	held, err := collect[*kvLock](c.tx, tableKVLocks, indexIDPrefix, prefix)
	if err != nil {
		return fmt.Errorf("failed lock lookup: %s", err)
	}
	for _, l := range held {
		e, err := getKVTxn(c.tx, l.Key)
		if err != nil {
			return err
		}
		if e != nil {
			if err := c.heldDeleted(e); err != nil {
				return err
			}
		}
	}
	return kvsDeleteTreeTxn(c.tx, c.idx, prefix)
}

// heldDeleted ends the lock on an entry about to be deleted by a KV
// delete, if it is held, and records the change.
func (c *catalogTxn) heldDeleted(e *structs.KVEntry) error {
	if e.Session == "" {
		return nil
	}
	if err := dropKVLockTxn(c.tx, e.Key); err != nil {
		return err
	}
	c.changes = append(c.changes, Change{Kind: ChangeLock, Op: OpDeleted, Key: e.Key, Session: e.Session,
		LockIndex: e.LockIndex, Node: sessionNodeTxn(c.tx, e.Session), Reason: ReasonKeyDeleted})
	return nil
}

// dropKVLockTxn removes key's row from the locks table, if any.
func dropKVLockTxn(tx *memdb.Txn, key string) error {
	raw, err := tx.First(tableKVLocks, indexID, key)
	if err != nil {
		return fmt.Errorf("failed lock lookup: %s", err)
	}
	if raw == nil {
		return nil
	}
	if err := tx.Delete(tableKVLocks, raw); err != nil {
		return fmt.Errorf("failed deleting lock: %s", err)
	}
	return nil
}

// lockDelayed reports whether a lock-delay on key is in force at c.now. It
// first drops every lock-delay that has run out.
func (c *catalogTxn) lockDelayed(key string) (bool, error) {
	now := c.clock()
	if err := reapLockDelaysTxn(c.tx, now); err != nil {
		return false, err
	}
	raw, err := c.tx.First(tableLockDelays, indexID, key)
	if err != nil {
		return false, fmt.Errorf("failed lock-delay lookup: %s", err)
	}
	return raw != nil && raw.(*lockDelay).Until > now, nil
}

// setLockDelayTxn refuses acquires of key until until, replacing an
// earlier lock-delay (Consul's lockDelay.SetExpiration).
func setLockDelayTxn(tx *memdb.Txn, key string, until int64) error {
	if err := tx.Insert(tableLockDelays, &lockDelay{Key: key, Until: until}); err != nil {
		return fmt.Errorf("failed inserting lock-delay: %s", err)
	}
	return nil
}

// reapLockDelaysTxn drops the lock-delays that end at or before now, so
// the table holds only delays in force.
func reapLockDelaysTxn(tx *memdb.Txn, now int64) error {
	it, err := tx.Get(tableLockDelays, indexUntil)
	if err != nil {
		return fmt.Errorf("failed lock-delay lookup: %s", err)
	}
	var done []*lockDelay
	for raw := it.Next(); raw != nil; raw = it.Next() {
		d := raw.(*lockDelay)
		if d.Until > now {
			break
		}
		done = append(done, d)
	}
	for _, d := range done {
		if err := tx.Delete(tableLockDelays, d); err != nil {
			return fmt.Errorf("failed deleting lock-delay: %s", err)
		}
	}
	return nil
}

func getKVTxn(tx *memdb.Txn, key string) (*structs.KVEntry, error) {
	raw, err := tx.First(tableKVs, indexID, key)
	if err != nil {
		return nil, fmt.Errorf("failed kvs lookup: %s", err)
	}
	e, _ := raw.(*structs.KVEntry)
	return e, nil
}

// KVLockDelay returns the unix nanoseconds until which an acquire of key is
// refused, 0 when no lock-delay is in force at now. It does not block.
func (s *Store) KVLockDelay(key string, now int64) int64 {
	tx := s.readTxn(nil)
	defer tx.Abort()
	raw, err := tx.First(tableLockDelays, indexID, key)
	if err != nil || raw == nil {
		return 0
	}
	if until := raw.(*lockDelay).Until; until > now {
		return until
	}
	return 0
}

// LockChanges returns the lock changes (Kind ChangeLock) of the KV command
// applied at index: a lock acquired, released, or a held key deleted. Nil
// when there were none, or when index is not the latest applied command.
// Apply's result for KV commands stays a plain bool; the feed calls this
// right after Apply to publish lock events with their LockIndex. Safe for
// concurrent use.
func (s *Store) LockChanges(index uint64) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockIndex != index {
		return nil
	}
	return s.lockChanges
}
