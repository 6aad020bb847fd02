// Package healthapi is healthd's socket protocol: catalogd tells healthd
// about TTL updates so it re-arms the TTL timer, and anyone may ask what
// healthd is running.
//
// TTL updates. catalogd answers /v1/agent/check/update|pass|warn|fail for
// a TTL check by calling UpdateTTL, and may also apply the status to its
// agent state itself (so the update takes effect while healthd is down).
// healthd sets the status, re-arms the TTL timer and reports the status
// with ReportChecks when it differs from what catalogd last sent it, so
// both paths agree and a report always carries healthd's latest state.
// When the TTL passes without another update, healthd reports the check
// critical with Consul's output "TTL expired".
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
// Status is passing, warning or critical (else ipc.ErrBadRequest); Output
// is kept, truncated to the check's OutputMaxSize (4 KiB) as Consul does.
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

	Name      string `codec:"name,omitempty"`
	ServiceID string `codec:"service_id,omitempty"`
	// NextRun is when the check runs next (interval checks) or expires
	// (TTL checks); zero when nothing is scheduled.
	NextRun time.Time `codec:"next_run,omitempty"`
	// Running: a run is in progress.
	Running bool `codec:"running,omitempty"`
	// Pending: a change waits to be reported to catalogd.
	Pending bool `codec:"pending,omitempty"`
}

// StatusResponse lists the checks healthd runs.
type StatusResponse struct {
	Connected bool         `codec:"connected"` // the check stream from catalogd is up
	Checks    []CheckState `codec:"checks"`

	// Running is how many checks run now, at most MaxRunning; Queued how
	// many are due and wait for a free slot.
	Running    int `codec:"running,omitempty"`
	Queued     int `codec:"queued,omitempty"`
	MaxRunning int `codec:"max_running,omitempty"`
	// Reports counts ReportChecks calls catalogd answered since healthd
	// started.
	Reports uint64 `codec:"reports,omitempty"`
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
