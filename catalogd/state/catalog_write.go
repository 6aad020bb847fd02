package state

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// catalogTxn is one write (catalog, session, lock or txn command): the
// memdb transaction, the raft index it applies at, the writer's time, and
// what it changed, in order. Its methods follow
// Consul's ensure*Txn and delete*Txn (agent/consul/state/catalog.go),
// including which index-table rows each change raises, except Consul's
// per-kind rows ("service_kind.*", read only by its service dump by kind,
// which consort does not have).
type catalogTxn struct {
	tx  *memdb.Txn
	idx uint64
	// now is the writer's time (unix nanoseconds) for lock-delays and
	// renew times, valid once nowSet; see setNow and clock.
	now     int64
	nowSet  bool
	changes []Change
	// created lists name-watch keys of nodes and services written, so
	// blocking reads on a name that was missing wake (see nameWatches).
	created []string
}

// register is Consul's ensureRegistrationTxn after the endpoint's checks:
// the node (created if missing; otherwise updated only if the request
// changes it and SkipNodeUpdate is not set), then the service, then the
// checks, all or nothing.
func (c *catalogTxn) register(req *structs.RegisterRequest) error {
	checks, err := prepareRegisterTxn(c.tx, req)
	if err != nil {
		return err
	}
	node := &structs.Node{
		ID:              req.ID,
		Node:            req.Node,
		Address:         req.Address,
		Datacenter:      req.Datacenter,
		TaggedAddresses: req.TaggedAddresses,
		Meta:            req.NodeMeta,
	}
	existing, err := getNodeTxn(c.tx, req.Node)
	if err != nil {
		return err
	}
	if existing == nil || changesNode(req, existing) {
		if err := c.ensureNode(node); err != nil {
			return fmt.Errorf("failed inserting node: %s", err)
		}
	}
	if req.Service != nil {
		if err := c.ensureService(req.Node, req.Service); err != nil {
			return fmt.Errorf("failed inserting service: %s", err)
		}
	}
	for _, chk := range checks {
		if err := c.ensureCheck(chk); err != nil {
			return fmt.Errorf("failed inserting check on node %q: %v", chk.Node, err)
		}
	}
	return nil
}

// changesNode is Consul's RegisterRequest.ChangesNode for an existing node.
func changesNode(r *structs.RegisterRequest, n *structs.Node) bool {
	if r.SkipNodeUpdate {
		return false
	}
	return r.ID != n.ID ||
		!strings.EqualFold(r.Node, n.Node) ||
		r.Address != n.Address ||
		r.Datacenter != n.Datacenter ||
		!mapsEqual(r.TaggedAddresses, n.TaggedAddresses) ||
		!mapsEqual(r.NodeMeta, n.Meta)
}

// ensureNode is Consul's ensureNodeTxn: a node ID already held by a node of
// another name renames that node (its services and checks go with the old
// name); a name held by a healthy node with another ID is refused.
func (c *catalogTxn) ensureNode(node *structs.Node) error {
	var n *structs.Node
	if node.ID != "" {
		byID, err := getNodeByIDTxn(c.tx, node.ID)
		if err != nil {
			return err
		}
		if byID != nil {
			n = byID
			if !strings.EqualFold(n.Node, node.Node) {
				if err := c.noSimilarName(node, false); err != nil {
					return fmt.Errorf("Error while renaming Node ID: %q (%s): %s", node.ID, node.Address, err)
				}
				if err := c.deleteNode(n.Node); err != nil {
					return fmt.Errorf("Error while renaming Node ID: %q (%s) from %s to %s: %w",
						node.ID, node.Address, n.Node, node.Node, err)
				}
			}
		} else if err := c.noSimilarName(node, true); err != nil {
			return fmt.Errorf("Error while renaming Node ID: %q: %s", node.ID, err)
		}
	}
	prior, err := getNodeTxn(c.tx, node.Node)
	if err != nil {
		return err
	}
	if n == nil {
		n = prior
	}
	if n != nil {
		node.CreateIndex, node.ModifyIndex = n.CreateIndex, n.ModifyIndex
		if sameNode(node, n) {
			return nil
		}
		node.ModifyIndex = c.idx
	} else {
		node.CreateIndex, node.ModifyIndex = c.idx, c.idx
	}
	if err := c.tx.Insert(tableNodes, node); err != nil {
		return fmt.Errorf("failed inserting node: %s", err)
	}
	// Node data shows in health results, so every service on the node
	// moves too.
	if err := c.bump(tableNodes, nodeIndexKey(node.Node)); err != nil {
		return err
	}
	if err := c.bumpServicesOfNode(node.Node); err != nil {
		return err
	}
	op := OpRegister
	if prior != nil {
		op = OpUpdate
	}
	c.changes = append(c.changes, Change{Kind: ChangeNode, Op: op, Node: node.Node})
	c.created = append(c.created, nodeWatchKey(node.Node))
	return nil
}

// noSimilarName is Consul's ensureNoNodeWithSimilarNameTxn: another node of
// the same name but a different ID keeps its name while its serfHealth
// check is not critical (a node without one may be taken over), unless it
// has no ID and allowClashWithoutID is set.
func (c *catalogTxn) noSimilarName(node *structs.Node, allowClashWithoutID bool) error {
	enode, err := getNodeTxn(c.tx, node.Node)
	if err != nil || enode == nil || enode.ID == node.ID {
		return err
	}
	serf, err := getCheckTxn(c.tx, enode.Node, structs.SerfCheckID)
	if err != nil {
		return fmt.Errorf("Cannot get status of node %s: %s", enode.Node, err)
	}
	healthy := serf != nil && serf.Status != structs.HealthCritical
	if !(enode.ID == "" && allowClashWithoutID) && healthy {
		return fmt.Errorf("Node name %s is reserved by node %s with name %s (%s)", node.Node, enode.ID, enode.Node, enode.Address)
	}
	return nil
}

// ensureService is Consul's ensureServiceTxn: an unchanged service is not
// written (anti-entropy relies on that); otherwise it keeps CreateIndex and
// takes ModifyIndex = idx. svc is stored as is and must not be touched
// afterwards.
func (c *catalogTxn) ensureService(nodeName string, svc *structs.NodeService) error {
	if err := validateServiceMeta(svc.Meta); err != nil {
		return fmt.Errorf("Invalid Service Meta for node %s and serviceID %s: %v", nodeName, svc.ID, err)
	}
	n, err := getNodeTxn(c.tx, nodeName)
	if err != nil {
		return err
	}
	if n == nil {
		return ErrMissingNode
	}
	existing, err := getServiceTxn(c.tx, nodeName, svc.ID)
	if err != nil {
		return err
	}
	entry := &serviceEntry{Node: nodeName, Service: svc}
	op := OpRegister
	if existing != nil {
		svc.CreateIndex, svc.ModifyIndex = existing.Service.CreateIndex, existing.Service.ModifyIndex
		if sameServiceEntry(entry, existing) {
			return nil
		}
		op = OpUpdate
	} else {
		svc.CreateIndex = c.idx
	}
	svc.ModifyIndex = c.idx
	if err := c.tx.Insert(tableServices, entry); err != nil {
		return fmt.Errorf("failed inserting service: %s", err)
	}
	if err := c.bump(tableServices, serviceIndexKey(svc.Service), tableNodes, nodeIndexKey(nodeName)); err != nil {
		return err
	}
	// Consul leaves the old name's index alone when an instance is
	// renamed; its watchers must wake too, and the name may have died out.
	if existing != nil && lower(existing.Service.Service) != lower(svc.Service) {
		if err := c.serviceGone(existing.Service.Service); err != nil {
			return err
		}
	}
	c.changes = append(c.changes, Change{Kind: ChangeService, Op: op, Node: nodeName, ServiceID: svc.ID, ServiceName: svc.Service})
	c.created = append(c.created, serviceWatchKey(svc.Service))
	return nil
}

// ensureCheck is Consul's ensureCheckTxn: status defaults to critical; a
// service check takes its service's name and tags and needs the service;
// an unchanged check is not written. A changed check raises the index of
// its service, or of every service on the node for a node check, so only
// blocking queries on those services wake.
func (c *catalogTxn) ensureCheck(hc *structs.HealthCheck) error {
	existing, err := getCheckTxn(c.tx, hc.Node, hc.CheckID)
	if err != nil {
		return err
	}
	if existing != nil {
		hc.CreateIndex, hc.ModifyIndex = existing.CreateIndex, existing.ModifyIndex
	} else {
		hc.CreateIndex = c.idx
	}
	if hc.Status == "" {
		hc.Status = structs.HealthCritical
	}
	n, err := getNodeTxn(c.tx, hc.Node)
	if err != nil {
		return err
	}
	if n == nil {
		return ErrMissingNode
	}
	if hc.ServiceID != "" {
		svc, err := getServiceTxn(c.tx, hc.Node, hc.ServiceID)
		if err != nil {
			return err
		}
		if svc == nil {
			return ErrMissingService
		}
		hc.ServiceName = svc.Service.Service
		hc.ServiceTags = svc.Service.Tags
	}
	// Consul invalidates the check's sessions whenever it is written as
	// critical, changed or not (a session cannot be tied to a check that
	// is critical already, so in practice only on the change).
	critical := hc.Status == structs.HealthCritical
	if existing != nil && sameCheck(existing, hc) {
		if critical {
			return c.invalidateCheckSessions(hc.Node, hc.CheckID, ReasonCheckCritical)
		}
		return nil
	}
	if err := c.bumpCheckServices(hc); err != nil {
		return err
	}
	// A check moved to another service (or between service and node)
	// changes the results of the one it left too; Consul misses that.
	if existing != nil && (lower(existing.ServiceID) != lower(hc.ServiceID) || lower(existing.ServiceName) != lower(hc.ServiceName)) {
		if err := c.bumpCheckServices(existing); err != nil {
			return err
		}
	}
	hc.ModifyIndex = c.idx
	if err := c.tx.Insert(tableChecks, hc); err != nil {
		return fmt.Errorf("failed inserting check: %s", err)
	}
	if err := c.bump(tableChecks); err != nil {
		return err
	}
	ch := Change{Kind: ChangeCheck, Op: OpRegister, Node: hc.Node, CheckID: hc.CheckID,
		ServiceID: hc.ServiceID, ServiceName: hc.ServiceName, NewStatus: hc.Status, Output: hc.Output}
	if existing != nil {
		ch.Op, ch.OldStatus = OpUpdate, existing.Status
	}
	c.changes = append(c.changes, ch)
	if critical {
		return c.invalidateCheckSessions(hc.Node, hc.CheckID, ReasonCheckCritical)
	}
	return nil
}

// bumpCheckServices raises the indexes of the services whose health hc
// takes part in: its own service, or all services of its node.
func (c *catalogTxn) bumpCheckServices(hc *structs.HealthCheck) error {
	if hc.ServiceID == "" {
		return c.bumpServicesOfNode(hc.Node)
	}
	svc, err := getServiceTxn(c.tx, hc.Node, hc.ServiceID)
	if err != nil {
		return err
	}
	if svc != nil {
		if err := c.bump(serviceIndexKey(svc.Service.Service)); err != nil {
			return err
		}
	}
	// A check keeps the service name it was written with; if the service
	// was renamed since, the old name's results hold the check too.
	if svc == nil || lower(svc.Service.Service) != lower(hc.ServiceName) {
		return c.bumpIfServiceExists(hc.ServiceName)
	}
	return nil
}

// bumpServicesOfNode is Consul's updateAllServiceIndexesOfNode.
func (c *catalogTxn) bumpServicesOfNode(node string) error {
	it, err := c.tx.Get(tableServices, indexIDPrefix, node)
	if err != nil {
		return fmt.Errorf("failed updating services for node %s: %s", node, err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*serviceEntry)
		if err := c.bump(serviceIndexKey(e.Service.Service)); err != nil {
			return err
		}
	}
	return nil
}

// bumpIfServiceExists raises a service's index if it has instances; a row
// for a name without instances would outlive it.
func (c *catalogTxn) bumpIfServiceExists(name string) error {
	if name == "" {
		return nil
	}
	raw, err := c.tx.First(tableServices, indexServiceName, name)
	if err != nil {
		return fmt.Errorf("failed service lookup: %s", err)
	}
	if raw == nil {
		return nil
	}
	return c.bump(serviceIndexKey(name))
}

// serviceGone handles an instance of name leaving (deleted or renamed):
// with instances left its index rises; with none its row goes and the
// service extinction index rises, so a blocking read of the now missing
// service returns.
func (c *catalogTxn) serviceGone(name string) error {
	raw, err := c.tx.First(tableServices, indexServiceName, name)
	if err != nil {
		return fmt.Errorf("Could not find any service %s: %s", name, err)
	}
	if raw != nil {
		return c.bump(serviceIndexKey(name))
	}
	if err := c.dropIndexRow(serviceIndexKey(name)); err != nil {
		return err
	}
	return c.bump(indexServiceExtinction)
}

// deleteNode is Consul's deleteNodeTxn: the node's services (each with
// its checks), then its remaining checks, then the node.
func (c *catalogTxn) deleteNode(name string) error {
	n, err := getNodeTxn(c.tx, name)
	if err != nil || n == nil {
		return err
	}
	services, err := collect[*serviceEntry](c.tx, tableServices, indexIDPrefix, name)
	if err != nil {
		return fmt.Errorf("failed service lookup: %s", err)
	}
	for _, e := range services {
		if err := c.bump(serviceIndexKey(e.Service.Service)); err != nil {
			return err
		}
	}
	for _, e := range services {
		if err := c.deleteService(name, e.Service.ID); err != nil {
			return err
		}
	}
	checks, err := collect[*structs.HealthCheck](c.tx, tableChecks, indexIDPrefix, name)
	if err != nil {
		return fmt.Errorf("failed check lookup: %s", err)
	}
	for _, hc := range checks {
		if err := c.deleteCheck(name, hc.CheckID); err != nil {
			return err
		}
	}
	if err := c.tx.Delete(tableNodes, n); err != nil {
		return fmt.Errorf("failed deleting node: %s", err)
	}
	if err := c.bump(tableNodes); err != nil {
		return err
	}
	if err := c.dropIndexRow(nodeIndexKey(n.Node)); err != nil {
		return err
	}
	if err := c.bump(indexNodeExtinction); err != nil {
		return err
	}
	c.changes = append(c.changes, Change{Kind: ChangeNode, Op: OpDeregister, Node: n.Node})
	return c.invalidateNodeSessions(name)
}

// deleteService is Consul's deleteServiceTxn: the service's checks, then
// the service; the last instance of a name takes its index row with it.
func (c *catalogTxn) deleteService(nodeName, serviceID string) error {
	e, err := getServiceTxn(c.tx, nodeName, serviceID)
	if err != nil || e == nil {
		return err
	}
	checks, err := collect[*structs.HealthCheck](c.tx, tableChecks, indexNodeService, nodeName, serviceID)
	if err != nil {
		return fmt.Errorf("failed service check lookup: %s", err)
	}
	for _, hc := range checks {
		if err := c.deleteCheck(nodeName, hc.CheckID); err != nil {
			return err
		}
	}
	if err := c.bump(tableChecks); err != nil {
		return err
	}
	if err := c.tx.Delete(tableServices, e); err != nil {
		return fmt.Errorf("failed deleting service: %s", err)
	}
	svc := e.Service
	if err := c.bump(tableServices, tableNodes, nodeIndexKey(nodeName)); err != nil {
		return err
	}
	if err := c.serviceGone(svc.Service); err != nil {
		return err
	}
	c.changes = append(c.changes, Change{Kind: ChangeService, Op: OpDeregister, Node: e.Node, ServiceID: svc.ID, ServiceName: svc.Service})
	return nil
}

// deleteCheck is Consul's deleteCheckTxn.
func (c *catalogTxn) deleteCheck(node, checkID string) error {
	hc, err := getCheckTxn(c.tx, node, checkID)
	if err != nil || hc == nil {
		return err
	}
	if err := c.bumpCheckServices(hc); err != nil {
		return err
	}
	if hc.ServiceID == "" {
		if err := c.bump(tableServices); err != nil {
			return err
		}
	}
	if err := c.tx.Delete(tableChecks, hc); err != nil {
		return fmt.Errorf("failed removing check: %s", err)
	}
	if err := c.bump(tableChecks); err != nil {
		return err
	}
	c.changes = append(c.changes, Change{Kind: ChangeCheck, Op: OpDeregister, Node: hc.Node, CheckID: hc.CheckID,
		ServiceID: hc.ServiceID, ServiceName: hc.ServiceName, OldStatus: hc.Status, Output: hc.Output})
	return c.invalidateCheckSessions(hc.Node, hc.CheckID, ReasonCheckDeleted)
}

// bump records idx as the latest change of each index-table row.
func (c *catalogTxn) bump(keys ...string) error {
	for _, k := range keys {
		if err := setIndexTxn(c.tx, k, c.idx); err != nil {
			return err
		}
	}
	return nil
}

// dropIndexRow removes an index-table row if present.
func (c *catalogTxn) dropIndexRow(key string) error {
	raw, err := c.tx.First(tableIndex, indexID, key)
	if err != nil || raw == nil {
		return err
	}
	if err := c.tx.Delete(tableIndex, raw); err != nil {
		return fmt.Errorf("failed deleting index %q: %w", key, err)
	}
	return nil
}

// collect reads every row matching a lookup before the caller deletes
// any (deleting while iterating would disturb the iterator).
func collect[T any](tx *memdb.Txn, table, index string, args ...any) ([]T, error) {
	it, err := tx.Get(table, index, args...)
	if err != nil {
		return nil, err
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out, nil
}

func getNodeTxn(tx *memdb.Txn, name string) (*structs.Node, error) {
	if name == "" {
		return nil, nil
	}
	raw, err := tx.First(tableNodes, indexID, name)
	if err != nil {
		return nil, fmt.Errorf("node lookup failed: %s", err)
	}
	n, _ := raw.(*structs.Node)
	return n, nil
}

func getNodeByIDTxn(tx *memdb.Txn, id string) (*structs.Node, error) {
	raw, err := tx.First(tableNodes, indexUUID, id)
	if err != nil {
		return nil, fmt.Errorf("node lookup by ID failed: %s", err)
	}
	n, _ := raw.(*structs.Node)
	return n, nil
}

func getServiceTxn(tx *memdb.Txn, node, id string) (*serviceEntry, error) {
	raw, err := tx.First(tableServices, indexID, node, id)
	if err != nil {
		return nil, fmt.Errorf("failed service lookup: %s", err)
	}
	e, _ := raw.(*serviceEntry)
	return e, nil
}

func getCheckTxn(tx *memdb.Txn, node, id string) (*structs.HealthCheck, error) {
	raw, err := tx.First(tableChecks, indexID, node, id)
	if err != nil {
		return nil, fmt.Errorf("failed health check lookup: %s", err)
	}
	hc, _ := raw.(*structs.HealthCheck)
	return hc, nil
}
