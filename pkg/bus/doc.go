// Package bus is consort's event bus on NATS: subject builders, the
// encoding of names into subject tokens, one payload struct per event, and
// a Publisher that never blocks the daemon publishing.
//
// Events announce what already happened. They are hints, never the only
// copy of state: a subscriber that keeps state resyncs from the owning
// daemon's socket whenever its NATS connection (re)connects.
//
// # Subjects
//
// Under a configurable prefix (nats.subject_prefix, default "consort"):
//
//	consort.member.{join,leave,failed,update,reap}  gossipd
//	consort.event.<name>                            gossipd (serf user events)
//	consort.raft.leader                             raftd, RaftLeader
//	consort.catalog.service.<name>                  catalogd
//	consort.catalog.node.<name>                     catalogd
//	consort.health.<service>                        catalogd
//	consort.kv                                      catalogd, KV
//	consort.session.invalidated                     catalogd, SessionInvalidated
//	consort.lock.{acquired,released,lost}           catalogd, Lock
//
// Catalog and health events carry the raft index of the command that
// made the change. A node-level check (serfHealth, node maintenance)
// changes the health of every service on its node, so its Health event
// goes to "<prefix>.health.~" and to "<prefix>.health.<name>" for each
// service name on that node: watching one service's subject is enough to
// see every change to its health.
//
// Build them with Subjects; subscribe to Subjects.All() for everything,
// or e.g. "consort.catalog.service.*" for one kind.
//
// # Names in subjects
//
// A name becomes exactly one token through EncodeToken, and DecodeToken
// gets it back:
//
//   - bytes A-Z a-z 0-9 '_' '-' stay as they are, so ordinary service and
//     node names read naturally: "web-1" -> "web-1";
//   - every other byte, '~' included, becomes '~' and two upper-case hex
//     digits: "api.v2" -> "api~2Ev2", "a b" -> "a~20b", "é" -> "~C3~A9";
//   - the empty name becomes "~" alone.
//
// Tokens are thus made of [A-Za-z0-9_-~] only: never '.', '*', '>' or
// white space, whatever the name held (invalid UTF-8 included). The
// encoding is one-to-one: DecodeToken accepts only what EncodeToken
// produces (upper-case hex, no escaped plain byte) and rejects anything
// else with ErrBadToken. A subscriber matching a specific service
// subscribes to CatalogService(name), never to a hand-built subject.
//
// # Publishing
//
// Publisher.Publish marshals to JSON and queues into a bounded buffer
// (Config.Buffer, default 4096); one goroutine drains it into NATS. When
// NATS is down the buffer fills and new events are dropped and counted
// (Dropped); nothing waits. Each payload carries a versioned Kind
// ("raft.leader.v1") and, when one exists, the raft index, so a reader can
// tell stale from fresh. Tests use package bustest instead of NATS.
package bus
