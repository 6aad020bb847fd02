package catalogd

import (
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
)

// The records below are what the catalog and health endpoints answer,
// with Consul's JSON field names in Consul's order (Go field name = JSON
// name = filter selector). ?filter expressions are evaluated on these same
// structs, so a selector is exactly a JSON path of the answer. Fields
// Consul hides from filters (indexes, check definitions) are tagged
// bexpr:"-". Connect fields are always empty: consort has no service mesh,
// but they are present so that clients and filters naming them work.

// nodeJSON is Consul's structs.Node.
type nodeJSON struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64 `bexpr:"-"`
	ModifyIndex     uint64 `bexpr:"-"`
}

// serviceNodeJSON is Consul's structs.ServiceNode, one element of
// /v1/catalog/service/<s>.
type serviceNodeJSON struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]structs.ServiceAddress `json:",omitempty"`
	ServiceWeights           structs.Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceSocketPath        string `json:",omitempty"`
	ServiceEnableTagOverride bool
	ServiceProxy             proxyJSON
	ServiceConnect           connectJSON
	CreateIndex              uint64 `bexpr:"-"`
	ModifyIndex              uint64 `bexpr:"-"`
}

// serviceJSON is Consul's structs.NodeService, as /v1/catalog/node/<n>,
// /v1/catalog/node-services/<n> and /v1/health/service/<s> write it.
type serviceJSON struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Address           string
	TaggedAddresses   map[string]structs.ServiceAddress `json:",omitempty"`
	Meta              map[string]string
	Port              int
	Weights           structs.Weights
	EnableTagOverride bool
	Proxy             proxyJSON
	Connect           connectJSON
	CreateIndex       uint64 `bexpr:"-"`
	ModifyIndex       uint64 `bexpr:"-"`
}

// proxyJSON is Consul's ConnectProxyConfig, always empty here.
type proxyJSON struct {
	DestinationServiceName string `json:",omitempty"`
	DestinationServiceID   string `json:",omitempty"`
	LocalServiceAddress    string `json:",omitempty"`
	LocalServicePort       int    `json:",omitempty"`
	Mode                   string
	MeshGateway            meshGatewayJSON
	TransparentProxy       transparentProxyJSON
	Upstreams              []upstreamJSON `json:",omitempty"`
	Expose                 struct{}
}

type meshGatewayJSON struct {
	Mode string `json:",omitempty"`
}

type transparentProxyJSON struct {
	OutboundListenerPort int `json:",omitempty"`
}

type upstreamJSON struct {
	DestinationType      string `json:",omitempty"`
	DestinationNamespace string `json:",omitempty"`
	DestinationName      string
	Datacenter           string `json:",omitempty"`
	LocalBindAddress     string `json:",omitempty"`
	LocalBindPort        int    `json:",omitempty"`
	MeshGateway          meshGatewayJSON
}

// connectJSON is Consul's ServiceConnect, always empty here.
type connectJSON struct {
	Native bool `json:",omitempty"`
}

// checkJSON is Consul's structs.HealthCheck.
type checkJSON struct {
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
	Interval    string
	Timeout     string
	ExposedPort int
	Definition  definitionJSON `bexpr:"-"`
	CreateIndex uint64         `bexpr:"-"`
	ModifyIndex uint64         `bexpr:"-"`
}

// definitionJSON is Consul's HealthCheckDefinition as its MarshalJSON
// writes it: durations as Go duration strings, empty fields left out.
type definitionJSON struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	H2PING                         string              `json:",omitempty"`
	H2PingUseTLS                   bool                `json:",omitempty"`
	AliasNode                      string              `json:",omitempty"`
	AliasService                   string              `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	Interval                       string              `json:",omitempty"`
	Timeout                        string              `json:",omitempty"`
	TTL                            string              `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

// serviceEntryJSON is Consul's structs.CheckServiceNode, one element of
// /v1/health/service/<s>.
type serviceEntryJSON struct {
	Node    *nodeJSON
	Service *serviceJSON
	Checks  []*checkJSON
}

// nodeServicesJSON is /v1/catalog/node-services/<n>.
type nodeServicesJSON struct {
	Node     *nodeJSON
	Services []*serviceJSON
}

// nodeServiceMapJSON is /v1/catalog/node/<n>.
type nodeServiceMapJSON struct {
	Node     *nodeJSON
	Services map[string]*serviceJSON
}

// records converts state records to answers. dc fills a node's
// datacenter when its record has none.
type records struct{ dc string }

func (c records) node(n *structs.Node) *nodeJSON {
	if n == nil {
		return nil
	}
	dc := n.Datacenter
	if dc == "" {
		dc = c.dc
	}
	return &nodeJSON{
		ID:              n.ID,
		Node:            n.Node,
		Address:         n.Address,
		Datacenter:      dc,
		TaggedAddresses: n.TaggedAddresses,
		Meta:            n.Meta,
		CreateIndex:     n.CreateIndex,
		ModifyIndex:     n.ModifyIndex,
	}
}

// weights are s's weights, Consul's default (1, 1) when unset.
func weights(s *structs.NodeService) structs.Weights {
	if s.Weights == nil {
		return structs.Weights{Passing: 1, Warning: 1}
	}
	return *s.Weights
}

// tags is never nil: Consul answers [] for a service without tags.
func tags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

func (c records) service(s *structs.NodeService) *serviceJSON {
	return &serviceJSON{
		Kind:              s.Kind,
		ID:                s.ID,
		Service:           s.Service,
		Tags:              tags(s.Tags),
		Address:           s.Address,
		TaggedAddresses:   s.TaggedAddresses,
		Meta:              s.Meta,
		Port:              s.Port,
		Weights:           weights(s),
		EnableTagOverride: s.EnableTagOverride,
		CreateIndex:       s.CreateIndex,
		ModifyIndex:       s.ModifyIndex,
	}
}

func (c records) serviceNode(sn state.ServiceNode) *serviceNodeJSON {
	n := c.node(sn.Node)
	if n == nil {
		n = &nodeJSON{Datacenter: c.dc}
	}
	s := sn.Service
	return &serviceNodeJSON{
		ID:                       n.ID,
		Node:                     n.Node,
		Address:                  n.Address,
		Datacenter:               n.Datacenter,
		TaggedAddresses:          n.TaggedAddresses,
		NodeMeta:                 n.Meta,
		ServiceKind:              s.Kind,
		ServiceID:                s.ID,
		ServiceName:              s.Service,
		ServiceTags:              tags(s.Tags),
		ServiceAddress:           s.Address,
		ServiceTaggedAddresses:   s.TaggedAddresses,
		ServiceWeights:           weights(s),
		ServiceMeta:              s.Meta,
		ServicePort:              s.Port,
		ServiceEnableTagOverride: s.EnableTagOverride,
		CreateIndex:              s.CreateIndex,
		ModifyIndex:              s.ModifyIndex,
	}
}

// dur writes a duration in nanoseconds as Consul does: "10s", "" for 0.
func dur(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Duration(ns).String()
}

func (c records) check(h *structs.HealthCheck) *checkJSON {
	d := h.Definition
	return &checkJSON{
		Node:        h.Node,
		CheckID:     h.CheckID,
		Name:        h.Name,
		Status:      h.Status,
		Notes:       h.Notes,
		Output:      h.Output,
		ServiceID:   h.ServiceID,
		ServiceName: h.ServiceName,
		ServiceTags: tags(h.ServiceTags),
		Type:        h.Type,
		Interval:    dur(d.Interval),
		Timeout:     dur(d.Timeout),
		Definition: definitionJSON{
			HTTP:                           d.HTTP,
			Header:                         d.Header,
			Method:                         d.Method,
			Body:                           d.Body,
			TLSServerName:                  d.TLSServerName,
			TLSSkipVerify:                  d.TLSSkipVerify,
			TCP:                            d.TCP,
			UDP:                            d.UDP,
			GRPC:                           d.GRPC,
			GRPCUseTLS:                     d.GRPCUseTLS,
			H2PING:                         d.H2PING,
			H2PingUseTLS:                   d.H2PingUseTLS,
			AliasNode:                      d.AliasNode,
			AliasService:                   d.AliasService,
			ScriptArgs:                     d.Args,
			Interval:                       dur(d.Interval),
			Timeout:                        dur(d.Timeout),
			TTL:                            dur(d.TTL),
			DeregisterCriticalServiceAfter: dur(d.DeregisterCriticalServiceAfter),
		},
		CreateIndex: h.CreateIndex,
		ModifyIndex: h.ModifyIndex,
	}
}

func (c records) checks(hs []*structs.HealthCheck) []*checkJSON {
	out := make([]*checkJSON, 0, len(hs))
	for _, h := range hs {
		out = append(out, c.check(h))
	}
	return out
}

func (c records) serviceEntry(e state.CheckServiceNode) *serviceEntryJSON {
	n := c.node(e.Node)
	if n == nil {
		n = &nodeJSON{Datacenter: c.dc}
	}
	return &serviceEntryJSON{Node: n, Service: c.service(e.Service), Checks: c.checks(e.Checks)}
}

// passing reports whether every check of an entry passes, as ?passing
// requires (Consul's filterNonPassing).
func (e *serviceEntryJSON) passing() bool {
	for _, c := range e.Checks {
		if c.Status != structs.HealthPassing {
			return false
		}
	}
	return true
}
