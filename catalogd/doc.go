// Package catalogd is consort's state machine daemon and HTTP API. It
// follows raftd's committed log into an in-memory go-memdb store (package
// state), serves Consul's /v1 HTTP API from it, and streams its state to
// raftd for raft snapshots.
//
// Ownership. The feed loop (feed.go) is the only caller of the store's
// Apply and Restore; it records each command's result by raft index and
// broadcasts the applied index. Writers (kv_http.go) hand a command to
// raftd, get its index back, wait until the feed loop applied that index
// and answer with its result. Readers ask raftd for a read index (unless
// ?stale), wait until the store reached it, then query the store, blocking
// on go-memdb watch sets for ?index= queries.
//
// catalogd keeps nothing on disk: killed and restarted, it rebuilds its
// state from raftd's feed (a raft snapshot, then the log after it).
package catalogd
