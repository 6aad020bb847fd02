package catalogd

import (
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/bus"
)

// sessionOpRenew is the Op of the session change a renew reports, should
// the state report one (it names the session; without it a renew re-arms
// by comparing renew stamps).
const sessionOpRenew = "renew"

// resultSource says which kind of command a change list came from; it
// decides which KV events lock changes imply.
type resultSource int

const (
	fromKV      resultSource = iota // a KV command: lock, unlock, or a delete of a held key
	fromSession                     // a session command, or a catalog command invalidating sessions
	fromTxn                         // a transaction
)

// sessionApplied runs after every applied command, on the feed goroutine
// (from publishCatalog), with the command's result. It keeps the leader's
// session TTL timers in step with the log (arm on create and renew,
// disarm on invalidation) and publishes the session and lock events. It
// never blocks. Entries replayed at startup move the timers but publish
// nothing.
func (d *Daemon) sessionApplied(index uint64, res any) {
	var changes []state.Change
	var src resultSource
	switch v := res.(type) {
	case bool:
		// Lock changes of KV commands matter to events only, and KV
		// writes are the hot path: ask only when they would be published.
		if !v || d.cfg.Bus == nil || index <= d.replayUntil.Load() {
			return
		}
		changes, src = d.store.LockChanges(index), fromKV
	case *state.SessionResult:
		if v == nil || v.Err != nil {
			return
		}
		changes, src = v.Changes, fromSession
		if len(changes) == 0 && v.Index > 0 {
			// A renew whose result does not name its session.
			d.ttl.renewed(time.Now(), d.store.SessionRenewedAt)
		}
	case *state.CatalogResult:
		if v == nil || v.Err != nil {
			return
		}
		changes, src = v.Changes, fromSession
	case *state.TxnResult:
		if v == nil || len(v.Errors) > 0 {
			return
		}
		changes, src = v.Changes, fromTxn
	default:
		return
	}
	if len(changes) == 0 {
		return
	}
	d.ttlChanges(changes)
	d.publishLocks(index, changes, src)
}

// ttlChanges arms the TTL timer of each session created or renewed and
// disarms each session invalidated.
func (d *Daemon) ttlChanges(changes []state.Change) {
	for _, c := range changes {
		if c.Kind != state.ChangeSession {
			continue
		}
		switch c.Op {
		case state.OpCreate, sessionOpRenew:
			if !d.ttl.isLeading() {
				continue
			}
			_, s, err := d.store.SessionGet(nil, c.Session)
			if err != nil || s == nil {
				continue
			}
			d.ttl.arm(s.ID, sessionTTL(s), time.Now(), d.renewStamp(s.ID))
		case state.OpInvalidate:
			d.ttl.disarm(c.Session)
		}
	}
}

// publishLocks announces the session invalidations and lock changes of a
// command at index: <prefix>.session.invalidated, <prefix>.lock.<op>, and
// the <prefix>.kv events of keys released or deleted by an invalidation,
// which no KV command announces. The KV events of KV commands (acquire
// and release included) and of transactions are their publishers'.
func (d *Daemon) publishLocks(index uint64, changes []state.Change, src resultSource) {
	if d.cfg.Bus == nil || index <= d.replayUntil.Load() {
		return
	}
	subj := bus.Subjects{Prefix: d.cfg.BusPrefix}
	for _, c := range changes {
		switch c.Kind {
		case state.ChangeSession:
			if c.Op != state.OpInvalidate {
				continue
			}
			d.cfg.Bus.Publish(subj.SessionInvalidated(), bus.SessionInvalidated{
				Kind: bus.KindSessionInvalidated, Session: c.Session, Node: c.Node, Reason: c.Reason, Index: index,
			})
		case state.ChangeLock:
			ev := bus.Lock{Kind: bus.KindLock, Key: c.Key, Session: c.Session, LockIndex: c.LockIndex, Index: index}
			kvOp := bus.KVOpSet
			switch {
			case c.Op == state.OpAcquired:
				ev.Op = bus.LockOpAcquired
			case c.Op == state.OpReleased && c.Reason == "":
				ev.Op = bus.LockOpReleased
			default:
				// Released or deleted without its holder asking.
				ev.Op, ev.Reason = bus.LockOpLost, c.Reason
				if c.Op == state.OpDeleted {
					ev.Deleted, kvOp = true, bus.KVOpDelete
				}
			}
			d.cfg.Bus.Publish(subj.Lock(ev.Op), ev)
			if src != fromSession {
				continue
			}
			d.cfg.Bus.Publish(subj.KV(), bus.KV{Kind: bus.KindKV, Key: c.Key, Op: kvOp, Index: index})
		}
	}
}
