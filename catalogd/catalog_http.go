package catalogd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/raftapi"
	"github.com/consort-io/consort/pkg/structs"
	"github.com/hashicorp/go-memdb"
)

// catalogEndpoint serves /v1/catalog/*.
func (d *Daemon) catalogEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/catalog/")
	kind, arg, hasArg := strings.Cut(rest, "/")
	switch {
	case kind == "register" && !hasArg:
		return d.catalogWrite(w, r, state.RegisterType)
	case kind == "deregister" && !hasArg:
		return d.catalogWrite(w, r, state.DeregisterType)
	case kind == "datacenters" && !hasArg:
		if r.Method != http.MethodGet {
			return nil, methodNotAllowed(r.Method, http.MethodGet)
		}
		// Only the local datacenter until WAN federation exists.
		return []string{d.cfg.Datacenter}, nil
	}
	type reader func(http.ResponseWriter, *http.Request, catalogQuery, string) (any, error)
	var h reader
	var missing string
	switch {
	case kind == "nodes" && !hasArg:
		h = d.catalogNodes
	case kind == "services" && !hasArg:
		h = d.catalogServices
	case kind == "service":
		h, missing = d.catalogService, "Missing service name"
	case kind == "node":
		h, missing = d.catalogNode, "Missing node name"
	case kind == "node-services":
		h, missing = d.catalogNodeServices, "Missing node name"
	default:
		return nil, &httpError{code: http.StatusNotFound, msg: "Unknown endpoint " + r.Method + " " + r.URL.Path +
			": consort serves /v1/catalog/{register,deregister,datacenters,nodes,services,service/<service>,node/<node>,node-services/<node>}"}
	}
	if r.Method != http.MethodGet {
		return nil, methodNotAllowed(r.Method, http.MethodGet)
	}
	q, err := parseCatalogQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if missing != "" && arg == "" {
		return nil, badRequest("%s", missing)
	}
	if err := d.checkDC(q.opts); err != nil {
		return nil, err
	}
	return h(w, r, q, arg)
}

// catalogNodes answers every node, after ?node-meta and ?filter.
func (d *Daemon) catalogNodes(w http.ResponseWriter, r *http.Request, q catalogQuery, _ string) (any, error) {
	f, err := compileFilter(q.filter, typeNode)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var out []*nodeJSON
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, nodes, err := d.store.Nodes(ws, q.nodeMeta)
		if err != nil {
			return idx, err
		}
		out = out[:0]
		for _, n := range nodes {
			j := conv.node(n)
			if ok, err := f.match(j); err != nil {
				return idx, err
			} else if ok {
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
		out = []*nodeJSON{}
	}
	return out, nil
}

// catalogServices answers service name → tags (the union over its
// instances). A ?filter is evaluated on each instance, as Consul does, and
// a service appears when any instance passes.
func (d *Daemon) catalogServices(w http.ResponseWriter, r *http.Request, q catalogQuery, _ string) (any, error) {
	f, err := compileFilter(q.filter, typeServiceNode)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var out map[string][]string
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, services, err := d.store.Services(ws, q.nodeMeta)
		if err != nil || f == nil {
			out = services
			return idx, err
		}
		out = make(map[string][]string, len(services))
		for name := range services {
			_, instances, err := d.store.ServiceNodes(ws, name, nil, q.nodeMeta)
			if err != nil {
				return idx, err
			}
			for _, sn := range instances {
				ok, err := f.match(conv.serviceNode(sn))
				if err != nil {
					return idx, err
				}
				if ok {
					out[name] = append(out[name], sn.Service.Tags...)
				}
			}
			if t, ok := out[name]; ok {
				slices.Sort(t)
				out[name] = slices.Compact(t)
			}
		}
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	// Consul answers {} for no services and [] for a service without tags.
	res := make(map[string][]string, len(out))
	for name, t := range out {
		res[name] = tags(t)
	}
	return res, nil
}

// catalogService answers the instances of a service with their nodes,
// after ?tag, ?node-meta and ?filter.
func (d *Daemon) catalogService(w http.ResponseWriter, r *http.Request, q catalogQuery, service string) (any, error) {
	f, err := compileFilter(q.filter, typeServiceNode)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var out []*serviceNodeJSON
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, instances, err := d.store.ServiceNodes(ws, service, q.tags, q.nodeMeta)
		if err != nil {
			return idx, err
		}
		out = out[:0]
		for _, sn := range instances {
			j := conv.serviceNode(sn)
			if ok, err := f.match(j); err != nil {
				return idx, err
			} else if ok {
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
		out = []*serviceNodeJSON{}
	}
	return out, nil
}

// nodeServices reads a node and its services, ?filter applied to the
// services. The node is nil when it is not registered.
func (d *Daemon) nodeServices(w http.ResponseWriter, r *http.Request, q catalogQuery, node string) (*nodeJSON, []*serviceJSON, error) {
	f, err := compileFilter(q.filter, typeService)
	if err != nil {
		return nil, nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	var n *nodeJSON
	var out []*serviceJSON
	meta, err := d.query(r.Context(), q.opts, func(ws memdb.WatchSet) (uint64, error) {
		idx, rec, services, err := d.store.NodeServices(ws, node)
		if err != nil {
			return idx, err
		}
		n, out = conv.node(rec), out[:0]
		for _, s := range services {
			j := conv.service(s)
			if ok, err := f.match(j); err != nil {
				return idx, err
			} else if ok {
				out = append(out, j)
			}
		}
		return idx, nil
	})
	if err != nil {
		return nil, nil, err
	}
	meta.setHeaders(w.Header())
	return n, out, nil
}

// catalogNode answers a node and its services keyed by service ID; null
// (with 200) for a node that is not registered, as Consul.
func (d *Daemon) catalogNode(w http.ResponseWriter, r *http.Request, q catalogQuery, node string) (any, error) {
	n, services, err := d.nodeServices(w, r, q, node)
	if err != nil {
		return nil, err
	}
	if n == nil {
		writeJSON(w, r, http.StatusOK, nil)
		return nil, nil
	}
	m := make(map[string]*serviceJSON, len(services))
	for _, s := range services {
		m[s.ID] = s
	}
	return nodeServiceMapJSON{Node: n, Services: m}, nil
}

// catalogNodeServices answers a node and the list of its services. For a
// node that is not registered it answers {"Node": null, "Services": []}.
func (d *Daemon) catalogNodeServices(w http.ResponseWriter, r *http.Request, q catalogQuery, node string) (any, error) {
	n, services, err := d.nodeServices(w, r, q, node)
	if err != nil {
		return nil, err
	}
	if services == nil {
		services = []*serviceJSON{}
	}
	return nodeServicesJSON{Node: n, Services: services}, nil
}

// catalogWrite serves PUT /v1/catalog/register and /deregister: it
// decodes the body as Consul does, commits the command through raft and
// answers true once applied, or the state machine's refusal as a 500 in
// Consul's words ("Must provide node", "Unknown service ID ...").
func (d *Daemon) catalogWrite(w http.ResponseWriter, r *http.Request, t state.MessageType) (any, error) {
	if r.Method != http.MethodPut {
		return nil, methodNotAllowed(r.Method, http.MethodPut)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, raftapi.MaxCommandSize+1))
	if err != nil {
		return nil, badRequest("Failed to read request body: %v", err)
	}
	if len(body) > raftapi.MaxCommandSize {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"Request body too large: more than %d bytes", raftapi.MaxCommandSize)}
	}
	var req any
	var dc *string
	switch t {
	case state.RegisterType:
		reg, err := decodeRegister(body)
		if err != nil {
			return nil, err
		}
		req, dc = reg, &reg.Datacenter
	default:
		dereg, err := decodeDeregister(body)
		if err != nil {
			return nil, err
		}
		req, dc = dereg, &dereg.Datacenter
	}
	// As Consul's handlers: the agent's datacenter unless the body names
	// one; another one cannot be reached yet.
	if *dc == "" {
		*dc = d.cfg.Datacenter
	}
	if *dc != d.cfg.Datacenter {
		return nil, errors.New("No path to datacenter")
	}
	res, err := d.applyCatalog(r.Context(), t, req)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, &httpError{code: http.StatusInternalServerError, msg: res.Err.Error()}
	}
	return true, nil
}

// applyCatalog commits a catalog command (state.RegisterType with a
// *structs.RegisterRequest, state.DeregisterType with a
// *structs.DeregisterRequest) through raft, waits until the store applied
// it and returns the store's result. A refusal by the state machine is in
// the result's Err, not the error, which reports failures to commit or to
// learn the outcome. Safe for concurrent use; blocks until applied, ctx
// ends or the apply wait runs out.
func (d *Daemon) applyCatalog(ctx context.Context, t state.MessageType, req any) (*state.CatalogResult, error) {
	// The writer's clock stamps the command, so a session this write
	// invalidates gets its lock-delay from a time every replica agrees on.
	now := time.Now().UnixNano()
	switch r := req.(type) {
	case *structs.RegisterRequest:
		if r.Now == 0 {
			r.Now = now
		}
	case *structs.DeregisterRequest:
		if r.Now == 0 {
			r.Now = now
		}
	}
	data, err := state.Encode(t, req)
	if err != nil {
		return nil, fmt.Errorf("encode catalog command: %w", err)
	}
	idx, err := d.cfg.Raft.Apply(ctx, data)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, d.applyWait)
	defer cancel()
	if err := d.track.wait(wctx, idx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("write committed at index %d; request ended before catalogd applied it: %w", idx, ctx.Err())
		}
		return nil, fmt.Errorf("write committed at index %d but catalogd has not applied it after %s (applied %d): the write will take effect, its result is unknown: %w",
			idx, d.applyWait, d.track.applied(), errBehind)
	}
	res, ok := d.track.take(idx)
	if !ok {
		return nil, fmt.Errorf("write committed and applied at index %d, but its result is unknown (catalogd restored a snapshot past it): read the catalog to find out", idx)
	}
	switch v := res.(type) {
	case *state.CatalogResult:
		if v != nil {
			return v, nil
		}
	case error:
		return nil, fmt.Errorf("catalog command at index %d: %w", idx, v)
	}
	return nil, fmt.Errorf("catalog command at index %d: unexpected result %T", idx, res)
}

// decodeJSON decodes a request body the way Consul's handlers do: field
// names match case-insensitively, unknown fields are ignored, and a
// failure is a 400 "Request decode failed: ...".
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	return nil
}

// decodeDeregister decodes a /v1/catalog/deregister body.
func decodeDeregister(body []byte) (*structs.DeregisterRequest, error) {
	var b struct {
		Node, Datacenter, ServiceID, CheckID string
	}
	if err := decodeJSON(body, &b); err != nil {
		return nil, err
	}
	return &structs.DeregisterRequest{Node: b.Node, Datacenter: b.Datacenter, ServiceID: b.ServiceID, CheckID: b.CheckID}, nil
}

// registerBody is a /v1/catalog/register body: Consul's RegisterRequest
// as its api.CatalogRegistration sends it. Fields Consul has for features
// consort lacks (Namespace, Partition, Locality, service Proxy and
// Connect) are ignored, as are unknown ones.
type registerBody struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *serviceBody
	Check           *checkBody
	Checks          []*checkBody
	SkipNodeUpdate  bool
}

type serviceBody struct {
	Kind              string
	ID                string
	Service           string
	Tags              []string
	Address           string
	TaggedAddresses   map[string]structs.ServiceAddress
	Meta              map[string]string
	Port              int
	Weights           *structs.Weights
	EnableTagOverride bool
}

type checkBody struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  definitionBody
}

// definitionBody is Consul's HealthCheckDefinition. Its durations may be
// Go duration strings ("10s") or nanoseconds, under the old names
// (Interval) or the api package's (IntervalDuration).
type definitionBody struct {
	HTTP                                   string
	Header                                 map[string][]string
	Method                                 string
	Body                                   string
	TLSServerName                          string
	TLSSkipVerify                          bool
	TCP                                    string
	UDP                                    string
	GRPC                                   string
	GRPCUseTLS                             bool
	H2PING                                 string
	H2PingUseTLS                           bool
	AliasNode                              string
	AliasService                           string
	ScriptArgs                             []string
	Interval                               duration
	Timeout                                duration
	TTL                                    duration
	DeregisterCriticalServiceAfter         duration
	IntervalDuration                       duration
	TimeoutDuration                        duration
	DeregisterCriticalServiceAfterDuration duration
}

// duration decodes a JSON duration: a Go duration string, "" or null
// for none, or a number of nanoseconds.
type duration int64

// UnmarshalJSON implements json.Unmarshaler.
func (d *duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case nil:
		*d = 0
	case string:
		if x == "" {
			*d = 0
			return nil
		}
		p, err := time.ParseDuration(x)
		if err != nil {
			return err
		}
		*d = duration(p)
	case float64:
		if x > math.MaxInt64 || x < math.MinInt64 {
			return fmt.Errorf("duration %v out of range", x)
		}
		*d = duration(x)
	default:
		return fmt.Errorf("cannot decode %s as a duration", b)
	}
	return nil
}

// or is d, or alt when d is zero.
func (d duration) or(alt duration) int64 {
	if d == 0 {
		return int64(alt)
	}
	return int64(d)
}

// decodeRegister decodes a /v1/catalog/register body into the command
// the state machine applies. Defaults and validation (service ID from its
// name, check IDs, unknown services) are the state machine's, so every
// writer gets the same answers.
func decodeRegister(body []byte) (*structs.RegisterRequest, error) {
	var b registerBody
	if err := decodeJSON(body, &b); err != nil {
		return nil, err
	}
	req := &structs.RegisterRequest{
		ID:              b.ID,
		Node:            b.Node,
		Address:         b.Address,
		Datacenter:      b.Datacenter,
		TaggedAddresses: b.TaggedAddresses,
		NodeMeta:        b.NodeMeta,
		SkipNodeUpdate:  b.SkipNodeUpdate,
		Check:           b.Check.record(),
	}
	if s := b.Service; s != nil {
		req.Service = &structs.NodeService{
			Kind:              s.Kind,
			ID:                s.ID,
			Service:           s.Service,
			Tags:              s.Tags,
			Address:           s.Address,
			TaggedAddresses:   s.TaggedAddresses,
			Meta:              s.Meta,
			Port:              s.Port,
			Weights:           s.Weights,
			EnableTagOverride: s.EnableTagOverride,
		}
	}
	for _, c := range b.Checks {
		if c != nil {
			req.Checks = append(req.Checks, c.record())
		}
	}
	return req, nil
}

// record is the check as the catalog stores it; nil for nil.
func (c *checkBody) record() *structs.HealthCheck {
	if c == nil {
		return nil
	}
	d := c.Definition
	return &structs.HealthCheck{
		Node:        c.Node,
		CheckID:     c.CheckID,
		Name:        c.Name,
		Status:      c.Status,
		Notes:       c.Notes,
		Output:      c.Output,
		ServiceID:   c.ServiceID,
		ServiceName: c.ServiceName,
		ServiceTags: c.ServiceTags,
		Type:        c.Type,
		Definition: structs.CheckType{
			HTTP:                           d.HTTP,
			Method:                         d.Method,
			Header:                         d.Header,
			Body:                           d.Body,
			TLSSkipVerify:                  d.TLSSkipVerify,
			TLSServerName:                  d.TLSServerName,
			TCP:                            d.TCP,
			UDP:                            d.UDP,
			GRPC:                           d.GRPC,
			GRPCUseTLS:                     d.GRPCUseTLS,
			H2PING:                         d.H2PING,
			H2PingUseTLS:                   d.H2PingUseTLS,
			AliasNode:                      d.AliasNode,
			AliasService:                   d.AliasService,
			Args:                           d.ScriptArgs,
			TTL:                            int64(d.TTL),
			Interval:                       d.IntervalDuration.or(d.Interval),
			Timeout:                        d.TimeoutDuration.or(d.Timeout),
			DeregisterCriticalServiceAfter: d.DeregisterCriticalServiceAfterDuration.or(d.DeregisterCriticalServiceAfter),
		},
	}
}
