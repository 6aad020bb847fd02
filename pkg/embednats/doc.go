// Package embednats runs a nats-server inside the calling process: core
// NATS only (no JetStream, no clustering), no signal handling, logging
// through slog. Tests, pkg/testcluster and `consort dev` use it for the
// event bus; production nodes run a standalone nats-server.
package embednats
