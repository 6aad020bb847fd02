// Package gossipd will own serf LAN and WAN membership, failure detection,
// user events and the gossip keyring (DESIGN.md "Processes on a node").
//
// Not implemented yet; see issue 6.
package gossipd
