package agent

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// ServiceDefinition is a service as Consul's agent API and service
// definition files describe it: the body of PUT
// /v1/agent/service/register, or a `service {}` block.
type ServiceDefinition struct {
	Kind              string
	ID                string // defaults to Name
	Name              string
	Tags              []string
	Address           string
	TaggedAddresses   map[string]structs.ServiceAddress
	Meta              map[string]string
	Port              int
	Weights           *structs.Weights // nil: {Passing: 1, Warning: 1}
	EnableTagOverride bool
	// Checks are the service's `check` and `checks`, in that order.
	Checks []CheckDefinition
	// Line is where the definition starts in its file (0 for HTTP).
	Line int
}

// CheckDefinition is a check as Consul's agent API and definition files
// describe it: the body of PUT /v1/agent/check/register, a `check {}`
// block, or one of a service's checks.
type CheckDefinition struct {
	ID        string // defaults to Name; for a service's check, "service:<id>[:<n>]"
	Name      string
	Notes     string
	ServiceID string
	Status    string // initial status; "" is critical
	Type      structs.CheckType
	Line      int
}

// Definitions is what one definition file (or a directory of them)
// declares.
type Definitions struct {
	Services []ServiceDefinition
	Checks   []CheckDefinition
}

// CheckKind returns the kind of check ct describes, as Consul names it in
// HealthCheck.Type: "http", "tcp", "udp", "ttl", "grpc", "h2ping",
// "alias" or "script"; "" when no kind field is set.
func CheckKind(ct structs.CheckType) string {
	switch {
	case ct.GRPC != "":
		return "grpc"
	case ct.HTTP != "":
		return "http"
	case ct.TTL > 0:
		return "ttl"
	case ct.TCP != "":
		return "tcp"
	case ct.UDP != "":
		return "udp"
	case ct.AliasNode != "" || ct.AliasService != "":
		return "alias"
	case len(ct.Args) > 0:
		return "script"
	case ct.H2PING != "":
		return "h2ping"
	}
	return ""
}

// validStatus reports whether s is a status a check may have.
func validStatus(s string) bool {
	return s == structs.HealthPassing || s == structs.HealthWarning || s == structs.HealthCritical
}

// Validate checks a check's kind and timing as Consul's CheckType.Validate
// does, with Consul's words.
func (c CheckDefinition) Validate() error {
	ct := c.Type
	interval := len(ct.Args) > 0 || ct.HTTP != "" || ct.TCP != "" || ct.UDP != "" || ct.GRPC != "" || ct.H2PING != ""
	alias := ct.AliasNode != "" || ct.AliasService != ""
	switch {
	case ct.Interval > 0 && ct.TTL > 0:
		return errors.New("Interval and TTL cannot both be specified")
	case interval && ct.Interval <= 0:
		return errors.New("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")
	case interval && alias:
		return errors.New("Interval cannot be set for Alias checks")
	case alias && ct.TTL > 0:
		return errors.New("TTL must be not be set for Alias checks")
	case !interval && !alias && ct.TTL <= 0:
		return errors.New("TTL must be > 0 for TTL checks")
	case ct.OutputMaxSize < 0:
		return errors.New("MaxOutputMaxSize must be positive")
	case ct.Timeout < 0 || ct.DeregisterCriticalServiceAfter < 0:
		return errors.New("durations must not be negative")
	case ct.SuccessBeforePassing < 0 || ct.FailuresBeforeWarning < 0 || ct.FailuresBeforeCritical < 0:
		return errors.New("SuccessBeforePassing, FailuresBeforeWarning and FailuresBeforeCritical must not be negative")
	case c.Status != "" && !validStatus(c.Status):
		return errors.New("Status for checks must 'passing', 'warning', 'critical'")
	}
	if n := kinds(ct); n > 1 {
		return errors.New("only one of HTTP, TCP, UDP, TTL, GRPC, H2PING, Alias or Args may be set")
	}
	return nil
}

func kinds(ct structs.CheckType) int {
	n := 0
	for _, set := range []bool{ct.HTTP != "", ct.TCP != "", ct.UDP != "", ct.TTL > 0, ct.GRPC != "", ct.H2PING != "",
		ct.AliasNode != "" || ct.AliasService != "", len(ct.Args) > 0} {
		if set {
			n++
		}
	}
	return n
}

// metaKey is what Consul accepts as a meta key.
var metaKey = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Limits on service meta, as Consul's.
const (
	metaMaxPairs    = 64
	metaMaxKeyLen   = 128
	metaMaxValueLen = 512
)

// validateMeta checks meta as Consul's ValidateServiceMetadata does.
func validateMeta(meta map[string]string) error {
	if len(meta) > metaMaxPairs {
		return fmt.Errorf("Node metadata cannot contain more than %d key/value pairs", metaMaxPairs)
	}
	for k, v := range meta {
		switch {
		case k == "":
			return errors.New("Key cannot be blank")
		case !metaKey.MatchString(k):
			return fmt.Errorf("Key contains invalid characters: %q", k)
		case len(k) > metaMaxKeyLen:
			return fmt.Errorf("Key is too long (limit: %d characters)", metaMaxKeyLen)
		case strings.HasPrefix(k, "consul-"):
			return fmt.Errorf("Key prefix 'consul-' is reserved for internal use")
		case len(v) > metaMaxValueLen:
			return fmt.Errorf("Value is too long (limit: %d characters)", metaMaxValueLen)
		}
	}
	return nil
}

// ValidationError is a definition Consul would refuse; its message is
// what the HTTP API answers with 400.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// Validate checks s and its checks as Consul's agent service register
// endpoint does, answering with Consul's words.
func (s ServiceDefinition) Validate() error {
	if s.Name == "" {
		return invalid("Missing service name")
	}
	if s.Address != "" {
		if ip := net.ParseIP(s.Address); ip != nil && ip.IsUnspecified() {
			return invalid("Invalid service address")
		}
	}
	if w := s.Weights; w != nil {
		switch {
		case w.Passing < 1:
			return invalid("Invalid Weights: Passing must be greater than 0")
		case w.Warning < 0:
			return invalid("Invalid Weights: Warning must be greater or equal than 0")
		case w.Passing > 65535 || w.Warning > 65535:
			return invalid("Invalid Weights: DNS Weight must be between 0 and 65535")
		}
	}
	if err := validateMeta(s.Meta); err != nil {
		return invalid("Invalid Service Meta: %v", err)
	}
	if s.Port < 0 || s.Port > 65535 {
		return invalid("Invalid service port %d", s.Port)
	}
	for _, c := range s.Checks {
		if c.Status != "" && !validStatus(c.Status) {
			return invalid("Status for checks must 'passing', 'warning', 'critical'")
		}
		if err := c.Validate(); err != nil {
			return invalid("Invalid check: %v", err)
		}
	}
	return nil
}

// NodeService returns the catalog record for s on this node: ID defaults
// to Name and Weights to {1, 1}, as Consul's agent does so anti-entropy
// does not see a difference in them.
func (s ServiceDefinition) NodeService() *structs.NodeService {
	ns := &structs.NodeService{
		Kind:              s.Kind,
		ID:                s.ID,
		Service:           s.Name,
		Tags:              cloneStrings(s.Tags),
		Address:           s.Address,
		TaggedAddresses:   cloneMap(s.TaggedAddresses),
		Meta:              cloneMap(s.Meta),
		Port:              s.Port,
		EnableTagOverride: s.EnableTagOverride,
		Weights:           &structs.Weights{Passing: 1, Warning: 1},
	}
	if ns.ID == "" {
		ns.ID = s.Name
	}
	if s.Weights != nil {
		w := *s.Weights
		ns.Weights = &w
	}
	return ns
}

// ServiceCheckID returns the ID Consul gives the i-th (0-based) of n
// checks of service id when the definition names none.
func ServiceCheckID(serviceID string, i, n int) string {
	if n > 1 {
		return fmt.Sprintf("service:%s:%d", serviceID, i+1)
	}
	return "service:" + serviceID
}

// HealthCheck returns the check's record on node, critical unless the
// definition sets a status. Service fields are left for the caller.
func (c CheckDefinition) HealthCheck(node string) *structs.HealthCheck {
	hc := &structs.HealthCheck{
		Node:       node,
		CheckID:    c.ID,
		Name:       c.Name,
		Status:     structs.HealthCritical,
		Notes:      c.Notes,
		ServiceID:  c.ServiceID,
		Type:       CheckKind(c.Type),
		Definition: cloneCheckType(c.Type),
	}
	if hc.CheckID == "" {
		hc.CheckID = c.Name
	}
	if c.Status != "" {
		hc.Status = c.Status
	}
	return hc
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string{}, s...)
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneCheckType(ct structs.CheckType) structs.CheckType {
	ct.Args = cloneStrings(ct.Args)
	if ct.Header != nil {
		h := make(map[string][]string, len(ct.Header))
		for k, v := range ct.Header {
			h[k] = cloneStrings(v)
		}
		ct.Header = h
	}
	return ct
}

func cloneService(s *structs.NodeService) *structs.NodeService {
	if s == nil {
		return nil
	}
	c := *s
	c.Tags = cloneStrings(s.Tags)
	c.TaggedAddresses = cloneMap(s.TaggedAddresses)
	c.Meta = cloneMap(s.Meta)
	if s.Weights != nil {
		w := *s.Weights
		c.Weights = &w
	}
	return &c
}

func cloneCheck(h *structs.HealthCheck) *structs.HealthCheck {
	if h == nil {
		return nil
	}
	c := *h
	c.ServiceTags = cloneStrings(h.ServiceTags)
	c.Definition = cloneCheckType(h.Definition)
	return &c
}
