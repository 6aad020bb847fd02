// Package gossipd is consort's gossip membership daemon: hashicorp/serf's
// LAN pool (every node, serf_lan 8301) and, on servers, its WAN pool
// (servers of every datacenter, serf_wan 8302), with serf's failure
// detection (Lifeguard on, as serf's default), user events and snapshots
// of membership on disk.
//
// gossipd announces Consul's member tags (role "consul" or "node", dc,
// id, port, expect, vsn, build, segment, ...) so raftd and catalogd can
// tell servers of this datacenter from clients. It serves pkg/gossipapi
// on its Unix socket (Members, Join, Leave, ForceLeave, UserEvent and the
// WatchMembers stream) and publishes member changes on
// <prefix>.member.{join,leave,failed,update,reap} and user events on
// <prefix>.event.<name>. Events are hints; raftd and catalogd re-read
// membership from the socket before acting.
//
// Stopping gossipd (Close, SIGTERM) does not leave: the others see this
// node fail, and a restart with the same data directory rejoins the
// members in its snapshot by itself. Leave (the socket method) leaves
// gracefully.
//
// The gossip keyring (encryption) is not implemented yet.
package gossipd
