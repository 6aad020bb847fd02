package healthd

import (
	"context"
	"sort"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/structs"
)

// maxBatch bounds the results of one ReportChecks call, keeping a report
// of a thousand changes well inside a frame.
const maxBatch = 256

// reportTimeout bounds one ReportChecks call.
const reportTimeout = 10 * time.Second

// sent is one result in flight, with the check it was taken from.
type sent struct {
	c *checkState
	r catalogapi.CheckResult
}

// report sends pending changes to catalogd: it gathers changes for
// ReportDelay, sends the current status of every pending check (so a
// report always carries the latest state, never a stale one), and retries
// with backoff when catalogd is away. While the check stream is down it
// waits: the full set on reconnect tells what catalogd holds, and what
// differs is reported then.
func (d *Daemon) report(ctx context.Context) {
	log := d.log.With("component", "report")
	backoff := d.c.ReconnectMin
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.reportWake:
		}
		if d.c.ReportDelay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.c.ReportDelay):
			}
		}
		batch := d.takeBatch()
		if len(batch) == 0 {
			continue
		}
		results := make([]catalogapi.CheckResult, len(batch))
		for i, s := range batch {
			results[i] = s.r
		}
		cctx, cancel := context.WithTimeout(ctx, reportTimeout)
		_, err := d.cat.ReportChecks(cctx, results)
		cancel()
		if err != nil {
			d.requeue(batch)
			if ctx.Err() != nil {
				return
			}
			if !failing {
				log.Warn("report check results", "results", len(batch), "err", err)
				failing = true
			}
			wait := backoff
			backoff = min(backoff*2, d.c.ReconnectMax)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			d.kickReport()
			continue
		}
		backoff, failing = d.c.ReconnectMin, false
		d.taken(batch)
		for _, r := range results {
			log.Debug("reported", "check", r.CheckID, "status", r.Status, "deregister", r.Deregister)
		}
	}
}

// kickReport wakes the reporter.
func (d *Daemon) kickReport() {
	select {
	case d.reportWake <- struct{}{}:
	default:
	}
}

// takeBatch removes up to maxBatch checks from the pending set and
// returns their current results, in check ID order. It returns nothing
// while the stream is down.
func (d *Daemon) takeBatch() []sent {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.connected || len(d.pending) == 0 {
		return nil
	}
	ids := make([]string, 0, len(d.pending))
	for id := range d.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > maxBatch {
		ids = ids[:maxBatch]
		d.kickReport() // the rest go in the next call
	}
	batch := make([]sent, 0, len(ids))
	for _, id := range ids {
		c := d.pending[id]
		c.pending = false
		delete(d.pending, id)
		batch = append(batch, sent{c: c, r: catalogapi.CheckResult{
			CheckID:    c.id,
			Status:     c.status,
			Output:     c.output,
			Deregister: c.deregPending && c.status == structs.HealthCritical,
		}})
	}
	return batch
}

// requeue puts back the checks of a batch catalogd did not take.
func (d *Daemon) requeue(batch []sent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range batch {
		d.dirtyLocked(s.c)
	}
}

// taken records what catalogd now holds after a report it answered, and
// queues again the checks that changed meanwhile. Results catalogd did
// not know (ReportChecksResponse.Unknown: the check was deregistered
// meanwhile) need nothing more: their base now matches, so they are not
// sent again, and the stream's removal follows.
func (d *Daemon) taken(batch []sent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports++
	for _, s := range batch {
		c := s.c
		if c.removed {
			continue
		}
		c.baseStatus, c.baseOutput = s.r.Status, s.r.Output
		if s.r.Deregister {
			c.deregPending, c.deregSent = false, true
		}
		d.dirtyLocked(c)
	}
}
