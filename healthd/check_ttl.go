package healthd

import (
	"fmt"
	"time"

	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/structs"
)

// ttlExpiredPrefix starts the output of an expired TTL check, Consul's.
const ttlExpiredPrefix = "TTL expired"

// armTTLLocked (re)starts a TTL check's timer: it expires TTL from now
// unless an update comes first. A TTL check healthd takes over (at start,
// or after its definition changed) gets a full TTL from that moment.
func (d *Daemon) armTTLLocked(c *checkState, now time.Time) {
	c.seq[evTTL]++
	c.nextRun = now.Add(time.Duration(c.def.TTL))
	d.pushLocked(event{at: c.nextRun, c: c, kind: evTTL, seq: c.seq[evTTL]})
}

// expireTTLLocked turns a TTL check critical because no update came in
// time, keeping the last update's output as Consul does.
func (d *Daemon) expireTTLLocked(c *checkState, now time.Time) {
	out := ttlExpiredPrefix
	if c.ttlOutput != "" {
		out = fmt.Sprintf("%s (last output before timeout follows): %s", ttlExpiredPrefix, c.ttlOutput)
	}
	d.log.Warn("check missed its TTL; now critical", "check", c.id, "ttl", time.Duration(c.def.TTL))
	c.lastRun = now
	c.nextRun = time.Time{}
	d.setStatusLocked(c, structs.HealthCritical, out, now)
}

// updateTTL sets a TTL check's status and re-arms its timer. It is the
// healthapi UpdateTTL method.
func (d *Daemon) updateTTL(req *healthapi.UpdateTTLRequest) error {
	switch req.Status {
	case structs.HealthPassing, structs.HealthWarning, structs.HealthCritical:
	default:
		return &ipc.Error{Code: ipc.CodeBadRequest, Message: fmt.Sprintf("update TTL of %q: status %q: want passing, warning or critical", req.CheckID, req.Status)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.checks[req.CheckID]
	if c == nil {
		return fmt.Errorf("update TTL of %q: %w", req.CheckID, healthapi.ErrUnknownCheck)
	}
	if c.kind != kindTTL {
		return fmt.Errorf("update TTL of %q (a %s check): %w", req.CheckID, c.kind, healthapi.ErrNotTTL)
	}
	now := d.c.Clock.Now()
	out := truncateTTL(req.Output, c.outputMax)
	c.ttlOutput = out
	c.lastRun = now
	d.setStatusLocked(c, req.Status, out, now)
	d.armTTLLocked(c, now)
	return nil
}
