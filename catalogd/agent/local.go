package agent

import (
	"sort"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// SourceAPI marks entries registered through the HTTP API (Consul's
// "remote" source); other sources are the path of a definition file.
const SourceAPI = ""

// serviceEntry is one local service. Records are never changed in place:
// a change replaces svc, so copies handed out stay valid.
type serviceEntry struct {
	svc     *structs.NodeService
	source  string
	inSync  bool // the catalog holds exactly svc
	deleted bool // deregistered here; kept until the catalog forgets it
	rev     uint64
}

// checkEntry is one local check.
type checkEntry struct {
	chk     *structs.HealthCheck
	source  string
	inSync  bool
	deleted bool
	rev     uint64
	// deferred is set while an output-only change waits for
	// CheckUpdateInterval before it is synced.
	deferred *time.Timer
}

// nextRevLocked returns a fresh revision; a sync marks an entry in sync
// only if its revision did not move while the write was under way.
func (a *Agent) nextRevLocked() uint64 {
	a.rev++
	return a.rev
}

// notifyLocked wakes Changed watchers.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of any service or
// check (definition or status).
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// TriggerSync asks the sync loop to push local changes now. It never
// blocks.
func (a *Agent) TriggerSync() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Services returns copies of the registered services, sorted by ID.
func (a *Agent) Services() []*structs.NodeService {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*structs.NodeService, 0, len(a.services))
	for _, e := range a.services {
		if !e.deleted {
			out = append(out, cloneService(e.svc))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Service returns a copy of the service with id, or nil.
func (a *Agent) Service(id string) *structs.NodeService {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.services[id]; e != nil && !e.deleted {
		return cloneService(e.svc)
	}
	return nil
}

// ServiceSource returns where the service with id came from: SourceAPI
// or a definition file's path; ok is false when there is no such service.
func (a *Agent) ServiceSource(id string) (source string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.services[id]; e != nil && !e.deleted {
		return e.source, true
	}
	return "", false
}

// ServicesByName returns copies of the services named name, sorted by ID.
func (a *Agent) ServicesByName(name string) []*structs.NodeService {
	var out []*structs.NodeService
	for _, s := range a.Services() {
		if s.Service == name {
			out = append(out, s)
		}
	}
	return out
}

// Checks returns copies of the registered checks, sorted by ID.
func (a *Agent) Checks() []*structs.HealthCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checksLocked(func(*structs.HealthCheck) bool { return true })
}

// Check returns a copy of the check with id, or nil.
func (a *Agent) Check(id string) *structs.HealthCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.checks[id]; e != nil && !e.deleted {
		return cloneCheck(e.chk)
	}
	return nil
}

// ServiceHealth returns the service with id and the checks that decide
// its health (its own and the node's), or nil when there is no such
// service.
func (a *Agent) ServiceHealth(id string) (*structs.NodeService, []*structs.HealthCheck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.services[id]
	if e == nil || e.deleted {
		return nil, nil
	}
	return cloneService(e.svc), a.checksLocked(func(c *structs.HealthCheck) bool {
		return c.ServiceID == "" || c.ServiceID == id
	})
}

// RunnableChecks returns copies of the checks healthd must run: every
// check with a kind (not maintenance or catalog-only checks), sorted by
// ID.
func (a *Agent) RunnableChecks() []*structs.HealthCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checksLocked(func(c *structs.HealthCheck) bool { return CheckKind(c.Definition) != "" })
}

func (a *Agent) checksLocked(keep func(*structs.HealthCheck) bool) []*structs.HealthCheck {
	out := make([]*structs.HealthCheck, 0, len(a.checks))
	for _, e := range a.checks {
		if !e.deleted && keep(e.chk) {
			out = append(out, cloneCheck(e.chk))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CheckID < out[j].CheckID })
	return out
}

// AggregatedStatus is Consul's summary of a service's checks: maintenance
// if a maintenance check is present, else the worst status; passing when
// there are no checks; "" for an unknown status.
func AggregatedStatus(checks []*structs.HealthCheck) string {
	var warning, critical, maint bool
	for _, c := range checks {
		if c.CheckID == structs.NodeMaintCheckID || strings.HasPrefix(c.CheckID, structs.ServiceMaintPrefix) {
			maint = true
			continue
		}
		switch c.Status {
		case structs.HealthPassing:
		case structs.HealthWarning:
			warning = true
		case structs.HealthCritical:
			critical = true
		default:
			return ""
		}
	}
	switch {
	case maint:
		return structs.HealthMaint
	case critical:
		return structs.HealthCritical
	case warning:
		return structs.HealthWarning
	}
	return structs.HealthPassing
}

// putServiceLocked installs svc under its ID. An identical registration
// from the same source changes nothing (so it neither writes to disk nor
// to the catalog). It reports whether anything changed.
func (a *Agent) putServiceLocked(svc *structs.NodeService, source string) (bool, error) {
	old := a.services[svc.ID]
	if old != nil && !old.deleted && old.source == source && sameService(old.svc, svc) {
		return false, nil
	}
	if a.disk != nil {
		if err := a.disk.saveService(svc, source); err != nil {
			return false, err
		}
	}
	a.services[svc.ID] = &serviceEntry{svc: svc, source: source, rev: a.nextRevLocked()}
	a.notifyLocked()
	return true, nil
}

// putCheckLocked installs chk under its ID, as putServiceLocked.
func (a *Agent) putCheckLocked(chk *structs.HealthCheck, source string) (bool, error) {
	old := a.checks[chk.CheckID]
	if old != nil && !old.deleted && old.source == source && sameCheck(old.chk, chk, false) {
		return false, nil
	}
	if a.disk != nil {
		if err := a.disk.saveCheck(chk, source); err != nil {
			return false, err
		}
	}
	if old != nil {
		stopDeferred(old)
	}
	a.checks[chk.CheckID] = &checkEntry{chk: chk, source: source, rev: a.nextRevLocked()}
	a.notifyLocked()
	return true, nil
}

// deleteServiceLocked marks a service and its checks deleted; the sync
// removes them from the catalog and then forgets them.
func (a *Agent) deleteServiceLocked(id string) {
	e := a.services[id]
	if e == nil || e.deleted {
		return
	}
	if a.disk != nil {
		a.disk.removeService(id)
	}
	a.services[id] = &serviceEntry{svc: e.svc, source: e.source, deleted: true, rev: a.nextRevLocked()}
	for cid, c := range a.checks {
		if c.chk.ServiceID == id && !c.deleted {
			a.deleteCheckLocked(cid)
		}
	}
	a.notifyLocked()
}

// deleteCheckLocked marks a check deleted.
func (a *Agent) deleteCheckLocked(id string) {
	e := a.checks[id]
	if e == nil || e.deleted {
		return
	}
	if a.disk != nil {
		a.disk.removeCheck(id)
	}
	stopDeferred(e)
	a.checks[id] = &checkEntry{chk: e.chk, source: e.source, deleted: true, rev: a.nextRevLocked()}
	a.notifyLocked()
}

func stopDeferred(e *checkEntry) {
	if e.deferred != nil {
		e.deferred.Stop()
		e.deferred = nil
	}
}
