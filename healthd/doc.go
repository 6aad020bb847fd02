// Package healthd runs this node's health checks and reports status
// changes to catalogd (DESIGN.md "Flows", Health).
//
// catalogd streams the node's check definitions (catalogapi WatchChecks:
// the full set on connect, then changes, each with the status catalogd
// holds). healthd starts every check from that status, so a restarted
// healthd does not flap anything, and runs it: HTTP, TCP, UDP, gRPC
// health and H2PING checks on their interval in a bounded worker pool
// (Config.MaxRunning) with first runs staggered over the interval; TTL
// checks as timers re-armed by healthapi UpdateTTL; alias checks as
// watchers of catalogd's HTTP API; script checks only when enabled.
// Results pass through Consul's thresholds (SuccessBeforePassing,
// FailuresBeforeWarning, FailuresBeforeCritical) and only changes are
// reported, batched, with catalogapi ReportChecks. A check critical
// longer than DeregisterCriticalServiceAfter is reported with
// Deregister set.
//
// healthd decides nothing about what is registered and publishes no
// events: catalogd owns the checks and publishes consort.health.*.
// See README.md.
package healthd
