package catalogd

import (
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
	"github.com/hashicorp/go-memdb"
)

// catalogQuery holds the parameters of the catalog and health read
// endpoints, decoded with Consul's rules.
type catalogQuery struct {
	opts     queryOptions
	nodeMeta map[string]string // ?node-meta=key:value, repeated; all must match
	tags     []string          // ?tag=, repeated; every tag must be present
	passing  bool              // ?passing: only entries whose checks all pass
	filter   string            // ?filter: a go-bexpr expression
	// near names a node to sort by round-trip time from. consort has no
	// network coordinates yet: it is accepted and ignored, and answers
	// keep their usual order (by node name).
	near string
}

// parseCatalogQuery decodes a catalog or health read's query string.
// Malformed input is refused with 400, in Consul's words where it has
// them.
func parseCatalogQuery(raw string) (catalogQuery, error) {
	var q catalogQuery
	v, err := parseQuery(raw)
	if err != nil {
		return q, err
	}
	if q.opts, err = parseQueryOptions(v); err != nil {
		return q, err
	}
	q.nodeMeta = parseNodeMeta(v)
	q.tags = v["tag"]
	if q.passing, err = boolParam(v, structs.HealthPassing); err != nil {
		return q, badRequest("Invalid value for ?passing")
	}
	q.filter = v.Get("filter")
	q.near = v.Get("near")
	return q, nil
}

// parseNodeMeta decodes repeated ?node-meta=key:value pairs as Consul's
// parseMetaFilter does: the value is what follows the first ':', and a
// pair without ':' asks for an empty value. Nil when absent.
func parseNodeMeta(v url.Values) map[string]string {
	list, ok := v["node-meta"]
	if !ok {
		return nil
	}
	m := make(map[string]string, len(list))
	for _, pair := range list {
		k, val, _ := strings.Cut(pair, ":")
		m[k] = val
	}
	return m
}

// boolParam reads a flag that may carry a value, as Consul's
// getBoolQueryParam: absent is false, present without a value is true,
// otherwise strconv.ParseBool decides.
func boolParam(v url.Values, name string) (bool, error) {
	if !has(v, name) {
		return false, nil
	}
	s := v.Get(name)
	if s == "" {
		return true, nil
	}
	return strconv.ParseBool(s)
}

// Record types the health and catalog filters are evaluated on.
var (
	typeNode        = reflect.TypeFor[nodeJSON]()
	typeServiceNode = reflect.TypeFor[serviceNodeJSON]()
	typeService     = reflect.TypeFor[serviceJSON]()
	typeCheck       = reflect.TypeFor[checkJSON]()
	typeEntry       = reflect.TypeFor[serviceEntryJSON]()
)

// healthEndpoint serves /v1/health/{node,checks,service,state}/<arg>.
func (d *Daemon) healthEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/health/")
	kind, arg, _ := strings.Cut(rest, "/")
	var h func(http.ResponseWriter, *http.Request, catalogQuery, string) (any, error)
	var missing string
	switch kind {
	case "node":
		h, missing = d.healthNode, "Missing node name"
	case "checks":
		h, missing = d.healthChecks, "Missing service name"
	case "service":
		h, missing = d.healthService, "Missing service name"
	case "state":
		h, missing = d.healthState, "Missing check state"
	default:
		return nil, &httpError{code: http.StatusNotFound, msg: "Unknown endpoint " + r.Method + " " + r.URL.Path +
			": consort serves /v1/health/node/<node>, /v1/health/checks/<service>, /v1/health/service/<service> and /v1/health/state/<state>"}
	}
	if r.Method != http.MethodGet {
		return nil, methodNotAllowed(r.Method, http.MethodGet)
	}
	q, err := parseCatalogQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if arg == "" {
		return nil, badRequest("%s", missing)
	}
	if err := d.checkDC(q.opts); err != nil {
		return nil, err
	}
	return h(w, r, q, arg)
}

// healthNode answers every check of a node, node-level and service ones.
func (d *Daemon) healthNode(w http.ResponseWriter, r *http.Request, q catalogQuery, node string) (any, error) {
	return d.checkList(w, r, q, func(ws memdb.WatchSet) (uint64, []*structs.HealthCheck, error) {
		return d.store.NodeChecks(ws, node)
	})
}

// healthChecks answers the checks of every instance of a service.
func (d *Daemon) healthChecks(w http.ResponseWriter, r *http.Request, q catalogQuery, service string) (any, error) {
	return d.checkList(w, r, q, func(ws memdb.WatchSet) (uint64, []*structs.HealthCheck, error) {
		return d.store.ServiceChecks(ws, service, q.nodeMeta)
	})
}

// healthState answers the checks in a state, or all of them for "any".
// Like Consul, a state that no check can be in answers [] rather than an
// error.
func (d *Daemon) healthState(w http.ResponseWriter, r *http.Request, q catalogQuery, status string) (any, error) {
	return d.checkList(w, r, q, func(ws memdb.WatchSet) (uint64, []*structs.HealthCheck, error) {
		return d.store.ChecksInState(ws, status, q.nodeMeta)
	})
}

// checkList runs a check query with q's consistency, blocking and filter.
func (d *Daemon) checkList(w http.ResponseWriter, r *http.Request, q catalogQuery,
	read func(memdb.WatchSet) (uint64, []*structs.HealthCheck, error)) (any, error) {
	f, err := compileFilter(q.filter, typeCheck)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var out []*checkJSON
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, checks, err := read(ws)
		if err != nil {
			return idx, err
		}
		out = out[:0]
		for _, c := range checks {
			j := conv.check(c)
			ok, err := f.match(j)
			if err != nil {
				return idx, err
			}
			if ok {
				out = append(out, j)
			}
		}
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	if out == nil {
		out = []*checkJSON{}
	}
	return out, nil
}

// healthService answers the instances of a service with their node and
// the checks that decide their health (node-level and their own), after
// ?tag, ?node-meta, ?filter and ?passing.
func (d *Daemon) healthService(w http.ResponseWriter, r *http.Request, q catalogQuery, service string) (any, error) {
	f, err := compileFilter(q.filter, typeEntry)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var out []*serviceEntryJSON
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, entries, err := d.store.CheckServiceNodes(ws, service, q.tags, q.nodeMeta)
		if err != nil {
			return idx, err
		}
		out, err = filterEntries(out[:0], entries, conv, f, q.passing)
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	if out == nil {
		out = []*serviceEntryJSON{}
	}
	return out, nil
}

// filterEntries appends to out the entries that pass f and, with
// passing, have only passing checks.
func filterEntries(out []*serviceEntryJSON, entries []state.CheckServiceNode, conv records, f *filter, passing bool) ([]*serviceEntryJSON, error) {
	for _, e := range entries {
		j := conv.serviceEntry(e)
		if passing && !j.passing() {
			continue
		}
		ok, err := f.match(j)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, j)
		}
	}
	return out, nil
}
