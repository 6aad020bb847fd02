// Package state is catalogd's deterministic state machine: the replicated
// KV store, service catalog, sessions, KV locks and transactions (later
// ACLs too) kept in go-memdb.
//
// # Commands
//
// Every raft log entry catalogd applies is one command: a MessageType byte
// followed by the msgpack (ipc.Marshal) of the request for that type. Encode
// builds one and DecodeCommand reads one back. Apply applies one committed
// command at its raft index and returns the command's result: for KV a bool
// (the answer Consul gives to PUT and DELETE, acquire and release) or an
// error; for the catalog commands (RegisterType, DeregisterType) a
// *CatalogResult; for SessionType a *SessionResult; for TxnType a
// *TxnResult. A command that
// cannot be decoded, names an unknown type or operation, or lacks a key
// yields an error wrapping ErrInvalidCommand, changes nothing, and still
// advances LastIndex: every replica sees the same bytes and does the same.
// A type with IgnoreUnknownTypeFlag set that this version does not know is
// skipped with a nil result, as Consul does, so new command types can be
// introduced during a rolling upgrade.
//
// Apply is deterministic: it reads no clock, no randomness and never
// depends on map iteration order, so replaying the same log on any replica,
// or after Restore of a snapshot, yields an identical Dump. Times come in
// the commands: the writer stamps Now (unix nanoseconds) into session
// commands, lock requests, transactions and catalog registrations and
// deregistrations. The highest Now seen is kept in the index table
// ("writer_clock"); a command that needs a time but carries none uses it.
//
// # KV semantics
//
// The semantics are Consul's state store (agent/consul/state/kvs.go):
//
//   - set creates a key (CreateIndex = ModifyIndex = index) or updates it,
//     keeping CreateIndex and Session. LockIndex and Flags come from the
//     request, as in Consul (an HTTP PUT carries LockIndex 0). A set that
//     changes nothing (same value, flags, lock index and session) writes
//     nothing and leaves ModifyIndex where it was.
//   - cas with Entry.ModifyIndex 0 sets only if the key does not exist; with
//     N only if the key exists with ModifyIndex N. A failed cas answers
//     false and changes nothing.
//   - delete removes the key if present, leaving a tombstone; it answers
//     true either way.
//   - delete-cas answers true when the key is absent (nothing to do) or its
//     ModifyIndex equals Entry.ModifyIndex (then deletes it), false
//     otherwise.
//   - delete-tree removes every key starting with Entry.Key and leaves one
//     tombstone for the prefix itself (none for the empty prefix); it
//     answers true.
//
// # Catalog semantics
//
// The catalog is Consul's (agent/consul/state/catalog.go and the checks its
// Catalog.Register endpoint makes before applying, with the same words):
//
//   - A registration creates its node if missing, else updates it if the
//     request changes it and SkipNodeUpdate is not set; then its service
//     (ID defaults to the name); then its checks (Checks, then Check; ID
//     defaults to the name, node to the request's, status to critical).
//     A service check takes its service's name and tags and must name a
//     service on the node ("Unknown service ID ..."). All or nothing.
//   - Node names, service IDs and names and check IDs compare
//     case-insensitively. A node ID held by a node of another name renames
//     it (its services and checks are dropped); a name held by a node with
//     a different ID and a serfHealth check that is not critical is refused.
//   - Each record has CreateIndex and ModifyIndex; rewriting identical data
//     writes nothing, so anti-entropy does not move indexes or wake
//     watchers.
//   - Deregistration removes a service (with its checks), else a check,
//     else the whole node; removing something absent succeeds.
//   - Each change lists in CatalogResult.Changes, in order, for bus events.
//   - A check written as critical, a check deregistered and a node
//     deregistered invalidate the sessions tied to them inside the same
//     command, as Consul's ensureCheckTxn, deleteCheckTxn and deleteNodeTxn
//     do (see Sessions), and the invalidations and the locks they end list
//     in CatalogResult.Changes after the catalog change that caused them.
//
// # Sessions and locks
//
// Sessions follow Consul (agent/consul/state/session.go, kvs.go):
//
//   - Create needs an ID, a behavior of "release" (the default) or
//     "delete", a registered node, and every check it names (NodeChecks,
//     then ServiceChecks, on the session's node) registered and not
//     critical, refused with Consul's words otherwise. Defaults such as
//     NodeChecks ["serfHealth"] and the TTL range are the HTTP layer's. An
//     ID already in use is refused (Consul would overwrite).
//   - Destroy removes the session and, in key order, releases (Session
//     cleared, LockIndex kept, ModifyIndex raised) or deletes every key it
//     holds, each getting a lock-delay until Now + LockDelay, LockDelay
//     capped at 60 s. Destroying an unknown session changes nothing.
//   - Renew records Now as the session's renew time (SessionRenewedAt, for
//     the leader's TTL timers). It changes neither the session nor any
//     index, so it wakes no blocking reader: in Consul a renew is no write
//     at all. Renewing an unknown session answers "Session id '<id>' not
//     found" (ErrSessionNotFound).
//   - Lock (acquire) first refuses (false) while a lock-delay on the key
//     is in force at the request's Now, as Consul's leader does before
//     raft; then needs a session ("missing session") that exists ("invalid
//     session ..."); refuses (false) a key held by another session; lets
//     the holder re-acquire, updating value and flags but not LockIndex;
//     otherwise sets Session and LockIndex + 1 (1 for a new key). Unlock
//     (release) by the holder clears Session, keeps LockIndex, takes the
//     request's value and flags and raises ModifyIndex; by anyone else, or
//     of a missing key, it answers false. A plain set keeps the holder and,
//     as in Consul, takes LockIndex from the request (0 from HTTP); a plain
//     delete removes a held key and so ends its lock.
//   - Lock-delays live in the state (Consul keeps them in each server's
//     memory, on its own clock): they follow from commands and their Now,
//     so they are replicated, snapshotted and dumped. Each lock request
//     first drops the lock-delays that have run out.
//   - KV lock results stay plain bools; LockChanges(index) tells the lock
//     changes of the KV command just applied (acquired with the new
//     LockIndex, released, or deleted by a KV delete) for bus events.
//
// # Transactions
//
// A TxnType command is Consul's Txn.Apply: at most MaxTxnOps operations;
// first the endpoint's pre-checks (a KV key, lock-delays, known verbs, node
// and service validation), then every operation in order in one memdb
// write transaction (txn.go in Consul's state store). If any fails, nothing
// is committed and every failure is reported with its operation index and
// Consul's words; otherwise the results come in order: writes answer the
// entry without its value, gets with it, deletes and checks nothing.
// TxnRead runs read-only transactions on a read transaction for ?stale and
// read-index reads.
//
// Besides the per-table rows, the index table holds Consul's per-service
// rows ("service.<name>", raised by any change to an instance of the
// service, its checks or its node: a check change raises its service, a
// node-level check or node change every service on the node), per-node rows
// ("node.<name>") and the extinction rows ("service_last_extinction",
// "node_last_extinction") raised when the last instance of a name goes.
// Service reads answer and watch their service's row, so a blocking query
// on one service wakes only for it. A read of a missing service answers the
// extinction index and waits on a channel that only a registration of that
// name closes (memdb's own watch for an absent key fires for writes of
// neighbouring keys).
//
// # Tables and indexes
//
// KV lives in "kvs" (KV entries by key, prefix-searchable) and
// "tombstones" (deleted key or deleted tree prefix → raft index of the
// deletion); "index" maps a table name (or a catalog row name, above) to
// the raft index of its latest change. The catalog tables are "nodes" (by
// name, ID and meta pair), "services" (by node and service ID, prefix by
// node; by service name; by kind) and "checks" (by node and check ID, prefix
// by node; by status; by service name; by node and service ID). Sessions
// live in "sessions" (by ID, by node), "session_checks" (session to check
// ties: by node, check and session; by node and check; by session),
// "session_renew" (renew times by session), "kv_locks" (held keys by key
// and by session, so no second index slows plain KV writes) and
// "lock_delays" (by key, by expiry). Session checks and KV locks are
// derived: snapshots leave them out and Restore rebuilds them.
//
// Tombstones exist so that the index a prefix reader sees never moves
// backwards when keys under the prefix are deleted. They are kept forever
// for now; a later reap command, committed through raft by the leader,
// will remove tombstones older than a given index as Consul's tombstone GC
// does.
//
// Reads follow Consul's blocking-query index rules. KVGet of an existing
// key answers the key's ModifyIndex and watches only that key; of a
// missing key, the highest index of the kvs and tombstones tables, watching
// the part of the tree where the key would appear. KVList and KVKeys answer
// the highest ModifyIndex of the matching keys or tombstones under the
// prefix, or the tables' index when that is 0, watching the whole prefix.
// Session reads answer the sessions table index, as Consul's do; SessionGet
// watches its session, SessionList and NodeSessions their whole result.
// Every read index is at least 1 (Consul's endpoints clamp 0 to 1 so a
// blocking query on an empty store blocks), so callers may use it as is.
// Each read also adds AbandonCh to the watch set, so a blocking query wakes
// when Restore replaces the state.
//
// # Concurrency
//
// A Store is safe for concurrent use. Apply calls are serialized; reads run
// on memdb read transactions and never wait for Apply. Snapshot captures a
// memdb snapshot together with the index it reflects, then streams it while
// writes continue. Entries returned by reads are shared with the store and
// must not be modified.
package state
