// Package healthapi is healthd's socket protocol: catalogd tells healthd
// about TTL updates so it re-arms the TTL timer, and anyone may ask what
// healthd is running.
package healthapi

import (
	"context"
	"time"

	"github.com/consort-io/consort/pkg/ipc"
)

// Method names.
const (
	MethodUpdateTTL = "health.UpdateTTL"
	MethodStatus    = "health.Status"
)

// ErrUnknownCheck: healthd does not run a check with that ID.
var ErrUnknownCheck = ipc.NewError("unknown_check", "unknown check")

// ErrNotTTL: the check exists but is not a TTL check.
var ErrNotTTL = ipc.NewError("not_ttl", "not a TTL check")

// UpdateTTLRequest sets a TTL check's status and re-arms its timer.
type UpdateTTLRequest struct {
	CheckID string `codec:"check_id"`
	Status  string `codec:"status"`
	Output  string `codec:"output"`
}

// UpdateTTLResponse is empty.
type UpdateTTLResponse struct{}

// StatusRequest is empty.
type StatusRequest struct{}

// CheckState is what healthd knows of one check.
type CheckState struct {
	CheckID  string        `codec:"check_id"`
	Type     string        `codec:"type"`
	Status   string        `codec:"status"`
	Output   string        `codec:"output"`
	LastRun  time.Time     `codec:"last_run"`
	Interval time.Duration `codec:"interval"`
}

// StatusResponse lists the checks healthd runs.
type StatusResponse struct {
	Connected bool         `codec:"connected"` // the check stream from catalogd is up
	Checks    []CheckState `codec:"checks"`
}

// Server is what a healthd (or a replacement) implements.
type Server interface {
	UpdateTTL(ctx context.Context, req *UpdateTTLRequest) (*UpdateTTLResponse, error)
	Status(ctx context.Context, req *StatusRequest) (*StatusResponse, error)
}

// Register adds s's methods to m.
func Register(m *ipc.Mux, s Server) {
	ipc.Unary(m, MethodUpdateTTL, s.UpdateTTL)
	ipc.Unary(m, MethodStatus, s.Status)
}

// Client is a typed healthd client. Safe for concurrent use.
type Client struct{ c *ipc.Client }

// Dial returns a client for the healthd socket at path (dialed lazily).
func Dial(path string) *Client { return &Client{c: ipc.NewClient(path, ipc.UnixDialer(path))} }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// UpdateTTL sets a TTL check's status and re-arms its timer.
func (c *Client) UpdateTTL(ctx context.Context, checkID, status, output string) error {
	_, err := ipc.Call[UpdateTTLRequest, UpdateTTLResponse](ctx, c.c, MethodUpdateTTL, &UpdateTTLRequest{CheckID: checkID, Status: status, Output: output})
	return err
}

// Status lists the checks healthd runs.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	return ipc.Call[StatusRequest, StatusResponse](ctx, c.c, MethodStatus, &StatusRequest{})
}
