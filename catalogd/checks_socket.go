package catalogd

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/consort-io/consort/catalogd/agent"
	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/structs"
)

// Daemon serves healthd's side of the catalogd socket.
var _ catalogapi.CheckServer = (*Daemon)(nil)

// checksPerUpdate bounds the checks in one WatchChecks item, keeping a
// thousand-check set well inside a frame.
const checksPerUpdate = 256

// WatchChecks streams this node's runnable checks to a check runner
// (healthd); it implements catalogapi.CheckServer. The first item is Full
// and carries the whole set with each check's current status and output
// (a large set continues in further items that add to it), so a restarted
// runner resumes from them instead of starting critical. Then each change
// of the set is sent: checks added or whose definition, name or service
// changed (with their current status), and checks removed. Status changes
// alone are not sent: the runner reported them, or, for TTL checks updated
// through the HTTP API, was told through healthd's UpdateTTL. The stream
// ends when ctx ends (nil) or a send fails. Safe for concurrent use.
func (d *Daemon) WatchChecks(ctx context.Context, req *catalogapi.WatchChecksRequest, send func(*catalogapi.ChecksUpdate) error) error {
	log := d.log.With("component", "checks", "runner", req.Runner)
	changed := d.agent.Changed()
	sent := map[string]catalogapi.CheckDefinition{}
	var defs []catalogapi.CheckDefinition
	for _, c := range d.agent.RunnableChecks() {
		def := checkDefinition(c)
		sent[def.CheckID] = def
		defs = append(defs, def)
	}
	if err := sendChecks(send, true, defs, nil); err != nil {
		return err
	}
	log.Info("check runner connected", "checks", len(defs))
	defer log.Info("check runner disconnected")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		changed = d.agent.Changed()
		var upd []catalogapi.CheckDefinition
		seen := make(map[string]bool, len(sent))
		for _, c := range d.agent.RunnableChecks() {
			def := checkDefinition(c)
			seen[def.CheckID] = true
			if old, ok := sent[def.CheckID]; ok && sameDefinition(old, def) {
				continue
			}
			sent[def.CheckID] = def
			upd = append(upd, def)
		}
		var removed []string
		for id := range sent {
			if !seen[id] {
				removed = append(removed, id)
				delete(sent, id)
			}
		}
		if len(upd) == 0 && len(removed) == 0 {
			continue
		}
		log.Debug("check definitions changed", "changed", len(upd), "removed", len(removed))
		if err := sendChecks(send, false, upd, removed); err != nil {
			return err
		}
	}
}

// sendChecks sends defs and removed in items of at most checksPerUpdate
// checks. A full set is sent as Full items, each but the last marked More,
// so the runner replaces its set once.
func sendChecks(send func(*catalogapi.ChecksUpdate) error, full bool, defs []catalogapi.CheckDefinition, removed []string) error {
	for first := true; first || len(defs) > 0; first = false {
		n := min(len(defs), checksPerUpdate)
		u := &catalogapi.ChecksUpdate{Full: full, More: full && n < len(defs), Checks: defs[:n:n]}
		if first {
			u.Removed = removed
		}
		if err := send(u); err != nil {
			return err
		}
		defs = defs[n:]
	}
	return nil
}

// checkDefinition is a check as the runner gets it.
func checkDefinition(c *structs.HealthCheck) catalogapi.CheckDefinition {
	return catalogapi.CheckDefinition{
		CheckID:     c.CheckID,
		Name:        c.Name,
		ServiceID:   c.ServiceID,
		ServiceName: c.ServiceName,
		Status:      c.Status,
		Output:      c.Output,
		Definition:  c.Definition,
	}
}

// sameDefinition compares what a runner runs, not the status it found.
func sameDefinition(a, b catalogapi.CheckDefinition) bool {
	a.Status, a.Output, b.Status, b.Output = "", "", "", ""
	return reflect.DeepEqual(a, b)
}

// ReportChecks takes status changes found by a check runner; it
// implements catalogapi.CheckServer. Each result updates the agent's
// check and is synced to the catalog at once by the anti-entropy loop; a
// result with Deregister removes the check's service (its critical time
// passed DeregisterCriticalServiceAfter). Results for checks the agent
// does not have are listed back in Unknown. A result with a bad status
// fails the whole call with ipc.ErrBadRequest before anything changes.
// Safe for concurrent use.
func (d *Daemon) ReportChecks(ctx context.Context, req *catalogapi.ReportChecksRequest) (*catalogapi.ReportChecksResponse, error) {
	for _, r := range req.Results {
		switch r.Status {
		case structs.HealthPassing, structs.HealthWarning, structs.HealthCritical:
		default:
			return nil, fmt.Errorf("%w: check %q: status %q is not passing, warning or critical", ipc.ErrBadRequest, r.CheckID, r.Status)
		}
	}
	resp := &catalogapi.ReportChecksResponse{}
	for _, r := range req.Results {
		if r.Deregister {
			if d.deregisterCritical(r.CheckID) {
				continue
			}
		}
		_, err := d.agent.UpdateCheck(r.CheckID, r.Status, r.Output)
		switch {
		case errors.Is(err, agent.ErrUnknownCheck):
			resp.Unknown = append(resp.Unknown, r.CheckID)
		case err != nil:
			return resp, err
		}
	}
	return resp, nil
}

// deregisterCritical removes the service of a check that stayed critical
// past its DeregisterCriticalServiceAfter, as Consul's reaper does. It
// reports whether the check is gone as a result.
func (d *Daemon) deregisterCritical(checkID string) bool {
	c := d.agent.Check(checkID)
	if c == nil || c.ServiceID == "" {
		return false
	}
	if err := d.agent.RemoveService(c.ServiceID); err != nil {
		return false
	}
	d.log.Info("service deregistered: check critical past deregister_critical_service_after",
		"service", c.ServiceID, "check", checkID, "after", time.Duration(c.Definition.DeregisterCriticalServiceAfter))
	return true
}
