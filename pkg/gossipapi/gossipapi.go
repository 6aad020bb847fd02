// Package gossipapi is gossipd's socket protocol: method names, request
// and response types, a typed Client, the Server interface a replacement
// gossipd implements, and the errors its methods return.
//
// gossipd runs serf: a LAN pool every node is in and, on servers, a WAN
// pool of the servers of every datacenter. Members answers one pool's
// current view; WatchMembers streams it (the whole list first, then every
// change) for raftd and catalogd, which re-read membership here before
// they act on an event.
package gossipapi

import (
	"context"

	"github.com/consort-io/consort/pkg/ipc"
)

// Method names.
const (
	MethodMembers      = "gossip.Members"
	MethodJoin         = "gossip.Join"
	MethodLeave        = "gossip.Leave"
	MethodForceLeave   = "gossip.ForceLeave"
	MethodUserEvent    = "gossip.UserEvent"
	MethodWatchMembers = "gossip.WatchMembers"
)

// Pools.
const (
	PoolLAN = "lan" // every node of the datacenter
	PoolWAN = "wan" // the servers of every datacenter
)

// Member statuses, serf's names.
const (
	StatusNone    = "none"
	StatusAlive   = "alive"
	StatusLeaving = "leaving"
	StatusLeft    = "left"
	StatusFailed  = "failed"
)

// Changes in a WatchItem, the same words as the bus subjects
// (<prefix>.member.<change>).
const (
	ChangeJoin   = "join"
	ChangeLeave  = "leave"
	ChangeFailed = "failed"
	ChangeUpdate = "update"
	ChangeReap   = "reap" // the member is gone from the pool's list
)

// Consul's member tag names, set by gossipd on its own member.
const (
	TagRole        = "role" // "consul" on servers, "node" on clients
	TagDatacenter  = "dc"   // datacenter
	TagSegment     = "segment"
	TagID          = "id"   // node ID (the raft server ID on servers)
	TagPort        = "port" // servers: the raft/server port (8300)
	TagExpect      = "expect"
	TagBootstrap   = "bootstrap"
	TagVersion     = "vsn"
	TagVersionMin  = "vsn_min"
	TagVersionMax  = "vsn_max"
	TagRaftVersion = "raft_vsn"
	TagBuild       = "build"
	TagWANJoinPort = "wan_join_port"
	TagACLs        = "acls"
	// RoleServer and RoleClient are TagRole's values.
	RoleServer = "consul"
	RoleClient = "node"
)

// Errors returned by gossipd's methods; errors.Is works across the socket.
var (
	// ErrUnknownPool: the pool is neither PoolLAN nor PoolWAN.
	ErrUnknownPool = ipc.NewError("unknown_pool", "unknown pool: want lan or wan")
	// ErrNoWAN: this node has no WAN pool (a client, or ports.serf_wan = -1).
	ErrNoWAN = ipc.NewError("no_wan", "this agent has no WAN pool (not a server, or serf_wan disabled)")
	// ErrLeft: gossipd left the cluster (Leave); it serves no pool until
	// restarted.
	ErrLeft = ipc.NewError("left", "gossipd has left the cluster")
	// ErrNotReady: gossipd is starting and its pools are not up yet.
	ErrNotReady = ipc.NewError("not_ready", "gossipd is not ready")
	// ErrNoNode: ForceLeave named a node the pool does not know.
	ErrNoNode = ipc.NewError("no_node", "No node found with that name")
	// ErrEventTooLarge: a user event's name and payload exceed serf's
	// limit (512 bytes by default, as Consul).
	ErrEventTooLarge = ipc.NewError("event_too_large", "user event exceeds the size limit")
	// ErrBadRequest: a required field is missing or malformed.
	ErrBadRequest = ipc.NewError("bad_request", "bad request")
)

// Member is one member of a pool as this gossipd sees it.
type Member struct {
	Name   string            `codec:"name"` // WAN: "<node>.<dc>"
	Addr   string            `codec:"addr"` // IP
	Port   uint16            `codec:"port"` // serf port
	Tags   map[string]string `codec:"tags"`
	Status string            `codec:"status"` // StatusAlive etc.
	// Protocol versions, as Consul's /v1/agent/members shows them.
	ProtocolMin uint8 `codec:"pmin"`
	ProtocolMax uint8 `codec:"pmax"`
	ProtocolCur uint8 `codec:"pcur"`
	DelegateMin uint8 `codec:"dmin"`
	DelegateMax uint8 `codec:"dmax"`
	DelegateCur uint8 `codec:"dcur"`
}

// MembersRequest asks for one pool's members ("" is PoolLAN).
type MembersRequest struct {
	Pool string `codec:"pool"`
}

// MembersResponse is the pool's member list, sorted by name.
type MembersResponse struct {
	Self    string   `codec:"self"` // this node's name in the pool
	Members []Member `codec:"members"`
}

// JoinRequest asks gossipd to join the pool through the given addresses
// (host or host:port; a bare host gets the pool's default port).
type JoinRequest struct {
	Addrs []string `codec:"addrs"`
	WAN   bool     `codec:"wan"`
}

// JoinResponse counts the addresses a join succeeded through.
type JoinResponse struct {
	Joined int `codec:"joined"`
}

// LeaveRequest has no fields.
type LeaveRequest struct{}

// LeaveResponse has no fields.
type LeaveResponse struct{}

// ForceLeaveRequest moves a failed member to left at once (serf's
// RemoveFailedNode); with Prune it is also removed from the member list.
type ForceLeaveRequest struct {
	Node  string `codec:"node"`
	Prune bool   `codec:"prune"`
	WAN   bool   `codec:"wan"`
}

// ForceLeaveResponse has no fields.
type ForceLeaveResponse struct{}

// UserEventRequest fires a user event to the LAN pool. Coalesce lets serf
// deliver only the newest of same-named events seen close together.
type UserEventRequest struct {
	Name     string `codec:"name"`
	Payload  []byte `codec:"payload"`
	Coalesce bool   `codec:"coalesce"`
}

// UserEventResponse has no fields.
type UserEventResponse struct{}

// WatchRequest opens a member stream of one pool ("" is PoolLAN).
type WatchRequest struct {
	Pool string `codec:"pool"`
}

// WatchItem is one message of WatchMembers. The first is Full: every
// member the pool knows. Each later one has Change set and carries the
// members it concerns, with their status after the change. A member seen
// in a change may already be in the full list; applying items in order
// always ends at the current view.
type WatchItem struct {
	Full    bool     `codec:"full,omitempty"`
	Self    string   `codec:"self,omitempty"` // Full: this node's name in the pool
	Change  string   `codec:"change,omitempty"`
	Members []Member `codec:"members"`
}

// Server is what a gossipd (or a replacement) implements.
type Server interface {
	Members(ctx context.Context, req *MembersRequest) (*MembersResponse, error)
	Join(ctx context.Context, req *JoinRequest) (*JoinResponse, error)
	Leave(ctx context.Context, req *LeaveRequest) (*LeaveResponse, error)
	ForceLeave(ctx context.Context, req *ForceLeaveRequest) (*ForceLeaveResponse, error)
	UserEvent(ctx context.Context, req *UserEventRequest) (*UserEventResponse, error)
	WatchMembers(ctx context.Context, req *WatchRequest, send func(*WatchItem) error) error
}

// Register adds s's methods to m.
func Register(m *ipc.Mux, s Server) {
	ipc.Unary(m, MethodMembers, s.Members)
	ipc.Unary(m, MethodJoin, s.Join)
	ipc.Unary(m, MethodLeave, s.Leave)
	ipc.Unary(m, MethodForceLeave, s.ForceLeave)
	ipc.Unary(m, MethodUserEvent, s.UserEvent)
	ipc.Stream(m, MethodWatchMembers, s.WatchMembers)
}

// Client is a typed gossipd client. Safe for concurrent use.
type Client struct{ c *ipc.Client }

// NewClient wraps an ipc client connected to a gossipd.
func NewClient(c *ipc.Client) *Client { return &Client{c: c} }

// Dial returns a client for the gossipd socket at path (dialed lazily).
func Dial(path string) *Client { return NewClient(ipc.NewClient(path, ipc.UnixDialer(path))) }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Members returns pool's members ("" is PoolLAN).
func (c *Client) Members(ctx context.Context, pool string) (*MembersResponse, error) {
	return ipc.Call[MembersRequest, MembersResponse](ctx, c.c, MethodMembers, &MembersRequest{Pool: pool})
}

// Join joins the LAN (or WAN) pool through addrs and returns how many of
// them it joined through. It blocks until every address was tried.
func (c *Client) Join(ctx context.Context, addrs []string, wan bool) (int, error) {
	r, err := ipc.Call[JoinRequest, JoinResponse](ctx, c.c, MethodJoin, &JoinRequest{Addrs: addrs, WAN: wan})
	if err != nil {
		return 0, err
	}
	return r.Joined, nil
}

// Leave leaves every pool gracefully and blocks until the leave has
// propagated; gossipd then serves no pool until it is restarted.
func (c *Client) Leave(ctx context.Context) error {
	_, err := ipc.Call[LeaveRequest, LeaveResponse](ctx, c.c, MethodLeave, &LeaveRequest{})
	return err
}

// ForceLeave marks a failed node left (and with prune, forgets it).
func (c *Client) ForceLeave(ctx context.Context, node string, prune, wan bool) error {
	_, err := ipc.Call[ForceLeaveRequest, ForceLeaveResponse](ctx, c.c, MethodForceLeave,
		&ForceLeaveRequest{Node: node, Prune: prune, WAN: wan})
	return err
}

// UserEvent fires a user event to the LAN pool.
func (c *Client) UserEvent(ctx context.Context, name string, payload []byte, coalesce bool) error {
	_, err := ipc.Call[UserEventRequest, UserEventResponse](ctx, c.c, MethodUserEvent,
		&UserEventRequest{Name: name, Payload: payload, Coalesce: coalesce})
	return err
}

// WatchMembers opens the member stream of pool ("" is PoolLAN): a Full
// item, then one item per change. The stream ends when ctx ends, the
// connection breaks, or the reader falls too far behind (then reopen it
// and start again from the new Full item).
func (c *Client) WatchMembers(ctx context.Context, pool string) (*ipc.StreamReader[WatchItem], error) {
	return ipc.OpenStream[WatchRequest, WatchItem](ctx, c.c, MethodWatchMembers, &WatchRequest{Pool: pool})
}
