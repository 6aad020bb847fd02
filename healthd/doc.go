// Package healthd will run this node's health checks (HTTP, TCP, TTL,
// script when enabled, gRPC) and report status changes to catalogd
// (DESIGN.md "Flows", Health).
//
// Not implemented yet; see issue 4.
package healthd
