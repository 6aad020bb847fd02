package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// Maintenance notes used when no reason is given, as Consul's.
const (
	DefaultNodeMaintReason    = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
	DefaultServiceMaintReason = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)

// checkBufSize is the default cap on a check's output, as Consul's.
const checkBufSize = 4 << 10

// AddServiceOptions tune AddService.
type AddServiceOptions struct {
	// ReplaceExistingChecks removes the service's checks that the new
	// definition does not name (Consul's ?replace-existing-checks).
	ReplaceExistingChecks bool
	// Source is SourceAPI or the definition file's path.
	Source string
}

// AddService registers (or replaces) a service and its checks. Checks
// that already exist keep their status and output, so re-registering does
// not flap them. A definition Consul would refuse returns a
// *ValidationError. The change is synced by the loop; callers that want
// it in the catalog before answering call SyncChanges.
func (a *Agent) AddService(def ServiceDefinition, opts AddServiceOptions) error {
	if err := def.Validate(); err != nil {
		return err
	}
	ns, hcs := a.buildService(def)
	a.mu.Lock()
	changed, err := a.addServiceLocked(ns, hcs, opts.Source, func(e *checkEntry) bool {
		return opts.ReplaceExistingChecks
	})
	a.mu.Unlock()
	if changed {
		a.TriggerSync()
	}
	return err
}

// buildService turns a definition into its records on this node, naming
// its checks as Consul does.
func (a *Agent) buildService(def ServiceDefinition) (*structs.NodeService, []*structs.HealthCheck) {
	ns := def.NodeService()
	hcs := make([]*structs.HealthCheck, 0, len(def.Checks))
	for i, c := range def.Checks {
		hc := c.HealthCheck(a.cfg.Node.Name)
		if c.ID == "" {
			hc.CheckID = ServiceCheckID(ns.ID, i, len(def.Checks))
		}
		if hc.Name == "" {
			hc.Name = fmt.Sprintf("Service '%s' check", ns.Service)
		}
		hc.ServiceID = ns.ID
		hcs = append(hcs, hc)
	}
	return ns, hcs
}

// addServiceLocked installs ns and hcs. Other checks of the service are
// removed when drop says so, else given the service's current name and
// tags.
func (a *Agent) addServiceLocked(ns *structs.NodeService, hcs []*structs.HealthCheck, source string, drop func(*checkEntry) bool) (bool, error) {
	changed, err := a.putServiceLocked(ns, source)
	if err != nil {
		return false, err
	}
	named := map[string]bool{}
	for _, hc := range hcs {
		named[hc.CheckID] = true
		hc.ServiceName, hc.ServiceTags = ns.Service, cloneStrings(ns.Tags)
		if old := a.checks[hc.CheckID]; old != nil && !old.deleted {
			hc.Status, hc.Output = old.chk.Status, old.chk.Output
		}
		c, err := a.putCheckLocked(hc, source)
		if err != nil {
			return true, err
		}
		changed = changed || c
	}
	for id, e := range a.checks {
		if e.deleted || e.chk.ServiceID != ns.ID || named[id] {
			continue
		}
		if drop(e) {
			a.deleteCheckLocked(id)
			changed = true
			continue
		}
		if e.chk.ServiceName != ns.Service || !sameStrings(e.chk.ServiceTags, ns.Tags) {
			hc := cloneCheck(e.chk)
			hc.ServiceName, hc.ServiceTags = ns.Service, cloneStrings(ns.Tags)
			if _, err := a.putCheckLocked(hc, e.source); err != nil {
				return true, err
			}
			changed = true
		}
	}
	return changed, nil
}

// RemoveService deregisters a service and its checks; ErrUnknownService
// when there is none.
func (a *Agent) RemoveService(id string) error {
	a.mu.Lock()
	e := a.services[id]
	if e == nil || e.deleted {
		a.mu.Unlock()
		return ErrUnknownService
	}
	a.deleteServiceLocked(id)
	a.mu.Unlock()
	a.TriggerSync()
	return nil
}

// AddCheck registers (or replaces) a check, keeping the status of an
// existing check with the same ID. A check of a service that is not
// registered here wraps ErrUnknownService; a definition Consul would
// refuse returns a *ValidationError.
func (a *Agent) AddCheck(def CheckDefinition, source string) error {
	switch {
	case def.Name == "":
		return invalid("Missing check name")
	case def.Status != "" && !validStatus(def.Status):
		return invalid("Bad check status")
	}
	if err := def.Validate(); err != nil {
		return invalid("Invalid check: %v", err)
	}
	hc := def.HealthCheck(a.cfg.Node.Name)
	a.mu.Lock()
	changed, err := a.addCheckLocked(hc, source)
	a.mu.Unlock()
	if changed {
		a.TriggerSync()
	}
	return err
}

func (a *Agent) addCheckLocked(hc *structs.HealthCheck, source string) (bool, error) {
	if hc.ServiceID != "" {
		s := a.services[hc.ServiceID]
		if s == nil || s.deleted {
			return false, fmt.Errorf("%w: ServiceID %q does not exist", ErrUnknownService, hc.ServiceID)
		}
		hc.ServiceName, hc.ServiceTags = s.svc.Service, cloneStrings(s.svc.Tags)
	}
	if old := a.checks[hc.CheckID]; old != nil && !old.deleted {
		hc.Status, hc.Output = old.chk.Status, old.chk.Output
	}
	return a.putCheckLocked(hc, source)
}

// RemoveCheck deregisters a check; ErrUnknownCheck when there is none.
func (a *Agent) RemoveCheck(id string) error {
	a.mu.Lock()
	e := a.checks[id]
	if e == nil || e.deleted {
		a.mu.Unlock()
		return ErrUnknownCheck
	}
	a.deleteCheckLocked(id)
	a.mu.Unlock()
	a.TriggerSync()
	return nil
}

// UpdateCheck sets a check's status and output (capped as UpdateTTL caps
// it) as a check runner (healthd) found them, and reports whether
// anything changed. Every change
// is synced at once (the loop is triggered): a runner already holds back
// output-only changes, as healthd does for its output update interval. A
// status change is persisted. ErrUnknownCheck when there is no such check.
func (a *Agent) UpdateCheck(id, status, output string) (bool, error) {
	if !validStatus(status) {
		return false, fmt.Errorf("check %q: bad status %q", id, status)
	}
	a.mu.Lock()
	changed, err := a.updateCheckLocked(id, status, output, false)
	a.mu.Unlock()
	return changed, err
}

// updateCheckLocked sets a check's status and output. With deferOutput an
// output-only change is synced after CheckUpdateInterval, as Consul's
// agent defers it.
func (a *Agent) updateCheckLocked(id, status, output string, deferOutput bool) (bool, error) {
	e := a.checks[id]
	if e == nil || e.deleted {
		return false, ErrUnknownCheck
	}
	output = capOutput(output, e.chk.Definition.OutputMaxSize)
	if e.chk.Status == status && e.chk.Output == output {
		return false, nil
	}
	statusChanged := e.chk.Status != status
	nc := cloneCheck(e.chk)
	nc.Status, nc.Output = status, output
	if statusChanged && a.disk != nil {
		// Output alone is not persisted: it changes often and a restart
		// losing the latest output loses nothing that matters.
		if err := a.disk.saveCheck(nc, e.source); err != nil {
			a.log.Warn("persist check status", "check", id, "err", err)
		}
	}
	e.chk, e.rev = nc, a.nextRevLocked()
	switch {
	case statusChanged || !deferOutput || a.cfg.CheckUpdateInterval < 0 || !e.inSync:
		stopDeferred(e)
		e.inSync = false
		a.TriggerSync()
	case e.deferred == nil && !a.stopped:
		e.deferred = time.AfterFunc(a.cfg.CheckUpdateInterval, func() { a.deferredDue(id, e) })
	}
	a.notifyLocked()
	return true, nil
}

// deferredDue marks a check whose output change waited long enough out of
// sync.
func (a *Agent) deferredDue(id string, e *checkEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.checks[id] != e || e.deleted || e.deferred == nil {
		return
	}
	e.deferred = nil
	e.inSync = false
	a.TriggerSync()
}

// UpdateTTL sets a TTL check's status and output (capped at the check's
// OutputMaxSize, 4 KiB by default, as Consul caps it) and returns the
// output stored. A status change is synced at once; an output-only change
// after CheckUpdateInterval, as Consul defers it. ErrUnknownCheck when there is no such check, ErrNotTTL
// when it is not a TTL check.
func (a *Agent) UpdateTTL(id, status, output string) (string, error) {
	if !validStatus(status) {
		return "", fmt.Errorf("check %q: bad status %q", id, status)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.checks[id]
	if e == nil || e.deleted {
		return "", ErrUnknownCheck
	}
	if e.chk.Definition.TTL <= 0 {
		return "", ErrNotTTL
	}
	if _, err := a.updateCheckLocked(id, status, output, true); err != nil {
		return "", err
	}
	return a.checks[id].chk.Output, nil
}

// capOutput cuts output to limit bytes (checkBufSize when limit is not
// positive) with Consul's note of how much was captured.
func capOutput(output string, limit int) string {
	if limit <= 0 {
		limit = checkBufSize
	}
	if total := len(output); total > limit {
		return fmt.Sprintf("%s ... (captured %d of %d bytes)", output[:limit], limit, total)
	}
	return output
}

// EnableNodeMaintenance registers the critical _node_maintenance check
// with reason as its notes; it does nothing when maintenance is already
// on.
func (a *Agent) EnableNodeMaintenance(reason string) error {
	if reason == "" {
		reason = DefaultNodeMaintReason
	}
	hc := &structs.HealthCheck{
		Node:    a.cfg.Node.Name,
		CheckID: structs.NodeMaintCheckID,
		Name:    structs.NodeMaintCheckName,
		Notes:   reason,
		Status:  structs.HealthCritical,
		Type:    "maintenance",
	}
	return a.enableMaint(hc)
}

// DisableNodeMaintenance removes the _node_maintenance check, if any.
func (a *Agent) DisableNodeMaintenance() error {
	return a.disableMaint(structs.NodeMaintCheckID)
}

// EnableServiceMaintenance registers the critical
// _service_maintenance:<id> check; ErrUnknownService when there is no
// such service.
func (a *Agent) EnableServiceMaintenance(id, reason string) error {
	if reason == "" {
		reason = DefaultServiceMaintReason
	}
	if a.Service(id) == nil {
		return ErrUnknownService
	}
	return a.enableMaint(&structs.HealthCheck{
		Node:      a.cfg.Node.Name,
		CheckID:   structs.ServiceMaintPrefix + id,
		Name:      structs.ServiceMaintCheckName,
		Notes:     reason,
		ServiceID: id,
		Status:    structs.HealthCritical,
		Type:      "maintenance",
	})
}

// DisableServiceMaintenance removes the service's maintenance check, if
// any; ErrUnknownService when there is no such service.
func (a *Agent) DisableServiceMaintenance(id string) error {
	if a.Service(id) == nil {
		return ErrUnknownService
	}
	return a.disableMaint(structs.ServiceMaintPrefix + id)
}

func (a *Agent) enableMaint(hc *structs.HealthCheck) error {
	a.mu.Lock()
	if e := a.checks[hc.CheckID]; e != nil && !e.deleted {
		a.mu.Unlock()
		return nil
	}
	changed, err := a.addCheckLocked(hc, SourceAPI)
	a.mu.Unlock()
	if changed {
		a.log.Info("maintenance mode on", "check", hc.CheckID, "reason", hc.Notes)
		a.TriggerSync()
	}
	return err
}

func (a *Agent) disableMaint(id string) error {
	if err := a.RemoveCheck(id); err != nil && !errors.Is(err, ErrUnknownCheck) {
		return err
	}
	return nil
}
