// Package catalogd is consort's state machine daemon and HTTP API. It
// follows raftd's committed log into an in-memory go-memdb store (package
// state), serves Consul's /v1 HTTP API from it, and streams its state to
// raftd for raft snapshots.
//
// Ownership. The feed loop (feed.go) is the only caller of the store's
// Apply and Restore; it records each command's result by raft index and
// broadcasts the applied index; it also publishes the bus events of what
// each command changed (feed.go for KV, events.go for the catalog).
// Writers (kv_http.go, catalog_http.go) hand a command to raftd, get its
// index back, wait until the feed loop applied that index and answer with
// its result. Readers ask raftd for a read index (unless ?stale), wait
// until the store reached it, then query the store, blocking on go-memdb
// watch sets for ?index= queries. Catalog and health answers are built as
// Consul's JSON records (filter_types.go), on which ?filter expressions
// are evaluated (filter.go).
//
// catalogd keeps no catalog state on disk: killed and restarted, it
// rebuilds it from raftd's feed (a raft snapshot, then the log after it).
// Only this node's agent state (package agent: the services and checks
// registered here, kept in the catalog by anti-entropy) is persisted, in
// its own directory. agent_http.go serves /v1/agent/*, checks_socket.go
// the check stream healthd runs from and its reports.
//
// Sessions (session_http.go) are raft commands like KV writes, renews
// included. While the local raftd leads (leader.go polls its Status), the
// session TTL timers run (session_ttl.go): armed from the store on taking
// up leadership and re-armed by each create and renew the feed applies
// (lock_events.go, called from events.go), they write a destroy through
// raft on expiry. lock_events.go also publishes the session and lock
// events from the changes each applied command reports.
package catalogd
