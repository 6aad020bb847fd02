// Package catalogapi is catalogd's socket protocol. For now it holds the
// one method raftd calls: Snapshot, which streams catalogd's state machine
// at or after a given raft index so raftd can write a raft snapshot.
package catalogapi

import (
	"context"

	"github.com/consort-io/consort/pkg/ipc"
)

// Method names.
const (
	MethodSnapshot = "catalog.Snapshot"
)

// Errors returned by catalogd's methods.
var (
	// ErrBehind: catalogd did not reach the requested index in time.
	ErrBehind = ipc.NewError("behind", "catalogd has not applied the requested index yet")
)

// SnapshotRequest asks for the state at an index ≥ MinIndex.
type SnapshotRequest struct {
	MinIndex uint64 `codec:"min_index"`
}

// SnapshotChunk is one piece of the snapshot stream. The first chunk
// carries Index, the raft index the state reflects (≥ MinIndex); the
// concatenated Data is opaque to the receiver.
type SnapshotChunk struct {
	Index uint64 `codec:"index"`
	Data  []byte `codec:"data"`
}

// Server is what a catalogd (or a replacement) implements.
type Server interface {
	Snapshot(ctx context.Context, req *SnapshotRequest, send func(*SnapshotChunk) error) error
}

// Register adds s's methods to m.
func Register(m *ipc.Mux, s Server) {
	ipc.Stream(m, MethodSnapshot, s.Snapshot)
}

// Client is a typed catalogd client. Safe for concurrent use.
type Client struct{ c *ipc.Client }

// NewClient wraps an ipc client connected to a catalogd.
func NewClient(c *ipc.Client) *Client { return &Client{c: c} }

// Dial returns a client for the catalogd socket at path (dialed lazily).
func Dial(path string) *Client { return NewClient(ipc.NewClient(path, ipc.UnixDialer(path))) }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Snapshot opens a snapshot stream at an index ≥ minIndex.
func (c *Client) Snapshot(ctx context.Context, minIndex uint64) (*ipc.StreamReader[SnapshotChunk], error) {
	return ipc.OpenStream[SnapshotRequest, SnapshotChunk](ctx, c.c, MethodSnapshot, &SnapshotRequest{MinIndex: minIndex})
}
