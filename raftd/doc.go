// Package raftd is consort's raft daemon: it owns the replicated log
// (hashicorp/raft on raft-boltdb, fsync on), raft snapshots, leader
// election and bootstrap, and serves pkg/raftapi on a Unix socket.
//
// raftd never interprets an entry. Apply appends opaque bytes; Feed hands
// committed commands back in index order to the state machine (catalogd),
// preceded by the newest snapshot when the caller is older than the log.
// raftd's own raft.FSM only records how far the log has been applied and
// wakes feeds. When raft wants a snapshot, raftd asks catalogd (over its
// socket, catalogapi.Snapshot) for its state at raftd's applied command
// index and stores it behind a small header naming the state's index; if
// catalogd cannot answer, the snapshot waits and the log grows.
//
// One TCP port (8300 by default) carries raft's transport and raftd's RPC
// to other servers, told apart by the first byte of each connection
// (RaftPreamble, RPCPreamble). Followers forward Apply and ReadIndex to the
// leader over it; bootstrap_expect discovers peers through Status on it.
//
// Indexes given out (Apply's index, ReadIndex's index, a snapshot's Index)
// are always indexes a Feed reaches, as an entry or a snapshot, so a
// reader waiting for its state to reach one never waits forever.
package raftd
