package state

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Consul's session errors.
var (
	// ErrMissingSessionID: a create without an ID.
	ErrMissingSessionID = errors.New("Missing session ID")
	// ErrSessionNotFound is wrapped by the error a renew of an unknown
	// session answers ("Session id '<id>' not found", Consul's 404 text).
	ErrSessionNotFound = errors.New("session not found")
)

// sessionNotFoundError says which session a renew did not find, in
// Consul's words, and matches ErrSessionNotFound.
type sessionNotFoundError struct{ id string }

func (e *sessionNotFoundError) Error() string { return "Session id '" + e.id + "' not found" }

func (e *sessionNotFoundError) Is(target error) bool { return target == ErrSessionNotFound }

func itoa(i int) string { return strconv.Itoa(i) }

// applySession applies a SessionType command body.
func (s *Store) applySession(idx uint64, body []byte) *SessionResult {
	var req SessionRequest
	if err := decodeBody(body, &req); err != nil {
		return &SessionResult{Err: fmt.Errorf("apply index %d: %w: decode session request: %v", idx, ErrInvalidCommand, err)}
	}
	tx := s.cur.Load().db.Txn(true)
	defer tx.Abort()
	c := &catalogTxn{tx: tx, idx: idx}
	if err := c.setNow(req.Now); err != nil {
		return &SessionResult{Err: err}
	}
	res := &SessionResult{}
	var err error
	switch req.Op {
	case SessionCreate:
		sess := req.Session
		if err = c.createSession(&sess); err == nil {
			res.Index = sess.ModifyIndex
		}
	case SessionDestroy:
		reason := req.Reason
		if reason == "" {
			reason = ReasonDestroyed
		}
		err = c.destroySession(req.Session.ID, reason)
	case SessionRenew:
		res.Index, err = c.renewSession(req.Session.ID)
	default:
		err = fmt.Errorf("apply index %d: %w: invalid session operation %q", idx, ErrInvalidCommand, req.Op)
	}
	if err != nil {
		return &SessionResult{Err: err}
	}
	tx.Commit()
	res.Changes = c.changes
	return res
}

// createSession is Consul's sessionCreateTxn: the session needs an ID, a
// known behavior, a registered node and, for each check it names, a
// registered check on that node that is not critical.
func (c *catalogTxn) createSession(sess *structs.Session) error {
	if sess.ID == "" {
		return ErrMissingSessionID
	}
	if err := noNUL("session ID", sess.ID); err != nil {
		return err
	}
	switch sess.Behavior {
	case "":
		sess.Behavior = structs.SessionBehaviorRelease
	case structs.SessionBehaviorRelease, structs.SessionBehaviorDelete:
	default:
		return fmt.Errorf("Invalid session behavior: %s", sess.Behavior)
	}
	// Consul would overwrite (its IDs are unique in practice); refusing
	// keeps the check mappings of the first one consistent.
	existing, err := getSessionTxn(c.tx, sess.ID)
	if err != nil {
		return err
	}
	if existing != nil {
		return fmt.Errorf("session %q already exists", sess.ID)
	}
	sess.CreateIndex, sess.ModifyIndex = c.idx, c.idx
	n, err := getNodeTxn(c.tx, sess.Node)
	if err != nil {
		return fmt.Errorf("failed node lookup: %s", err)
	}
	if n == nil {
		return ErrMissingNode
	}
	for _, id := range sessionCheckIDs(sess) {
		hc, err := getCheckTxn(c.tx, sess.Node, id)
		if err != nil {
			return fmt.Errorf("failed check lookup: %s", err)
		}
		if hc == nil {
			return fmt.Errorf("Missing check '%s' registration", id)
		}
		if hc.Status == structs.HealthCritical {
			return fmt.Errorf("Check '%s' is in %s state", id, hc.Status)
		}
	}
	// Empty and missing lists mean the same; store one form so a
	// snapshot restores the same value.
	if len(sess.NodeChecks) == 0 {
		sess.NodeChecks = nil
	}
	if len(sess.ServiceChecks) == 0 {
		sess.ServiceChecks = nil
	}
	if err := c.tx.Insert(tableSessions, sess); err != nil {
		return fmt.Errorf("failed inserting session: %s", err)
	}
	if err := insertSessionChecksTxn(c.tx, sess); err != nil {
		return err
	}
	if err := c.tx.Insert(tableSessionRenew, &sessionRenew{ID: sess.ID, At: c.clock()}); err != nil {
		return fmt.Errorf("failed inserting session renew time: %s", err)
	}
	if err := c.bump(tableSessions); err != nil {
		return err
	}
	c.changes = append(c.changes, Change{Kind: ChangeSession, Op: OpCreate, Node: sess.Node, Session: sess.ID})
	return nil
}

// sessionCheckIDs lists the checks a session is tied to: node checks,
// then service checks (Consul's Session.CheckIDs).
func sessionCheckIDs(sess *structs.Session) []string {
	ids := make([]string, 0, len(sess.NodeChecks)+len(sess.ServiceChecks))
	ids = append(ids, sess.NodeChecks...)
	for _, sc := range sess.ServiceChecks {
		ids = append(ids, sc.ID)
	}
	return ids
}

// insertSessionChecksTxn writes the session's check mappings.
func insertSessionChecksTxn(tx *memdb.Txn, sess *structs.Session) error {
	for _, id := range sessionCheckIDs(sess) {
		m := &sessionCheck{Node: sess.Node, CheckID: id, Session: sess.ID}
		if err := tx.Insert(tableSessionChecks, m); err != nil {
			return fmt.Errorf("failed inserting session check mapping: %s", err)
		}
	}
	return nil
}

// renewSession records c.now as the session's renew time and returns its
// ModifyIndex. Nothing a reader watches changes: as in Consul, a renew is
// not a write of the session.
func (c *catalogTxn) renewSession(id string) (uint64, error) {
	sess, err := getSessionTxn(c.tx, id)
	if err != nil {
		return 0, err
	}
	if sess == nil {
		return 0, &sessionNotFoundError{id: id}
	}
	if err := c.tx.Insert(tableSessionRenew, &sessionRenew{ID: id, At: c.clock()}); err != nil {
		return 0, fmt.Errorf("failed updating session renew time: %s", err)
	}
	return sess.ModifyIndex, nil
}

// destroySession is Consul's deleteSessionTxn: it removes the session and
// releases (behavior release: Session cleared, LockIndex kept, ModifyIndex
// raised) or deletes (behavior delete) every key it holds, in key order,
// setting on each a lock-delay until c.now plus the session's LockDelay
// (at most MaxLockDelay). An unknown session is not an error.
func (c *catalogTxn) destroySession(id, reason string) error {
	sess, err := getSessionTxn(c.tx, id)
	if err != nil || sess == nil {
		return err
	}
	if err := c.tx.Delete(tableSessions, sess); err != nil {
		return fmt.Errorf("failed deleting session: %s", err)
	}
	if err := c.bump(tableSessions); err != nil {
		return err
	}
	if raw, err := c.tx.First(tableSessionRenew, indexID, id); err != nil {
		return fmt.Errorf("failed session renew lookup: %s", err)
	} else if raw != nil {
		if err := c.tx.Delete(tableSessionRenew, raw); err != nil {
			return fmt.Errorf("failed deleting session renew time: %s", err)
		}
	}
	c.changes = append(c.changes, Change{Kind: ChangeSession, Op: OpInvalidate, Node: sess.Node, Session: id, Reason: reason})

	delay := min(sess.LockDelay, MaxLockDelay)
	held, err := collect[*kvLock](c.tx, tableKVLocks, indexSession, id)
	if err != nil {
		return fmt.Errorf("failed kvs lookup: %s", err)
	}
	for _, l := range held {
		e, err := getKVTxn(c.tx, l.Key)
		if err != nil {
			return err
		}
		if err := dropKVLockTxn(c.tx, l.Key); err != nil {
			return err
		}
		if e == nil {
			continue // cannot happen: deletes drop the row
		}
		op := OpReleased
		switch sess.Behavior {
		case structs.SessionBehaviorDelete:
			op = OpDeleted
			if err := kvsDeleteTxn(c.tx, c.idx, e.Key); err != nil {
				return fmt.Errorf("failed kvs delete: %s", err)
			}
		default:
			// Copy: the stored entry belongs to readers.
			released := *e
			released.Session = ""
			if err := kvsSetTxn(c.tx, c.idx, &released, true); err != nil {
				return fmt.Errorf("failed kvs update: %s", err)
			}
		}
		if delay > 0 {
			if err := setLockDelayTxn(c.tx, e.Key, c.clock()+delay); err != nil {
				return err
			}
		}
		c.changes = append(c.changes, Change{Kind: ChangeLock, Op: op, Node: sess.Node, Key: e.Key,
			Session: id, LockIndex: e.LockIndex, Reason: reason})
	}

	mappings, err := collect[*sessionCheck](c.tx, tableSessionChecks, indexSession, id)
	if err != nil {
		return fmt.Errorf("failed session checks lookup: %s", err)
	}
	for _, m := range mappings {
		if err := c.tx.Delete(tableSessionChecks, m); err != nil {
			return fmt.Errorf("failed deleting session check: %s", err)
		}
	}
	return nil
}

// invalidateCheckSessions destroys the sessions tied to a check, in
// session ID order (Consul's checkSessionsTxn then deleteSessionTxn).
func (c *catalogTxn) invalidateCheckSessions(node, checkID, reason string) error {
	mappings, err := collect[*sessionCheck](c.tx, tableSessionChecks, indexNodeCheck, node, checkID)
	if err != nil {
		return fmt.Errorf("failed session checks lookup: %s", err)
	}
	for _, m := range mappings {
		if err := c.destroySession(m.Session, reason); err != nil {
			return fmt.Errorf("failed deleting session: %s", err)
		}
	}
	return nil
}

// invalidateNodeSessions destroys every session of node, in session ID
// order.
func (c *catalogTxn) invalidateNodeSessions(node string) error {
	sessions, err := collect[*structs.Session](c.tx, tableSessions, indexNode, node)
	if err != nil {
		return fmt.Errorf("failed session lookup: %s", err)
	}
	for _, sess := range sessions {
		if err := c.destroySession(sess.ID, ReasonNodeDeleted); err != nil {
			return fmt.Errorf("failed to delete session '%s': %v", sess.ID, err)
		}
	}
	return nil
}

func getSessionTxn(tx *memdb.Txn, id string) (*structs.Session, error) {
	if id == "" {
		return nil, nil
	}
	raw, err := tx.First(tableSessions, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("failed session lookup: %s", err)
	}
	sess, _ := raw.(*structs.Session)
	return sess, nil
}

// setNow records the writer's time for this write. A stamped time (> 0)
// also raises the writer clock row; an unstamped one falls back to that
// clock, the highest Now any earlier command carried, read only when a
// time is needed (clock).
func (c *catalogTxn) setNow(reqNow int64) error {
	if reqNow <= 0 {
		return nil
	}
	c.now, c.nowSet = reqNow, true
	if uint64(reqNow) > maxIndexTxn(c.tx, writerClockKey) {
		return setIndexTxn(c.tx, writerClockKey, uint64(reqNow))
	}
	return nil
}

// clock returns the time this write runs at (see setNow).
func (c *catalogTxn) clock() int64 {
	if !c.nowSet {
		c.now, c.nowSet = int64(maxIndexTxn(c.tx, writerClockKey)), true
	}
	return c.now
}

// SessionGet returns the session with id, or nil, and the sessions table
// index (at least 1). ws (may be nil) fires when the session changes or
// ends; for a missing session, when a session near it in ID order is
// written. The session is shared: do not modify it.
func (s *Store) SessionGet(ws memdb.WatchSet, id string) (uint64, *structs.Session, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()
	idx := atLeastOne(maxIndexTxn(tx, tableSessions))
	if id == "" {
		return idx, nil, nil
	}
	watch, raw, err := tx.FirstWatch(tableSessions, indexID, id)
	if err != nil {
		return 0, nil, fmt.Errorf("failed session lookup: %s", err)
	}
	ws.Add(watch)
	sess, _ := raw.(*structs.Session)
	return idx, sess, nil
}

// SessionList returns every session in ID order and the sessions table
// index (at least 1). ws fires on any session change.
func (s *Store) SessionList(ws memdb.WatchSet) (uint64, []*structs.Session, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()
	it, err := tx.Get(tableSessions, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("failed session lookup: %s", err)
	}
	ws.Add(it.WatchCh())
	var out []*structs.Session
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*structs.Session))
	}
	return atLeastOne(maxIndexTxn(tx, tableSessions)), out, nil
}

// NodeSessions returns the sessions of node (any case) in ID order and the
// sessions table index (at least 1). ws fires when a session of the node
// is created or ends.
func (s *Store) NodeSessions(ws memdb.WatchSet, node string) (uint64, []*structs.Session, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()
	it, err := tx.Get(tableSessions, indexNode, node)
	if err != nil {
		return 0, nil, fmt.Errorf("failed session lookup: %s", err)
	}
	ws.Add(it.WatchCh())
	var out []*structs.Session
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*structs.Session))
	}
	return atLeastOne(maxIndexTxn(tx, tableSessions)), out, nil
}

// SessionRenewedAt returns the Now of the session's latest create or
// renew (unix nanoseconds), for the leader's TTL timers; false when the
// session does not exist. It does not block.
func (s *Store) SessionRenewedAt(id string) (int64, bool) {
	tx := s.readTxn(nil)
	defer tx.Abort()
	if id == "" {
		return 0, false
	}
	raw, err := tx.First(tableSessionRenew, indexID, id)
	if err != nil || raw == nil {
		return 0, false
	}
	return raw.(*sessionRenew).At, true
}
