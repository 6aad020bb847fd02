// Package raftapi is raftd's socket protocol: method names, request and
// response types, a typed Client, the Server interface a replacement raftd
// implements, and the errors its methods return.
//
// raftd never interprets an entry: Apply takes opaque bytes, Feed hands
// them back in commit order. The one structure raftd knows is the snapshot
// envelope: catalogd's state plus the raft index that state reflects.
package raftapi

import (
	"context"
	"time"

	"github.com/consort-io/consort/pkg/ipc"
)

// Method names.
const (
	MethodApply     = "raft.Apply"
	MethodFeed      = "raft.Feed"
	MethodReadIndex = "raft.ReadIndex"
	MethodStatus    = "raft.Status"
)

// Errors returned by raftd's methods; errors.Is works across the socket.
// The messages match Consul's where Consul has words for the failure.
var (
	// ErrNoLeader: there is no known leader (election, or no quorum).
	ErrNoLeader = ipc.NewError("no_leader", "No cluster leader")
	// ErrNotLeader: this server stopped leading during the call.
	ErrNotLeader = ipc.NewError("not_leader", "node is not the leader")
	// ErrTimeout: the write was handed to raft but not confirmed in time;
	// its outcome is unknown.
	ErrTimeout = ipc.NewError("timeout", "timed out waiting for raft; the write may or may not have been applied")
	// ErrTooLarge: the command exceeds MaxCommandSize.
	ErrTooLarge = ipc.NewError("too_large", "command too large")
	// ErrShutdown: raftd is shutting down.
	ErrShutdown = ipc.NewError("shutdown", "raftd is shutting down")
)

// MaxCommandSize bounds one Apply's data.
const MaxCommandSize = 4 << 20

// ApplyRequest appends Data to the replicated log.
type ApplyRequest struct {
	Data []byte `codec:"data"`
}

// ApplyResponse is the index at which the entry was committed.
type ApplyResponse struct {
	Index uint64 `codec:"index"`
	// Term is the raft term of the entry at Index, when known (0 if not).
	// A follower that holds the same (Index, Term) in its log knows every
	// entry up to Index is committed (raft's log matching), so it can feed
	// them without waiting for the leader's next heartbeat.
	Term uint64 `codec:"term,omitempty"`
}

// FeedRequest asks for the state machine feed after index After (the last
// index the caller has applied; 0 for an empty state machine).
type FeedRequest struct {
	After uint64 `codec:"after"`
}

// FeedKind says what a FeedItem carries.
type FeedKind uint8

// Feed item kinds. A snapshot is sent as SnapshotBegin, zero or more
// SnapshotChunk, SnapshotEnd; the receiver resets its state at Begin and
// has the state as of Index at End. Entries follow in index order.
const (
	FeedEntries       FeedKind = 1
	FeedSnapshotBegin FeedKind = 2
	FeedSnapshotChunk FeedKind = 3
	FeedSnapshotEnd   FeedKind = 4
)

// Entry is one committed command.
type Entry struct {
	Index uint64 `codec:"i"`
	Data  []byte `codec:"d"`
}

// FeedItem is one message of the Feed stream.
type FeedItem struct {
	Kind    FeedKind `codec:"k"`
	Index   uint64   `codec:"i,omitempty"` // snapshot: the state's raft index
	Data    []byte   `codec:"d,omitempty"` // snapshot chunk bytes
	Entries []Entry  `codec:"e,omitempty"` // FeedEntries: consecutive commands, ascending
}

// ReadIndexRequest asks the leader for an index that reflects every write
// acknowledged before the call.
type ReadIndexRequest struct {
	// Consistent makes the leader confirm its leadership with a quorum
	// (VerifyLeader) first; otherwise its leader lease is trusted.
	Consistent bool `codec:"consistent"`
}

// ReadIndexResponse carries the read index and the headers reads report.
type ReadIndexResponse struct {
	Index       uint64        `codec:"index"`
	KnownLeader bool          `codec:"known_leader"`
	LastContact time.Duration `codec:"last_contact"`
	// Term is the raft term of the entry at Index, when known; see
	// ApplyResponse.Term.
	Term uint64 `codec:"term,omitempty"`
}

// StatusRequest has no fields.
type StatusRequest struct{}

// Peer is one server in the raft configuration.
type Peer struct {
	ID      string `codec:"id"`
	Address string `codec:"address"`
	Voter   bool   `codec:"voter"`
}

// StatusResponse describes this raftd's view of the cluster.
type StatusResponse struct {
	ID            string        `codec:"id"`
	Address       string        `codec:"address"`
	State         string        `codec:"state"` // Leader, Follower, Candidate, Shutdown
	LeaderID      string        `codec:"leader_id"`
	LeaderAddr    string        `codec:"leader_addr"`
	KnownLeader   bool          `codec:"known_leader"`
	Term          uint64        `codec:"term"`
	CommitIndex   uint64        `codec:"commit_index"`
	AppliedIndex  uint64        `codec:"applied_index"`
	LastIndex     uint64        `codec:"last_index"`
	FirstIndex    uint64        `codec:"first_index"`    // oldest entry still in the log (compaction moves it)
	SnapshotIndex uint64        `codec:"snapshot_index"` // raft index of the latest snapshot, 0 if none
	LastContact   time.Duration `codec:"last_contact"`   // 0 on the leader
	Peers         []Peer        `codec:"peers"`
}

// Server is what a raftd (or a replacement) implements.
type Server interface {
	Apply(ctx context.Context, req *ApplyRequest) (*ApplyResponse, error)
	Feed(ctx context.Context, req *FeedRequest, send func(*FeedItem) error) error
	ReadIndex(ctx context.Context, req *ReadIndexRequest) (*ReadIndexResponse, error)
	Status(ctx context.Context, req *StatusRequest) (*StatusResponse, error)
}

// Register adds s's methods to m.
func Register(m *ipc.Mux, s Server) {
	ipc.Unary(m, MethodApply, s.Apply)
	ipc.Stream(m, MethodFeed, s.Feed)
	ipc.Unary(m, MethodReadIndex, s.ReadIndex)
	ipc.Unary(m, MethodStatus, s.Status)
}

// Client is a typed raftd client. Safe for concurrent use.
type Client struct{ c *ipc.Client }

// NewClient wraps an ipc client connected to a raftd.
func NewClient(c *ipc.Client) *Client { return &Client{c: c} }

// Dial returns a client for the raftd socket at path (dialed lazily).
func Dial(path string) *Client { return NewClient(ipc.NewClient(path, ipc.UnixDialer(path))) }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Apply appends data to the log and blocks until it is committed; it
// returns the index. ErrTimeout means the outcome is unknown.
func (c *Client) Apply(ctx context.Context, data []byte) (uint64, error) {
	r, err := ipc.Call[ApplyRequest, ApplyResponse](ctx, c.c, MethodApply, &ApplyRequest{Data: data})
	if err != nil {
		return 0, err
	}
	return r.Index, nil
}

// ApplyFull is Apply returning the whole response (index and term).
func (c *Client) ApplyFull(ctx context.Context, data []byte) (*ApplyResponse, error) {
	return ipc.Call[ApplyRequest, ApplyResponse](ctx, c.c, MethodApply, &ApplyRequest{Data: data})
}

// Feed opens the state machine feed after index after. The stream stays
// open for live entries until ctx ends or the connection breaks.
func (c *Client) Feed(ctx context.Context, after uint64) (*ipc.StreamReader[FeedItem], error) {
	return ipc.OpenStream[FeedRequest, FeedItem](ctx, c.c, MethodFeed, &FeedRequest{After: after})
}

// ReadIndex returns a read index from the leader (forwarded by followers).
func (c *Client) ReadIndex(ctx context.Context, consistent bool) (*ReadIndexResponse, error) {
	return ipc.Call[ReadIndexRequest, ReadIndexResponse](ctx, c.c, MethodReadIndex, &ReadIndexRequest{Consistent: consistent})
}

// Status returns raftd's view of the cluster. It never forwards.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	return ipc.Call[StatusRequest, StatusResponse](ctx, c.c, MethodStatus, &StatusRequest{})
}
