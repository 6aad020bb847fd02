// Package state is catalogd's deterministic state machine: the replicated
// KV store (later the catalog, sessions and ACLs too) kept in go-memdb.
//
// # Commands
//
// Every raft log entry catalogd applies is one command: a MessageType byte
// followed by the msgpack (ipc.Marshal) of the request for that type. Encode
// builds one and DecodeCommand reads one back. Apply applies one committed
// command at its raft index and returns the command's result: for KV a bool
// (the answer Consul gives to PUT and DELETE) or an error. A command that
// cannot be decoded, names an unknown type or operation, or lacks a key
// yields an error wrapping ErrInvalidCommand, changes nothing, and still
// advances LastIndex: every replica sees the same bytes and does the same.
// A type with IgnoreUnknownTypeFlag set that this version does not know is
// skipped with a nil result, as Consul does, so new command types can be
// introduced during a rolling upgrade.
//
// Apply is deterministic: it reads no clock, no randomness and never
// depends on map iteration order, so replaying the same log on any replica,
// or after Restore of a snapshot, yields an identical Dump.
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
// # Tables and indexes
//
// Three memdb tables: "kvs" (KV entries by key, prefix-searchable),
// "tombstones" (deleted key or deleted tree prefix → raft index of the
// deletion) and "index" (table name → raft index of its latest change).
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
