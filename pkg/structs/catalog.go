package structs

// Health statuses, as Consul spells them.
const (
	HealthPassing  = "passing"
	HealthWarning  = "warning"
	HealthCritical = "critical"
	HealthMaint    = "maintenance" // only in check definitions' notes; stored as critical
	HealthAny      = "any"         // query wildcard for /v1/health/state/any
)

// Check IDs Consul reserves.
const (
	SerfCheckID           = "serfHealth"
	NodeMaintCheckID      = "_node_maintenance"
	ServiceMaintPrefix    = "_service_maintenance:"
	SerfCheckName         = "Serf Health Status"
	NodeMaintCheckName    = "Node Maintenance Mode"
	ServiceMaintCheckName = "Service Maintenance Mode"
)

// Node is a catalog node.
type Node struct {
	ID              string            `codec:"id"` // node UUID
	Node            string            `codec:"node"`
	Address         string            `codec:"address"`
	Datacenter      string            `codec:"datacenter"`
	TaggedAddresses map[string]string `codec:"tagged_addresses"`
	Meta            map[string]string `codec:"meta"`
	CreateIndex     uint64            `codec:"create_index"`
	ModifyIndex     uint64            `codec:"modify_index"`
}

// ServiceAddress is an address and port, for tagged service addresses.
type ServiceAddress struct {
	Address string `codec:"address" json:"Address"`
	Port    int    `codec:"port" json:"Port"`
}

// Weights are a service's DNS SRV weights by health status.
type Weights struct {
	Passing int `codec:"passing" json:"Passing"`
	Warning int `codec:"warning" json:"Warning"`
}

// NodeService is a service instance on a node.
type NodeService struct {
	Kind              string                    `codec:"kind"`
	ID                string                    `codec:"id"`
	Service           string                    `codec:"service"`
	Tags              []string                  `codec:"tags"`
	Address           string                    `codec:"address"`
	TaggedAddresses   map[string]ServiceAddress `codec:"tagged_addresses"`
	Meta              map[string]string         `codec:"meta"`
	Port              int                       `codec:"port"`
	Weights           *Weights                  `codec:"weights"`
	EnableTagOverride bool                      `codec:"enable_tag_override"`
	CreateIndex       uint64                    `codec:"create_index"`
	ModifyIndex       uint64                    `codec:"modify_index"`
}

// CheckType is how a check runs: the definition healthd executes. Exactly
// one of the kind fields (HTTP, TCP, UDP, TTL, GRPC, H2PING, AliasService/
// AliasNode, Args) is set. Durations are nanoseconds.
type CheckType struct {
	HTTP                           string              `codec:"http,omitempty"`
	Method                         string              `codec:"method,omitempty"`
	Header                         map[string][]string `codec:"header,omitempty"`
	Body                           string              `codec:"body,omitempty"`
	TLSSkipVerify                  bool                `codec:"tls_skip_verify,omitempty"`
	TLSServerName                  string              `codec:"tls_server_name,omitempty"`
	TCP                            string              `codec:"tcp,omitempty"`
	UDP                            string              `codec:"udp,omitempty"`
	GRPC                           string              `codec:"grpc,omitempty"`
	GRPCUseTLS                     bool                `codec:"grpc_use_tls,omitempty"`
	H2PING                         string              `codec:"h2ping,omitempty"`
	H2PingUseTLS                   bool                `codec:"h2ping_use_tls,omitempty"`
	AliasNode                      string              `codec:"alias_node,omitempty"`
	AliasService                   string              `codec:"alias_service,omitempty"`
	Args                           []string            `codec:"args,omitempty"` // script check
	TTL                            int64               `codec:"ttl,omitempty"`
	Interval                       int64               `codec:"interval,omitempty"`
	Timeout                        int64               `codec:"timeout,omitempty"`
	SuccessBeforePassing           int                 `codec:"success_before_passing,omitempty"`
	FailuresBeforeWarning          int                 `codec:"failures_before_warning,omitempty"`
	FailuresBeforeCritical         int                 `codec:"failures_before_critical,omitempty"`
	DeregisterCriticalServiceAfter int64               `codec:"deregister_critical_service_after,omitempty"`
	OutputMaxSize                  int                 `codec:"output_max_size,omitempty"`
}

// HealthCheck is a check's catalog record.
type HealthCheck struct {
	Node        string    `codec:"node"`
	CheckID     string    `codec:"check_id"`
	Name        string    `codec:"name"`
	Status      string    `codec:"status"`
	Notes       string    `codec:"notes"`
	Output      string    `codec:"output"`
	ServiceID   string    `codec:"service_id"`
	ServiceName string    `codec:"service_name"`
	ServiceTags []string  `codec:"service_tags"`
	Type        string    `codec:"type"` // http, tcp, ttl, grpc, …; "" for catalog-only checks
	Definition  CheckType `codec:"definition"`
	CreateIndex uint64    `codec:"create_index"`
	ModifyIndex uint64    `codec:"modify_index"`
}

// RegisterRequest registers a node and optionally a service and checks,
// as Consul's /v1/catalog/register body.
type RegisterRequest struct {
	Datacenter      string            `codec:"datacenter"`
	ID              string            `codec:"id"`
	Node            string            `codec:"node"`
	Address         string            `codec:"address"`
	TaggedAddresses map[string]string `codec:"tagged_addresses"`
	NodeMeta        map[string]string `codec:"node_meta"`
	Service         *NodeService      `codec:"service"`
	Check           *HealthCheck      `codec:"check"`
	Checks          []*HealthCheck    `codec:"checks"`
	SkipNodeUpdate  bool              `codec:"skip_node_update"`
	// Now is the writer's clock in unix nanoseconds, for the lock-delays
	// of sessions a critical check invalidates.
	Now int64 `codec:"now,omitempty"`
}

// DeregisterRequest removes a node, or one of its services or checks.
type DeregisterRequest struct {
	Datacenter string `codec:"datacenter"`
	Node       string `codec:"node"`
	ServiceID  string `codec:"service_id"`
	CheckID    string `codec:"check_id"`
	// Now is the writer's clock in unix nanoseconds, for the lock-delays
	// of sessions the deregistration invalidates.
	Now int64 `codec:"now,omitempty"`
}
