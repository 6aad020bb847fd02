package state

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// Store is catalogd's replicated state. The zero value is not usable; call
// New. Safe for concurrent use: Apply and Restore are serialized, reads
// never wait for them.
type Store struct {
	// mu serializes Apply and Restore with each other and with the moment
	// Snapshot and Dump capture (memdb snapshot, last index), so that the
	// pair always matches. Reads do not take it.
	mu sync.Mutex
	// cur is the live generation; Restore swaps it under mu.
	cur atomic.Pointer[generation]
	// last is the raft index of the latest Apply or Restore; written under
	// mu, read without.
	last atomic.Uint64
	// names wakes blocking reads of missing nodes and services.
	names *nameWatches
	// lockIndex and lockChanges are the index and lock changes of the
	// latest KV command, for LockChanges; guarded by mu.
	lockIndex   uint64
	lockChanges []Change
}

// generation is one life of the state between two Restores: the database
// and the channel closed when it is replaced.
type generation struct {
	db      *memdb.MemDB
	abandon chan struct{}
}

func newGeneration() *generation {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is a constant of this package: a failure is a bug.
		panic(fmt.Sprintf("state: bad memdb schema: %v", err))
	}
	return &generation{db: db, abandon: make(chan struct{})}
}

// New returns an empty store at index 0.
func New() *Store {
	s := &Store{names: newNameWatches()}
	s.cur.Store(newGeneration())
	return s
}

// LastIndex returns the raft index of the latest applied command or
// restored snapshot, 0 for a new store. It does not block.
func (s *Store) LastIndex() uint64 { return s.last.Load() }

// AbandonCh returns a channel closed when Restore replaces the state, so
// blocking queries can return and re-read (Consul's AbandonCh). Reads add
// it to their watch set themselves.
func (s *Store) AbandonCh() <-chan struct{} { return s.cur.Load().abandon }

// Apply applies one committed command at raft index and returns its
// result: for KV commands (lock and unlock included) a bool (Consul's
// answer to the PUT or DELETE) or an error, with LockChanges telling the
// locks they moved; for catalog commands a *CatalogResult; for session
// commands a *SessionResult; for transactions a *TxnResult. It never panics on bad data: a command it cannot apply answers
// an error wrapping ErrInvalidCommand, changes nothing and still advances
// LastIndex to index, on every replica alike. An index not above LastIndex
// answers an error wrapping ErrStaleIndex and is not applied. Indexes may
// skip (raft entries that are not commands). Apply runs one memdb write
// transaction; concurrent calls are serialized.
func (s *Store) Apply(index uint64, data []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last := s.last.Load(); index <= last {
		return fmt.Errorf("apply index %d: %w (last %d)", index, ErrStaleIndex, last)
	}
	s.lockIndex, s.lockChanges = 0, nil
	res := s.applyLocked(index, data)
	s.last.Store(index)
	return res
}

// applyLocked decodes and applies one command; s.mu is held.
func (s *Store) applyLocked(index uint64, data []byte) any {
	if len(data) == 0 {
		return fmt.Errorf("apply index %d: %w: empty command", index, ErrInvalidCommand)
	}
	t := MessageType(data[0])
	switch t {
	case KVSType:
		var req KVSRequest
		if err := decodeBody(data[1:], &req); err != nil {
			return fmt.Errorf("apply index %d: %w: decode kvs request: %v", index, ErrInvalidCommand, err)
		}
		return s.applyKVS(index, &req)
	case RegisterType:
		return s.applyRegister(index, data[1:])
	case DeregisterType:
		return s.applyDeregister(index, data[1:])
	case SessionType:
		return s.applySession(index, data[1:])
	case TxnType:
		return s.applyTxn(index, data[1:])
	default:
		if t&IgnoreUnknownTypeFlag != 0 {
			return nil
		}
		return fmt.Errorf("apply index %d: %w: unknown message type %d", index, ErrInvalidCommand, t)
	}
}

// view captures, under mu, a read-only snapshot of the live database and
// the index it reflects.
func (s *Store) view() (*memdb.MemDB, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Load().db.Snapshot(), s.last.Load()
}

// readTxn opens a read transaction on the live generation and adds its
// abandon channel to ws (which may be nil).
func (s *Store) readTxn(ws memdb.WatchSet) *memdb.Txn {
	g := s.cur.Load()
	ws.Add(g.abandon)
	return g.db.Txn(false)
}

// atLeastOne clamps a read index: 0 would make a blocking query return at
// once, so Consul's endpoints answer 1 instead (raft never commits a
// command at index 1 that a reader could have missed).
func atLeastOne(idx uint64) uint64 {
	if idx == 0 {
		return 1
	}
	return idx
}
