package healthd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/structs"
)

// Check kinds, as Consul names them in a check's Type.
const (
	kindHTTP   = "http"
	kindTCP    = "tcp"
	kindUDP    = "udp"
	kindTTL    = "ttl"
	kindGRPC   = "grpc"
	kindH2PING = "h2ping"
	kindAlias  = "alias"
	kindScript = "script"
)

// kindOf names the kind of check t describes, or "" when it describes
// none (a check healthd does not run, such as a maintenance check).
func kindOf(t *structs.CheckType) string {
	switch {
	case len(t.Args) > 0:
		return kindScript
	case t.HTTP != "":
		return kindHTTP
	case t.TCP != "":
		return kindTCP
	case t.UDP != "":
		return kindUDP
	case t.GRPC != "":
		return kindGRPC
	case t.H2PING != "":
		return kindH2PING
	case t.AliasNode != "" || t.AliasService != "":
		return kindAlias
	case t.TTL > 0:
		return kindTTL
	}
	return ""
}

// runner runs one check once. run blocks for at most the check's timeout
// (or until ctx ends) and returns the raw status and output, before
// thresholds. Runs of one check never overlap.
type runner interface {
	run(ctx context.Context) (status, output string)
}

// checkState is one check healthd runs. The definition fields are fixed
// at creation (a changed definition makes a new checkState); the rest is
// guarded by Daemon.mu.
type checkState struct {
	id        string
	def       structs.CheckType
	kind      string
	interval  time.Duration // run interval; 0 for TTL and alias checks
	timeout   time.Duration
	outputMax int
	runner    runner // interval checks only
	thresh    threshold

	// Guarded by Daemon.mu.
	name, serviceID, serviceName string
	status, output               string
	// baseStatus and baseOutput are what catalogd holds, as far as healthd
	// knows: from the stream, or from a report catalogd took.
	baseStatus, baseOutput string
	lastRun                time.Time
	nextRun                time.Time
	running                bool
	removed                bool
	pending                bool // in Daemon.pending
	outputDeferred         bool // an evOutput event is scheduled
	criticalSince          time.Time
	deregPending           bool   // a Deregister report is due
	deregSent              bool   // catalogd took one this critical episode
	ttlOutput              string // output of the last TTL update
	seq                    [numEvents]uint64
	stopAlias              context.CancelFunc
}

// threshold applies SuccessBeforePassing, FailuresBeforeWarning and
// FailuresBeforeCritical as Consul's StatusHandler does. The counters
// start at the thresholds, so the first result after healthd starts a
// check counts at once.
type threshold struct {
	successBefore, warnBefore, critBefore int
	successes, failures                   int
}

func newThreshold(t *structs.CheckType) threshold {
	warn := t.FailuresBeforeWarning
	if warn == 0 {
		warn = t.FailuresBeforeCritical
	}
	return threshold{
		successBefore: t.SuccessBeforePassing,
		warnBefore:    warn,
		critBefore:    t.FailuresBeforeCritical,
		successes:     t.SuccessBeforePassing,
		failures:      t.FailuresBeforeCritical,
	}
}

// update takes one raw result and returns the status to record, or ok
// false when the result does not change the status yet.
func (h *threshold) update(status, output string) (string, string, bool) {
	if status == structs.HealthPassing || status == structs.HealthWarning {
		h.successes++
		h.failures = 0
		if h.successes >= h.successBefore {
			return status, output, true
		}
		return "", "", false
	}
	h.failures++
	h.successes = 0
	if h.failures >= h.critBefore {
		return status, output, true
	}
	if h.failures >= h.warnBefore {
		return structs.HealthWarning, output, true
	}
	return "", "", false
}

// applyFullLocked replaces the whole check set with defs.
func (d *Daemon) applyFullLocked(defs []catalogapi.CheckDefinition) {
	seen := make(map[string]bool, len(defs))
	for i := range defs {
		seen[defs[i].CheckID] = true
		d.upsertLocked(&defs[i])
	}
	for id, c := range d.checks {
		if !seen[id] {
			d.removeLocked(c)
		}
	}
}

// applyUpdateLocked applies one incremental update.
func (d *Daemon) applyUpdateLocked(u *catalogapi.ChecksUpdate) {
	for i := range u.Checks {
		d.upsertLocked(&u.Checks[i])
	}
	for _, id := range u.Removed {
		if c := d.checks[id]; c != nil {
			d.removeLocked(c)
		}
	}
}

// upsertLocked adds a check or takes news of one. A check whose
// definition did not change keeps running undisturbed (counters, timers,
// schedule); only what catalogd holds is updated, and a difference with
// what healthd found is reported.
func (d *Daemon) upsertLocked(def *catalogapi.CheckDefinition) {
	if def.CheckID == "" {
		return
	}
	c := d.checks[def.CheckID]
	if c != nil && reflect.DeepEqual(c.def, def.Definition) {
		c.name, c.serviceID, c.serviceName = def.Name, def.ServiceID, def.ServiceName
		c.baseStatus, c.baseOutput = def.Status, def.Output
		d.dirtyLocked(c)
		return
	}
	if c != nil {
		d.removeLocked(c)
	}
	c = d.newCheck(def)
	d.checks[c.id] = c
	d.startLocked(c)
}

// newCheck builds the state of a check that starts from the status
// catalogd holds, so a restarted healthd does not flap it.
func (d *Daemon) newCheck(def *catalogapi.CheckDefinition) *checkState {
	t := def.Definition
	c := &checkState{
		id:          def.CheckID,
		def:         t,
		kind:        kindOf(&t),
		timeout:     time.Duration(t.Timeout),
		outputMax:   t.OutputMaxSize,
		thresh:      newThreshold(&t),
		name:        def.Name,
		serviceID:   def.ServiceID,
		serviceName: def.ServiceName,
		status:      def.Status,
		output:      def.Output,
		baseStatus:  def.Status,
		baseOutput:  def.Output,
	}
	if !strings.HasPrefix(def.Output, ttlExpiredPrefix) {
		c.ttlOutput = def.Output
	}
	if c.outputMax <= 0 {
		c.outputMax = DefaultOutputMaxSize
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
		if c.kind == kindScript {
			c.timeout = DefaultScriptTimeout
		}
	}
	return c
}

// startLocked arms a new check: the first run staggered within the
// interval (as Consul does, so a thousand checks do not all start at
// once), the TTL timer, or the alias watcher.
func (d *Daemon) startLocked(c *checkState) {
	now := d.c.Clock.Now()
	if c.status == structs.HealthCritical {
		c.criticalSince = now
		d.armDeregLocked(c, now)
	}
	switch c.kind {
	case "":
		// Not a check healthd runs (catalog-only or maintenance).
		return
	case kindTTL:
		d.armTTLLocked(c, now)
		return
	case kindAlias:
		d.startAliasLocked(c)
		return
	case kindScript:
		if !d.c.EnableScriptChecks {
			d.setStatusLocked(c, structs.HealthCritical, "script checks are disabled on this node: set enable_script_checks = true in the node config to run them", now)
			return
		}
	}
	interval := time.Duration(c.def.Interval)
	if interval <= 0 {
		d.setStatusLocked(c, structs.HealthCritical, fmt.Sprintf("invalid check definition: a %s check needs an interval", c.kind), now)
		return
	}
	if interval < d.c.MinInterval {
		d.log.Warn("check interval below the minimum; raised", "check", c.id, "interval", interval, "min", d.c.MinInterval)
		interval = d.c.MinInterval
	}
	r, err := d.newRunner(c)
	if err != nil {
		d.setStatusLocked(c, structs.HealthCritical, "invalid check definition: "+err.Error(), now)
		return
	}
	c.interval, c.runner = interval, r
	c.nextRun = now.Add(rand.N(interval))
	d.pushLocked(event{at: c.nextRun, c: c, kind: evRun, seq: c.seq[evRun]})
}

// newRunner builds the runner of an interval check.
func (d *Daemon) newRunner(c *checkState) (runner, error) {
	switch c.kind {
	case kindHTTP:
		return newHTTPCheck(&c.def, c.timeout, c.outputMax)
	case kindTCP:
		return newTCPCheck(&c.def, c.timeout), nil
	case kindUDP:
		return newUDPCheck(&c.def, c.timeout), nil
	case kindGRPC:
		return newGRPCCheck(&c.def, c.timeout), nil
	case kindH2PING:
		return newH2PingCheck(&c.def, c.timeout), nil
	case kindScript:
		return newScriptCheck(&c.def, c.timeout, c.outputMax), nil
	}
	return nil, fmt.Errorf("unknown check kind %q", c.kind)
}

// removeLocked stops a check: its events go stale, a running run's result
// is dropped, an alias watcher is cancelled.
func (d *Daemon) removeLocked(c *checkState) {
	c.removed = true
	if d.checks[c.id] == c {
		delete(d.checks, c.id)
	}
	if c.pending {
		c.pending = false
		delete(d.pending, c.id)
	}
	if c.stopAlias != nil {
		c.stopAlias()
	}
}

// recordLocked takes a run's raw result through the thresholds.
func (d *Daemon) recordLocked(c *checkState, status, output string, now time.Time) {
	status, output, ok := c.thresh.update(status, output)
	if ok {
		d.setStatusLocked(c, status, output, now)
	}
}

// setStatusLocked records a check's status and queues what must be
// reported.
func (d *Daemon) setStatusLocked(c *checkState, status, output string, now time.Time) {
	output = capOutput(output, c.outputMax)
	if status != c.status {
		c.seq[evDereg]++
		c.deregPending, c.deregSent = false, false
		c.criticalSince = time.Time{}
		if status == structs.HealthCritical {
			c.criticalSince = now
			d.armDeregLocked(c, now)
		}
	}
	c.status, c.output = status, output
	d.dirtyLocked(c)
}

// armDeregLocked schedules the DeregisterCriticalServiceAfter report for a
// check that turned critical at since.
func (d *Daemon) armDeregLocked(c *checkState, since time.Time) {
	after := time.Duration(c.def.DeregisterCriticalServiceAfter)
	if after <= 0 || c.serviceID == "" {
		return
	}
	c.seq[evDereg]++
	d.pushLocked(event{at: since.Add(after), c: c, kind: evDereg, seq: c.seq[evDereg]})
}

// dirtyLocked decides whether c must be reported: a status different from
// catalogd's, or a due deregistration, at once; an output-only difference
// at once too, or after OutputUpdateInterval when that is set.
func (d *Daemon) dirtyLocked(c *checkState) {
	switch {
	case c.removed:
		return
	case c.deregPending || c.status != c.baseStatus:
		d.addPendingLocked(c)
	case c.output != c.baseOutput:
		if d.c.OutputUpdateInterval <= 0 {
			d.addPendingLocked(c)
			return
		}
		if c.pending {
			return
		}
		if !c.outputDeferred {
			c.outputDeferred = true
			c.seq[evOutput]++
			d.pushLocked(event{at: d.c.Clock.Now().Add(d.c.OutputUpdateInterval), c: c, kind: evOutput, seq: c.seq[evOutput]})
		}
	default:
		if c.pending {
			c.pending = false
			delete(d.pending, c.id)
		}
	}
}

func (d *Daemon) addPendingLocked(c *checkState) {
	if !c.pending {
		c.pending = true
		d.pending[c.id] = c
	}
	select {
	case d.reportWake <- struct{}{}:
	default:
	}
}
