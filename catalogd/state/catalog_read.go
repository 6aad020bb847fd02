package state

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Catalog reads. Each takes a watch set (may be nil) that gets the
// channels a blocking query waits on, and AbandonCh; each returns Consul's
// index for its result, never 0. Records are shared with the store: do not
// modify them. Results are in node name order, then service or check ID
// (compared case-insensitively, as the catalog compares them).
//
// Service-level reads (ServiceNodes, CheckServiceNodes, ServiceChecks)
// answer the service's own index, raised by any change to its instances,
// their checks or their nodes, and watch only that index row, so they wake
// only for their service. For a service with no instances they answer the
// index of the latest service extinction (1 if none ever happened: Consul
// answers the catalog's index there, which moves with every write) and
// wake only when an instance of that name is registered.

// readGen opens a read transaction on the live generation and adds its
// abandon channel to ws.
func (s *Store) readGen(ws memdb.WatchSet) (*generation, *memdb.Txn) {
	g := s.cur.Load()
	ws.Add(g.abandon)
	return g, g.db.Txn(false)
}

// Nodes returns every node, or those whose meta holds every pair of
// nodeMeta, with the nodes table index.
func (s *Store) Nodes(ws memdb.WatchSet, nodeMeta map[string]string) (uint64, []*structs.Node, error) {
	_, tx := s.readGen(ws)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableNodes)
	it, err := nodesIterTxn(tx, nodeMeta)
	if err != nil {
		return 0, nil, fmt.Errorf("failed nodes lookup: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*structs.Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if n := raw.(*structs.Node); satisfiesMeta(n.Meta, nodeMeta) {
			out = append(out, n)
		}
	}
	return atLeastOne(idx), out, nil
}

// nodesIterTxn iterates all nodes, or with meta filters the nodes holding
// the first pair (in key order); callers check the rest.
func nodesIterTxn(tx *memdb.Txn, nodeMeta map[string]string) (memdb.ResultIterator, error) {
	if len(nodeMeta) == 0 {
		return tx.Get(tableNodes, indexID)
	}
	k := sortedKeys(nodeMeta)[0]
	return tx.Get(tableNodes, indexMeta, k, nodeMeta[k])
}

// GetNode returns the node called name (any case), or nil, with the nodes
// table index.
func (s *Store) GetNode(ws memdb.WatchSet, name string) (uint64, *structs.Node, error) {
	g, tx := s.readGen(ws)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableNodes)
	n, err := s.nodeWatchTxn(g, tx, ws, name)
	if err != nil {
		return 0, nil, err
	}
	return atLeastOne(idx), n, nil
}

// nodeWatchTxn looks a node up by name and watches it, or its name while
// it is missing.
func (s *Store) nodeWatchTxn(g *generation, tx *memdb.Txn, ws memdb.WatchSet, name string) (*structs.Node, error) {
	if name == "" {
		return nil, nil
	}
	ch, raw, err := tx.FirstWatch(tableNodes, indexID, name)
	if err != nil {
		return nil, fmt.Errorf("node lookup failed: %w", err)
	}
	if n, ok := raw.(*structs.Node); ok {
		ws.Add(ch)
		return n, nil
	}
	s.watchMissing(g, ws, nodeWatchKey(name), func(tx *memdb.Txn) bool {
		n, _ := getNodeTxn(tx, name)
		return n != nil
	})
	return nil, nil
}

// Services returns each service name with the union of its instances'
// tags (sorted, without repeats; empty, not nil, when there are none),
// counting only instances on nodes matching nodeMeta. The index is the
// services table's, or with nodeMeta the higher of it and the nodes
// table's, as in Consul.
func (s *Store) Services(ws memdb.WatchSet, nodeMeta map[string]string) (uint64, map[string][]string, error) {
	_, tx := s.readGen(ws)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableServices)
	all, err := tx.Get(tableServices, indexID)
	if err != nil {
		return 0, nil, fmt.Errorf("failed querying services: %w", err)
	}
	ws.Add(all.WatchCh())

	tags := make(map[string]map[string]struct{})
	add := func(e *serviceEntry) {
		set := tags[e.Service.Service]
		if set == nil {
			set = make(map[string]struct{})
			tags[e.Service.Service] = set
		}
		for _, t := range e.Service.Tags {
			set[t] = struct{}{}
		}
	}
	if len(nodeMeta) == 0 {
		for raw := all.Next(); raw != nil; raw = all.Next() {
			add(raw.(*serviceEntry))
		}
	} else {
		idx = max(idx, maxIndexTxn(tx, tableNodes))
		nodes, err := nodesIterTxn(tx, nodeMeta)
		if err != nil {
			return 0, nil, fmt.Errorf("failed nodes lookup: %w", err)
		}
		ws.Add(nodes.WatchCh())
		for raw := nodes.Next(); raw != nil; raw = nodes.Next() {
			n := raw.(*structs.Node)
			if !satisfiesMeta(n.Meta, nodeMeta) {
				continue
			}
			svcs, err := collect[*serviceEntry](tx, tableServices, indexIDPrefix, n.Node)
			if err != nil {
				return 0, nil, fmt.Errorf("failed querying services: %w", err)
			}
			for _, e := range svcs {
				add(e)
			}
		}
	}
	out := make(map[string][]string, len(tags))
	for name, set := range tags {
		list := make([]string, 0, len(set))
		for t := range set {
			list = append(list, t)
		}
		slices.Sort(list)
		out[name] = list
	}
	return atLeastOne(idx), out, nil
}

// ServiceNodes returns the instances of service (name in any case) that
// carry every tag in tags (case-insensitive) on nodes matching nodeMeta,
// with their nodes.
func (s *Store) ServiceNodes(ws memdb.WatchSet, service string, tags []string, nodeMeta map[string]string) (uint64, []ServiceNode, error) {
	g, tx := s.readGen(ws)
	defer tx.Abort()
	idx, entries, err := s.serviceInstancesTxn(g, tx, ws, service, tags, false)
	if err != nil {
		return 0, nil, err
	}
	var out []ServiceNode
	for _, e := range entries {
		n, err := instanceNodeTxn(tx, e)
		if err != nil {
			return 0, nil, err
		}
		if satisfiesMeta(n.Meta, nodeMeta) {
			out = append(out, ServiceNode{Node: n, Service: e.Service})
		}
	}
	return idx, out, nil
}

// CheckServiceNodes is ServiceNodes with each instance's checks: the
// node's node-level checks, then the instance's own. It backs
// /v1/health/service.
func (s *Store) CheckServiceNodes(ws memdb.WatchSet, service string, tags []string, nodeMeta map[string]string) (uint64, []CheckServiceNode, error) {
	g, tx := s.readGen(ws)
	defer tx.Abort()
	idx, entries, err := s.serviceInstancesTxn(g, tx, ws, service, tags, true)
	if err != nil {
		return 0, nil, err
	}
	var out []CheckServiceNode
	for _, e := range entries {
		n, err := instanceNodeTxn(tx, e)
		if err != nil {
			return 0, nil, err
		}
		if !satisfiesMeta(n.Meta, nodeMeta) {
			continue
		}
		checks, err := collect[*structs.HealthCheck](tx, tableChecks, indexNodeService, e.Node, "")
		if err != nil {
			return 0, nil, fmt.Errorf("failed checks lookup: %w", err)
		}
		own, err := collect[*structs.HealthCheck](tx, tableChecks, indexNodeService, e.Node, e.Service.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("failed checks lookup: %w", err)
		}
		out = append(out, CheckServiceNode{Node: n, Service: e.Service, Checks: append(checks, own...)})
	}
	return idx, out, nil
}

// serviceInstancesTxn returns the instances of service carrying tags, and
// the service's index and watch (see the comment at the top of the file).
func (s *Store) serviceInstancesTxn(g *generation, tx *memdb.Txn, ws memdb.WatchSet, service string, tags []string, checks bool) (uint64, []*serviceEntry, error) {
	it, err := tx.Get(tableServices, indexServiceName, service)
	if err != nil {
		return 0, nil, fmt.Errorf("failed service lookup: %w", err)
	}
	exists := false
	var out []*serviceEntry
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*serviceEntry)
		exists = true
		if hasTags(e.Service.Tags, tags) {
			out = append(out, e)
		}
	}
	idx := s.serviceIndexWatchTxn(g, tx, ws, service, exists, checks, it.WatchCh())
	return idx, out, nil
}

// serviceIndexWatchTxn is Consul's maxIndexAndWatchChForService, with the
// watch added to ws. iterCh is the fallback watch for an existing service
// without an index row (not expected).
func (s *Store) serviceIndexWatchTxn(g *generation, tx *memdb.Txn, ws memdb.WatchSet, service string, exists, checks bool, iterCh <-chan struct{}) uint64 {
	if !exists {
		s.watchMissing(g, ws, serviceWatchKey(service), func(tx *memdb.Txn) bool {
			raw, err := tx.First(tableServices, indexServiceName, service)
			return err != nil || raw != nil
		})
		return atLeastOne(maxIndexTxn(tx, indexServiceExtinction))
	}
	ch, raw, err := tx.FirstWatch(tableIndex, indexID, serviceIndexKey(service))
	if e, ok := raw.(*indexEntry); ok && err == nil {
		ws.Add(ch)
		return atLeastOne(e.Value)
	}
	ws.Add(iterCh)
	if checks {
		return atLeastOne(maxIndexTxn(tx, tableChecks, tableServices, tableNodes))
	}
	return atLeastOne(maxIndexTxn(tx, tableServices, tableNodes))
}

// instanceNodeTxn returns the node of a service instance, which must
// exist.
func instanceNodeTxn(tx *memdb.Txn, e *serviceEntry) (*structs.Node, error) {
	n, err := getNodeTxn(tx, e.Node)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("service %q on node %q: %w", e.Service.ID, e.Node, ErrMissingNode)
	}
	return n, nil
}

// NodeServices returns the node called node (or, if there is none, the
// only node whose ID starts with it) and its services. The index is the
// node's own, raised by changes to it and its services; for a missing node
// (nil node, no services) the index of the latest node removal.
func (s *Store) NodeServices(ws memdb.WatchSet, node string) (uint64, *structs.Node, []*structs.NodeService, error) {
	g, tx := s.readGen(ws)
	defer tx.Abort()
	n, err := getNodeTxn(tx, node)
	if err != nil {
		return 0, nil, nil, err
	}
	if n == nil {
		if n, err = nodeByIDPrefixTxn(tx, node); err != nil {
			return 0, nil, nil, err
		}
	}
	if n == nil {
		s.watchMissing(g, ws, nodeWatchKey(node), func(tx *memdb.Txn) bool {
			n, _ := getNodeTxn(tx, node)
			return n != nil
		})
		return atLeastOne(maxIndexTxn(tx, indexNodeExtinction)), nil, nil, nil
	}
	nodeCh, _, err := tx.FirstWatch(tableNodes, indexID, n.Node)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("node lookup failed: %w", err)
	}
	ws.Add(nodeCh)
	it, err := tx.Get(tableServices, indexIDPrefix, n.Node)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("failed querying services for node %q: %w", n.Node, err)
	}
	var idx uint64
	ch, row, err := tx.FirstWatch(tableIndex, indexID, nodeIndexKey(n.Node))
	if e, ok := row.(*indexEntry); ok && err == nil {
		ws.Add(ch)
		idx = e.Value
	} else {
		ws.Add(it.WatchCh())
		idx = maxIndexTxn(tx, tableNodes, tableServices)
	}
	var svcs []*structs.NodeService
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svcs = append(svcs, raw.(*serviceEntry).Service)
	}
	return atLeastOne(idx), n, svcs, nil
}

// nodeByIDPrefixTxn is Consul's fallback lookup of a node by ID: at least
// two characters, cut to an even length, matching exactly one node.
func nodeByIDPrefixTxn(tx *memdb.Txn, prefix string) (*structs.Node, error) {
	if len(prefix) < 2 {
		return nil, nil
	}
	if len(prefix)%2 != 0 {
		prefix = prefix[:len(prefix)-1]
	}
	it, err := tx.Get(tableNodes, indexUUIDPrefix, prefix)
	if err != nil {
		return nil, fmt.Errorf("node lookup by ID failed: %w", err)
	}
	first := it.Next()
	if first == nil || it.Next() != nil {
		return nil, nil
	}
	return first.(*structs.Node), nil
}

// NodeChecks returns the checks of node, with the checks table index.
func (s *Store) NodeChecks(ws memdb.WatchSet, node string) (uint64, []*structs.HealthCheck, error) {
	_, tx := s.readGen(ws)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableChecks)
	it, err := tx.Get(tableChecks, indexIDPrefix, node)
	if err != nil {
		return 0, nil, fmt.Errorf("failed check lookup: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*structs.HealthCheck
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*structs.HealthCheck))
	}
	return atLeastOne(idx), out, nil
}

// ServiceChecks returns the checks of every instance of service (by the
// service name the checks carry) on nodes matching nodeMeta, with the
// service's index.
func (s *Store) ServiceChecks(ws memdb.WatchSet, service string, nodeMeta map[string]string) (uint64, []*structs.HealthCheck, error) {
	g, tx := s.readGen(ws)
	defer tx.Abort()
	it, err := tx.Get(tableChecks, indexServiceName, service)
	if err != nil {
		return 0, nil, fmt.Errorf("failed check lookup: %w", err)
	}
	out, err := filterChecksTxn(tx, it, nodeMeta)
	if err != nil {
		return 0, nil, err
	}
	first, err := tx.First(tableServices, indexServiceName, service)
	if err != nil {
		return 0, nil, fmt.Errorf("failed service lookup: %w", err)
	}
	exists := first != nil
	if !exists && len(out) > 0 {
		// Checks left with the name of a renamed service.
		ws.Add(it.WatchCh())
	}
	idx := s.serviceIndexWatchTxn(g, tx, ws, service, exists, true, it.WatchCh())
	return idx, out, nil
}

// ChecksInState returns the checks with status state ("any" for all) on
// nodes matching nodeMeta. The index is the checks table's, or with
// nodeMeta the higher of it and the nodes table's (a node meta change can
// change the result).
func (s *Store) ChecksInState(ws memdb.WatchSet, state string, nodeMeta map[string]string) (uint64, []*structs.HealthCheck, error) {
	_, tx := s.readGen(ws)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableChecks)
	var (
		it  memdb.ResultIterator
		err error
	)
	if state == structs.HealthAny {
		it, err = tx.Get(tableChecks, indexID)
	} else {
		it, err = tx.Get(tableChecks, indexStatus, state)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("failed check lookup: %w", err)
	}
	ws.Add(it.WatchCh())
	if len(nodeMeta) > 0 {
		idx = max(idx, maxIndexTxn(tx, tableNodes))
		nodes, err := tx.Get(tableNodes, indexID)
		if err != nil {
			return 0, nil, fmt.Errorf("failed nodes lookup: %w", err)
		}
		ws.Add(nodes.WatchCh())
	}
	out, err := filterChecksTxn(tx, it, nodeMeta)
	if err != nil {
		return 0, nil, err
	}
	return atLeastOne(idx), out, nil
}

// filterChecksTxn collects checks whose node matches nodeMeta.
func filterChecksTxn(tx *memdb.Txn, it memdb.ResultIterator, nodeMeta map[string]string) ([]*structs.HealthCheck, error) {
	var out []*structs.HealthCheck
	for raw := it.Next(); raw != nil; raw = it.Next() {
		hc := raw.(*structs.HealthCheck)
		if len(nodeMeta) > 0 {
			n, err := getNodeTxn(tx, hc.Node)
			if err != nil {
				return nil, err
			}
			if n == nil {
				return nil, fmt.Errorf("check %q on node %q: %w", hc.CheckID, hc.Node, ErrMissingNode)
			}
			if !satisfiesMeta(n.Meta, nodeMeta) {
				continue
			}
		}
		out = append(out, hc)
	}
	return out, nil
}

// satisfiesMeta is Consul's SatisfiesMetaFilters: every pair present.
func satisfiesMeta(meta, filters map[string]string) bool {
	for k, v := range filters {
		if w, ok := meta[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// hasTags reports whether every wanted tag is among tags, ignoring case
// (Consul's serviceTagsFilter).
func hasTags(tags, want []string) bool {
	for _, w := range want {
		found := false
		for _, t := range tags {
			if strings.EqualFold(t, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
