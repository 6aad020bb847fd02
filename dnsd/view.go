package dnsd

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Health statuses as catalogd writes them.
const (
	statusPassing  = "passing"
	statusWarning  = "warning"
	statusCritical = "critical"
	statusMaint    = "maintenance"
)

// The JSON below is the part of catalogd's Consul-shaped answers that dnsd
// reads; unknown fields are ignored, so catalogd may add any.

// nodeJSON is one element of /v1/catalog/nodes, and the Node of a
// /v1/health/service entry.
type nodeJSON struct {
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
}

// weightsJSON is Service.Weights.
type weightsJSON struct {
	Passing int
	Warning int
}

// serviceJSON is the Service of a /v1/health/service entry.
type serviceJSON struct {
	ID      string
	Service string
	Tags    []string
	Address string
	Port    int
	Weights *weightsJSON
}

// checkJSON is one of an entry's Checks.
type checkJSON struct {
	CheckID   string
	Status    string
	ServiceID string
}

// entryJSON is one element of /v1/health/service/<s>.
type entryJSON struct {
	Node    *nodeJSON
	Service *serviceJSON
	Checks  []*checkJSON
}

// view is an immutable picture of the catalog; a new one replaces it
// whole (copy on write), so queries read it without locks.
type view struct {
	// loaded is when the last full load finished; zero before the first.
	loaded time.Time
	// index is the highest X-Consul-Index catalogd reported.
	index    uint64
	services map[string]*service // by lower-case name
	nodes    map[string]*node    // by lower-case name
}

// service is a service name with its instances.
type service struct {
	name      string
	instances []*instance
}

// instance is one service instance, with what answers need.
type instance struct {
	node     string // node name, as registered
	nodeAddr string // node address (IP or host name)
	addr     string // service address, "" when it has none of its own
	port     int
	tags     []string
	weights  weightsJSON // defaulted to 1/1 when both are zero
	status   string      // aggregate of the node's and its own checks
	meta     map[string]string
}

// node is a catalog node.
type node struct {
	name string
	addr string
	meta map[string]string
}

// emptyView is the view before the first load.
func emptyView() *view {
	return &view{services: map[string]*service{}, nodes: map[string]*node{}}
}

// withService returns a copy of v with one service replaced (removed
// when s has no instances).
func (v *view) withService(key string, s *service, index uint64) *view {
	n := *v
	n.services = make(map[string]*service, len(v.services)+1)
	for k, old := range v.services {
		n.services[k] = old
	}
	if s == nil || len(s.instances) == 0 {
		delete(n.services, key)
	} else {
		n.services[key] = s
	}
	n.index = max(n.index, index)
	return &n
}

// withNodes returns a copy of v with the node table replaced.
func (v *view) withNodes(nodes map[string]*node, index uint64) *view {
	n := *v
	n.nodes = nodes
	n.index = max(n.index, index)
	return &n
}

// buildService turns /v1/health/service entries into a service.
func buildService(name string, entries []*entryJSON) *service {
	s := &service{name: name}
	for _, e := range entries {
		if e == nil || e.Node == nil || e.Service == nil {
			continue
		}
		if e.Service.Service != "" {
			s.name = e.Service.Service
		}
		in := &instance{
			node:     e.Node.Node,
			nodeAddr: e.Node.Address,
			addr:     e.Service.Address,
			port:     e.Service.Port,
			tags:     e.Service.Tags,
			status:   aggregate(e.Checks),
			meta:     e.Node.Meta,
		}
		in.weights = weightsJSON{Passing: 1, Warning: 1}
		if w := e.Service.Weights; w != nil && (w.Passing != 0 || w.Warning != 0) {
			in.weights = *w
		}
		s.instances = append(s.instances, in)
	}
	return s
}

// buildNodes turns /v1/catalog/nodes into the node table.
func buildNodes(list []*nodeJSON) map[string]*node {
	out := make(map[string]*node, len(list))
	for _, n := range list {
		if n == nil || n.Node == "" {
			continue
		}
		out[strings.ToLower(n.Node)] = &node{name: n.Node, addr: n.Address, meta: n.Meta}
	}
	return out
}

// aggregate is Consul's view of an instance's checks: critical when any
// check is critical or in maintenance, else warning when any is, else
// passing. Unknown statuses count as passing, as Consul's DNS filter
// treats them.
func aggregate(checks []*checkJSON) string {
	st := statusPassing
	for _, c := range checks {
		if c == nil {
			continue
		}
		switch c.Status {
		case statusCritical, statusMaint:
			return statusCritical
		case statusWarning:
			st = statusWarning
		}
	}
	return st
}

// weight is the SRV weight of an instance by its status.
func (in *instance) weight() uint16 {
	w := in.weights.Passing
	if in.status == statusWarning {
		w = in.weights.Warning
	}
	return uint16(min(max(w, 0), 65535))
}

// address is where the instance is reached: its own address or its
// node's.
func (in *instance) address() string {
	if in.addr != "" {
		return in.addr
	}
	return in.nodeAddr
}

// hasTag reports whether the instance carries tag (case-insensitive, as
// Consul's DNS compares tags).
func (in *instance) hasTag(tag string) bool {
	for _, t := range in.tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// nodesAt returns the nodes whose address is ip, sorted by name.
func (v *view) nodesAt(ip netip.Addr) []*node {
	var out []*node
	for _, n := range v.nodes {
		if a, err := netip.ParseAddr(n.addr); err == nil && a.Unmap() == ip {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return out
}

// servicesAt returns the names of services with an instance whose own
// address is ip, sorted.
func (v *view) servicesAt(ip netip.Addr) []string {
	var out []string
	for _, s := range v.services {
		for _, in := range s.instances {
			if a, err := netip.ParseAddr(in.addr); err == nil && a.Unmap() == ip {
				out = append(out, s.name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
