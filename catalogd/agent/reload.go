package agent

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/consort-io/consort/pkg/structs"
)

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Files            int // definition files read
	Services, Checks int // service and standalone check definitions applied
	Changed          int // services and checks added or changed
	Removed          int // file-sourced services and checks whose definition is gone
}

// Reload re-reads the definition files: new and changed definitions are
// applied (checks keep their status), and services and checks that came
// from a file but are no longer defined are removed. API registrations
// are left alone. When any file has an error nothing changes and the
// error names the file and line.
func (a *Agent) Reload() (ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	files, err := LoadDefinitions(a.cfg.DefinitionPaths)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w", err)
	}
	res, err := a.applyDefinitionsResult(files)
	if err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	a.log.Info("service definitions reloaded", "files", res.Files, "services", res.Services, "checks", res.Checks,
		"changed", res.Changed, "removed", res.Removed)
	return res, nil
}

func (a *Agent) applyDefinitions(files []FileDefinitions) error {
	_, err := a.applyDefinitionsResult(files)
	return err
}

// applyDefinitionsResult makes the file-sourced entries exactly what files
// define. Checks naming a service must name one defined in the files or
// registered through the API; that is checked before anything changes.
func (a *Agent) applyDefinitionsResult(files []FileDefinitions) (ReloadResult, error) {
	res := ReloadResult{Files: len(files)}
	type svcDef struct {
		source string
		ns     *structs.NodeService
		hcs    []*structs.HealthCheck
	}
	type chkDef struct {
		source string
		line   int
		hc     *structs.HealthCheck
	}
	var svcs []svcDef
	var chks []chkDef
	defined := map[string]bool{}
	for _, f := range files {
		for _, s := range f.Services {
			ns, hcs := a.buildService(s)
			svcs = append(svcs, svcDef{f.File, ns, hcs})
			defined[ns.ID] = true
		}
		for _, c := range f.Checks {
			chks = append(chks, chkDef{f.File, c.Line, c.HealthCheck(a.cfg.Node.Name)})
		}
	}
	res.Services, res.Checks = len(svcs), len(chks)

	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, c := range chks {
		id := c.hc.ServiceID
		if id == "" || defined[id] {
			continue
		}
		// A service only a file defines is going away unless still defined.
		if e := a.services[id]; e == nil || e.deleted || e.source != SourceAPI {
			errs = append(errs, fmt.Errorf("%s:%d: check %q: ServiceID %q does not exist", filepath.Base(c.source), c.line, c.hc.Name, id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}

	checkIDs := map[string]bool{}
	for _, s := range svcs {
		// Checks a file no longer defines go in the sweep below, whichever
		// file (this service's or another) defined them.
		changed, err := a.addServiceLocked(s.ns, s.hcs, s.source, func(*checkEntry) bool { return false })
		if err != nil {
			return res, err
		}
		if changed {
			res.Changed++
		}
		for _, hc := range s.hcs {
			checkIDs[hc.CheckID] = true
		}
	}
	for _, c := range chks {
		changed, err := a.addCheckLocked(c.hc, c.source)
		if err != nil {
			return res, err
		}
		if changed {
			res.Changed++
		}
		checkIDs[c.hc.CheckID] = true
	}
	for id, e := range a.services {
		if !e.deleted && e.source != SourceAPI && !defined[id] {
			a.deleteServiceLocked(id)
			res.Removed++
		}
	}
	for id, e := range a.checks {
		if !e.deleted && e.source != SourceAPI && !checkIDs[id] {
			a.deleteCheckLocked(id)
			res.Removed++
		}
	}
	if res.Changed+res.Removed > 0 {
		a.TriggerSync()
	}
	return res, nil
}
