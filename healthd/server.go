package healthd

import (
	"context"
	"sort"

	"github.com/consort-io/consort/pkg/healthapi"
)

// server is healthd's side of healthapi.
type server struct{ d *Daemon }

var _ healthapi.Server = (*server)(nil)

// UpdateTTL sets a TTL check's status and re-arms its timer. It does not
// block on anything but healthd's own lock.
func (s *server) UpdateTTL(_ context.Context, req *healthapi.UpdateTTLRequest) (*healthapi.UpdateTTLResponse, error) {
	if err := s.d.updateTTL(req); err != nil {
		return nil, err
	}
	return &healthapi.UpdateTTLResponse{}, nil
}

// Status lists the checks healthd runs, sorted by check ID.
func (s *server) Status(_ context.Context, _ *healthapi.StatusRequest) (*healthapi.StatusResponse, error) {
	return s.d.status(), nil
}

// status snapshots what healthd knows.
func (d *Daemon) status() *healthapi.StatusResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &healthapi.StatusResponse{
		Connected:  d.connected,
		Running:    d.nrunning,
		Queued:     len(d.queue),
		MaxRunning: d.c.MaxRunning,
		Reports:    d.reports,
		Checks:     make([]healthapi.CheckState, 0, len(d.checks)),
	}
	for _, c := range d.checks {
		resp.Checks = append(resp.Checks, healthapi.CheckState{
			CheckID:   c.id,
			Type:      c.kind,
			Status:    c.status,
			Output:    c.output,
			LastRun:   c.lastRun,
			Interval:  c.interval,
			Name:      c.name,
			ServiceID: c.serviceID,
			NextRun:   c.nextRun,
			Running:   c.running,
			Pending:   c.pending,
		})
	}
	sort.Slice(resp.Checks, func(i, j int) bool { return resp.Checks[i].CheckID < resp.Checks[j].CheckID })
	return resp
}
