package catalogapi

import (
	"context"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/structs"
)

// Methods healthd calls on its node's catalogd.
const (
	// MethodWatchChecks streams this node's check definitions: the full
	// set first, then changes.
	MethodWatchChecks = "catalog.WatchChecks"
	// MethodReportChecks reports check status changes found by healthd.
	MethodReportChecks = "catalog.ReportChecks"
)

// ErrUnknownCheck: a report names a check this agent does not have (it was
// deregistered meanwhile); the report is dropped.
var ErrUnknownCheck = ipc.NewError("unknown_check", "unknown check")

// WatchChecksRequest opens the check definition stream.
type WatchChecksRequest struct {
	// Runner names the caller, for catalogd's log.
	Runner string `codec:"runner"`
}

// CheckDefinition is one check healthd must run, with its current status
// so a restarted healthd resumes from it instead of starting critical.
type CheckDefinition struct {
	CheckID     string            `codec:"check_id"`
	Name        string            `codec:"name"`
	ServiceID   string            `codec:"service_id"`
	ServiceName string            `codec:"service_name"`
	Status      string            `codec:"status"`
	Output      string            `codec:"output"`
	Definition  structs.CheckType `codec:"definition"`
}

// ChecksUpdate is one item of the WatchChecks stream. Full replaces the
// receiver's whole set (the first item is always Full); otherwise Checks
// are added or replaced and Removed are stopped. A large full set comes in
// several Full items, each but the last with More set: the receiver
// gathers them and replaces its set once, at the last.
type ChecksUpdate struct {
	Full    bool              `codec:"full"`
	More    bool              `codec:"more,omitempty"`
	Checks  []CheckDefinition `codec:"checks"`
	Removed []string          `codec:"removed"`
}

// CheckResult is a status change found by healthd.
type CheckResult struct {
	CheckID string `codec:"check_id"`
	Status  string `codec:"status"` // passing, warning, critical
	Output  string `codec:"output"` // capped at 4 KiB by healthd
	// Deregister asks catalogd to deregister the check's service because
	// it stayed critical past DeregisterCriticalServiceAfter.
	Deregister bool `codec:"deregister,omitempty"`
}

// ReportChecksRequest carries one or more results.
type ReportChecksRequest struct {
	Results []CheckResult `codec:"results"`
}

// ReportChecksResponse lists results catalogd did not take (unknown IDs).
type ReportChecksResponse struct {
	Unknown []string `codec:"unknown"`
}

// CheckServer is catalogd's side of the healthd protocol.
type CheckServer interface {
	WatchChecks(ctx context.Context, req *WatchChecksRequest, send func(*ChecksUpdate) error) error
	ReportChecks(ctx context.Context, req *ReportChecksRequest) (*ReportChecksResponse, error)
}

// RegisterChecks adds s's methods to m.
func RegisterChecks(m *ipc.Mux, s CheckServer) {
	ipc.Stream(m, MethodWatchChecks, s.WatchChecks)
	ipc.Unary(m, MethodReportChecks, s.ReportChecks)
}

// WatchChecks opens the check definition stream.
func (c *Client) WatchChecks(ctx context.Context, runner string) (*ipc.StreamReader[ChecksUpdate], error) {
	return ipc.OpenStream[WatchChecksRequest, ChecksUpdate](ctx, c.c, MethodWatchChecks, &WatchChecksRequest{Runner: runner})
}

// ReportChecks reports status changes.
func (c *Client) ReportChecks(ctx context.Context, results []CheckResult) (*ReportChecksResponse, error) {
	return ipc.Call[ReportChecksRequest, ReportChecksResponse](ctx, c.c, MethodReportChecks, &ReportChecksRequest{Results: results})
}
