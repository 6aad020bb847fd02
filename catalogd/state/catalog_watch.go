package state

import (
	"sync"

	"github.com/hashicorp/go-memdb"
)

// maxNameWatches bounds the names nameWatches tracks at once. Past it, all
// pending channels are closed and the table starts over: the readers wake
// once, re-read, and watch again.
const maxNameWatches = 4096

// nameWatches gives a blocking read of a missing node or service a channel
// that closes when that name is written, and only then. memdb cannot do
// this: the watch channel for an absent key belongs to the nearest radix
// node above it, which every write of a neighbouring name closes, so a
// query on a missing service would wake for unrelated registrations.
//
// One channel per name, shared by every reader of it; entries leave when
// fired. Keys are "service:" or "node:" and the folded name.
type nameWatches struct {
	mu sync.Mutex // guards chans
	// chans holds the open channel of each watched name.
	chans map[string]chan struct{}
}

func newNameWatches() *nameWatches {
	return &nameWatches{chans: make(map[string]chan struct{})}
}

func serviceWatchKey(name string) string { return "service:" + lower(name) }
func nodeWatchKey(name string) string    { return "node:" + lower(name) }

// watch returns the channel for key, making it if needed.
func (w *nameWatches) watch(key string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.chans[key]; ok {
		return ch
	}
	if len(w.chans) >= maxNameWatches {
		w.closeAllLocked()
	}
	ch := make(chan struct{})
	w.chans[key] = ch
	return ch
}

// fire closes the channels of keys, if any. Apply calls it after the
// commit that wrote those names.
func (w *nameWatches) fire(keys []string) {
	if len(keys) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.chans) == 0 {
		return
	}
	for _, k := range keys {
		if ch, ok := w.chans[k]; ok {
			close(ch)
			delete(w.chans, k)
		}
	}
}

// fireAll closes every channel (Restore replaced the state).
func (w *nameWatches) fireAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeAllLocked()
}

func (w *nameWatches) closeAllLocked() {
	for k, ch := range w.chans {
		close(ch)
		delete(w.chans, k)
	}
}

// closedCh is always closed: a watch that must fire at once.
var closedCh = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// watchMissing adds to ws (if not nil) the channel that fires when key's
// name is written. A reader calls it after finding the name missing in an
// older read transaction; present then checks the latest state, so a write
// that committed (and fired) between that read and the watch is not
// missed: the reader gets a closed channel and reads again.
func (s *Store) watchMissing(g *generation, ws memdb.WatchSet, key string, present func(tx *memdb.Txn) bool) {
	if ws == nil {
		return
	}
	ws.Add(s.names.watch(key))
	tx := g.db.Txn(false)
	defer tx.Abort()
	if present(tx) {
		ws.Add(closedCh)
	}
}
