package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// Catalog is what anti-entropy needs from the replicated catalog.
// catalogd implements it over raftd and its store; tests use a fake. All
// methods are safe for concurrent use and give up when ctx ends.
type Catalog interface {
	// NodeRecords returns the catalog's record of node (nil when it is not
	// registered) and its services and checks, at least as fresh as a
	// default-consistency read. Records are not modified by the caller.
	NodeRecords(ctx context.Context, node string) (*structs.Node, []*structs.NodeService, []*structs.HealthCheck, error)
	// Register applies a registration through raft and returns once it is
	// applied. A refusal by the catalog wraps ErrRejected.
	Register(ctx context.Context, req *structs.RegisterRequest) error
	// Deregister applies a deregistration as Register does.
	Deregister(ctx context.Context, req *structs.DeregisterRequest) error
}

// Run keeps the catalog in step with the agent until ctx ends: a full
// diff at once and then every SyncInterval (plus up to 1/16 stagger), and
// the pending changes whenever something changes locally. A failed pass
// (no leader, raftd away) is retried after a backoff, as a full diff. It
// returns nil when ctx ends; Run may be called once. With anti-entropy
// disabled (negative SyncInterval) it only waits for ctx.
func (a *Agent) Run(ctx context.Context) error {
	defer func() {
		a.mu.Lock()
		a.stopped = true
		for _, e := range a.checks {
			stopDeferred(e)
		}
		a.mu.Unlock()
	}()
	if a.cfg.SyncInterval < 0 {
		<-ctx.Done()
		return nil
	}
	full := true
	backoff := a.cfg.RetryMin
	failures := 0
	next := time.NewTimer(a.stagger())
	defer next.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, a.cfg.SyncTimeout)
		var err error
		if full {
			err = a.SyncFull(sctx)
		} else {
			err = a.SyncChanges(sctx)
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			lvl := a.log.Warn
			if failures > 3 {
				lvl = a.log.Debug
			}
			lvl("anti-entropy sync failed; retrying", "err", err, "full", full, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			backoff = min(backoff*2, a.cfg.RetryMax)
			full = true
			continue
		}
		if failures > 0 {
			a.log.Info("anti-entropy sync recovered", "after_failures", failures)
		}
		failures, backoff = 0, a.cfg.RetryMin
		if full {
			next.Reset(a.stagger())
		}
		full = false
		select {
		case <-ctx.Done():
			return nil
		case <-a.trigger:
		case <-next.C:
			full = true
		}
	}
}

// stagger returns the time until the next full sync.
func (a *Agent) stagger() time.Duration {
	d := a.cfg.SyncInterval
	return d + rand.N(d/16+1)
}

// SyncFull diffs the agent against the catalog and writes only what
// differs: local entries missing or different in the catalog are
// registered, and catalog services and checks of this node the agent does
// not have are deregistered (except serfHealth, which the leader owns).
func (a *Agent) SyncFull(ctx context.Context) error {
	if a.cfg.SyncInterval < 0 {
		return nil
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	node, svcs, checks, err := a.cfg.Catalog.NodeRecords(ctx, a.cfg.Node.Name)
	if err != nil {
		return fmt.Errorf("read catalog for node %q: %w", a.cfg.Node.Name, err)
	}
	a.mu.Lock()
	a.diffLocked(node, svcs, checks)
	a.mu.Unlock()
	if err := a.syncChangesLocked(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	a.synced = true
	a.mu.Unlock()
	return nil
}

// SyncChanges writes the local changes not yet in the catalog. Before the
// first full sync it runs one instead, so a restart never rewrites
// entries blindly.
func (a *Agent) SyncChanges(ctx context.Context) error {
	a.mu.Lock()
	synced := a.synced
	a.mu.Unlock()
	if !synced || a.cfg.SyncInterval < 0 {
		return a.SyncFull(ctx)
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	return a.syncChangesLocked(ctx)
}

// diffLocked sets every entry's in-sync flag from the catalog's records,
// and adds deleted entries for catalog records the agent does not have.
func (a *Agent) diffLocked(node *structs.Node, svcs []*structs.NodeService, checks []*structs.HealthCheck) {
	a.nodeInSync = node != nil && a.sameNode(node)

	remote := make(map[string]*structs.NodeService, len(svcs))
	for _, rs := range svcs {
		remote[rs.ID] = rs
		e := a.services[rs.ID]
		if e == nil {
			a.services[rs.ID] = &serviceEntry{svc: cloneService(rs), deleted: true, rev: a.nextRevLocked()}
			continue
		}
		if e.deleted {
			e.inSync = false
			continue
		}
		if e.svc.EnableTagOverride && !sameStrings(e.svc.Tags, rs.Tags) {
			// Tags are the catalog's to manage: take them, as Consul does.
			ns := cloneService(e.svc)
			ns.Tags = cloneStrings(rs.Tags)
			e.svc, e.rev = ns, a.nextRevLocked()
		}
		e.inSync = sameService(e.svc, rs)
	}
	for id, e := range a.services {
		if _, ok := remote[id]; !ok {
			if e.deleted {
				delete(a.services, id)
			} else {
				e.inSync = false
			}
		}
	}

	rchecks := make(map[string]*structs.HealthCheck, len(checks))
	for _, rc := range checks {
		if rc.CheckID == structs.SerfCheckID {
			continue
		}
		rchecks[rc.CheckID] = rc
		e := a.checks[rc.CheckID]
		if e == nil {
			a.checks[rc.CheckID] = &checkEntry{chk: cloneCheck(rc), deleted: true, rev: a.nextRevLocked()}
			continue
		}
		if e.deleted {
			e.inSync = false
			continue
		}
		e.inSync = sameCheck(e.chk, rc, e.deferred != nil)
	}
	for id, e := range a.checks {
		if _, ok := rchecks[id]; !ok {
			if e.deleted {
				delete(a.checks, id)
			} else {
				e.inSync = false
			}
		}
	}
}

// op is one catalog write the sync decided on, with the revisions of the
// entries it covers: they are marked in sync after the write only if
// they did not change meanwhile.
type op struct {
	what     string
	reg      *structs.RegisterRequest
	dereg    *structs.DeregisterRequest
	services map[string]uint64 // service ID → rev
	checks   map[string]uint64 // check ID → rev
	forget   bool              // deleted entries: drop them once written
}

// syncChangesLocked writes what is out of sync: the node, deleted
// services, services (with their pending checks), deleted checks, then
// checks, each in ID order. syncMu is held.
func (a *Agent) syncChangesLocked(ctx context.Context) error {
	ops := a.planSync()
	for _, o := range ops {
		var err error
		if o.reg != nil {
			err = a.cfg.Catalog.Register(ctx, o.reg)
		} else {
			err = a.cfg.Catalog.Deregister(ctx, o.dereg)
		}
		switch {
		case errors.Is(err, ErrRejected):
			// Retrying cannot help; the next full sync tries again.
			a.log.Warn("catalog refused agent sync", "what", o.what, "err", err)
		case err != nil:
			return fmt.Errorf("sync %s: %w", o.what, err)
		default:
			a.log.Debug("synced", "what", o.what)
		}
		a.mu.Lock()
		a.markLocked(o)
		a.mu.Unlock()
	}
	return nil
}

// planSync lists the writes needed now.
func (a *Agent) planSync() []op {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ops []op
	if !a.nodeInSync {
		ops = append(ops, op{what: "node " + a.cfg.Node.Name, reg: a.nodeRequest()})
	}
	// Later writes skip the node: it is in sync, or written first (a
	// failure there ends the pass before them).
	skipNode := true
	svcIDs := slices.Sorted(maps.Keys(a.services))
	checkIDs := slices.Sorted(maps.Keys(a.checks))
	for _, id := range svcIDs {
		if e := a.services[id]; e.deleted && !e.inSync {
			o := op{what: "deregister service " + id, forget: true, services: map[string]uint64{id: e.rev}, checks: map[string]uint64{},
				dereg: &structs.DeregisterRequest{Datacenter: a.cfg.Node.Datacenter, Node: a.cfg.Node.Name, ServiceID: id}}
			// The catalog drops the service's checks with it.
			for cid, c := range a.checks {
				if c.deleted && c.chk.ServiceID == id {
					o.checks[cid] = c.rev
				}
			}
			ops = append(ops, o)
		}
	}
	for _, id := range svcIDs {
		e := a.services[id]
		if e.deleted || e.inSync {
			continue
		}
		req := a.nodeRequest()
		req.SkipNodeUpdate = skipNode
		req.Service = cloneService(e.svc)
		o := op{what: "register service " + id, reg: req, services: map[string]uint64{id: e.rev}, checks: map[string]uint64{}}
		for _, cid := range checkIDs {
			c := a.checks[cid]
			if !c.deleted && !c.inSync && c.chk.ServiceID == id {
				req.Checks = append(req.Checks, cloneCheck(c.chk))
				o.checks[cid] = c.rev
			}
		}
		ops = append(ops, o)
	}
	for _, id := range checkIDs {
		c := a.checks[id]
		if !c.deleted || c.inSync {
			continue
		}
		if s := a.services[c.chk.ServiceID]; c.chk.ServiceID != "" && s != nil && s.deleted {
			continue // goes with its service
		}
		ops = append(ops, op{what: "deregister check " + id, forget: true, checks: map[string]uint64{id: c.rev},
			dereg: &structs.DeregisterRequest{Datacenter: a.cfg.Node.Datacenter, Node: a.cfg.Node.Name, CheckID: id}})
	}
	for _, id := range checkIDs {
		c := a.checks[id]
		if c.deleted || c.inSync {
			continue
		}
		if s := a.services[c.chk.ServiceID]; c.chk.ServiceID != "" && s != nil && !s.inSync {
			continue // goes with its service
		}
		req := a.nodeRequest()
		req.SkipNodeUpdate = skipNode
		req.Check = cloneCheck(c.chk)
		ops = append(ops, op{what: "register check " + id, reg: req, checks: map[string]uint64{id: c.rev}})
	}
	return ops
}

// markLocked records a completed write: entries whose revision did not
// move are in sync (or forgotten, when deleted).
func (a *Agent) markLocked(o op) {
	// Every registration carries the node unless it skipped it.
	if o.reg != nil && !o.reg.SkipNodeUpdate {
		a.nodeInSync = true
	}
	for id, rev := range o.services {
		if e := a.services[id]; e != nil && e.rev == rev {
			if o.forget {
				delete(a.services, id)
			} else {
				e.inSync = true
			}
		}
	}
	for id, rev := range o.checks {
		if e := a.checks[id]; e != nil && e.rev == rev {
			if o.forget {
				delete(a.checks, id)
			} else {
				e.inSync = true
			}
		}
	}
}

// sameNode compares the catalog's node with what the agent registers.
func (a *Agent) sameNode(n *structs.Node) bool {
	me := a.cfg.Node
	return n.ID == me.ID && n.Address == me.Address &&
		sameMap(n.TaggedAddresses, me.TaggedAddresses) && sameMap(n.Meta, me.Meta)
}

// sameService compares two service records, ignoring raft indexes and
// the difference between nil and empty.
func sameService(a, b *structs.NodeService) bool {
	wa, wb := structs.Weights{Passing: 1, Warning: 1}, structs.Weights{Passing: 1, Warning: 1}
	if a.Weights != nil {
		wa = *a.Weights
	}
	if b.Weights != nil {
		wb = *b.Weights
	}
	return a.Kind == b.Kind && a.ID == b.ID && a.Service == b.Service &&
		sameStrings(a.Tags, b.Tags) && a.Address == b.Address &&
		sameMap(a.TaggedAddresses, b.TaggedAddresses) && sameMap(a.Meta, b.Meta) &&
		a.Port == b.Port && wa == wb && a.EnableTagOverride == b.EnableTagOverride
}

// sameCheck compares two check records, ignoring raft indexes and, when
// ignoreOutput, the output.
func sameCheck(a, b *structs.HealthCheck, ignoreOutput bool) bool {
	return a.Node == b.Node && a.CheckID == b.CheckID && a.Name == b.Name &&
		a.Status == b.Status && a.Notes == b.Notes && (ignoreOutput || a.Output == b.Output) &&
		a.ServiceID == b.ServiceID && a.ServiceName == b.ServiceName &&
		sameStrings(a.ServiceTags, b.ServiceTags) && a.Type == b.Type &&
		sameCheckType(a.Definition, b.Definition)
}

func sameCheckType(a, b structs.CheckType) bool {
	if !sameStrings(a.Args, b.Args) || len(a.Header) != len(b.Header) {
		return false
	}
	for k, v := range a.Header {
		w, ok := b.Header[k]
		if !ok || !sameStrings(v, w) {
			return false
		}
	}
	a.Args, b.Args, a.Header, b.Header = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func sameStrings(a, b []string) bool {
	return slices.Equal(a, b) // nil and empty are equal
}

func sameMap[V comparable](a, b map[string]V) bool {
	return maps.Equal(a, b) // nil and empty are equal
}
