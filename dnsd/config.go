package dnsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/consort-io/consort/pkg/config"
)

// Config holds everything dnsd needs. The zero value of a field takes
// its default (see DefaultConfig); Node and Datacenter are the caller's.
type Config struct {
	// Node is this node's name; the apex NS record names it.
	Node string
	// Datacenter is this node's datacenter: the <dc> of answers, and the
	// only one dnsd answers for (no WAN forwarding yet).
	Datacenter string
	// Addr is where DNS is served, UDP and TCP on the same port
	// (host:port). Port 0 picks one free for both; see Daemon.Addr.
	Addr string
	// Domain is the DNS domain (default "consul."); AltDomain, when set,
	// is answered as well, each answer using the domain it was asked in.
	Domain    string
	AltDomain string

	// CatalogHTTP is catalogd's HTTP API (host:port) that the view is
	// loaded from, with ?stale reads.
	CatalogHTTP string
	// NATSURL is the event bus; empty runs without events, on MaxAge
	// reloads alone. SubjectPrefix is the bus prefix (default "consort").
	NATSURL       string
	SubjectPrefix string

	// MaxAge is how old the view may grow before a full reload when no
	// event asked for one (default 5 s).
	MaxAge time.Duration
	// Debounce gathers events this long before reloading the services
	// they name (default 20 ms).
	Debounce time.Duration
	// RequestTimeout bounds one HTTP request to catalogd (default 5 s).
	RequestTimeout time.Duration
	// LoadParallel bounds concurrent requests during a full load
	// (default 8).
	LoadParallel int

	// NodeTTL is the TTL of node answers (default 0, as Consul).
	NodeTTL time.Duration
	// ServiceTTL maps service names to the TTL of their answers: an
	// exact name first, then the longest "prefix*" pattern, then "*".
	// Absent: 0, as Consul.
	ServiceTTL map[string]time.Duration
	// OnlyPassing leaves out instances with a warning check, as Consul's
	// dns_config.only_passing. Critical instances are always left out.
	OnlyPassing bool
	// UDPAnswerLimit caps the answers of a UDP reply to a client without
	// EDNS0 (default 3, Consul's udp_answer_limit).
	UDPAnswerLimit int
	// ARecordLimit, when positive, caps the A/AAAA records of any answer
	// (Consul's a_record_limit); no TC bit is set for that cap.
	ARecordLimit int
	// SilentTrim leaves the TC bit clear when a UDP reply was trimmed, as
	// Consul does without enable_truncate. Off: TC is set whenever an
	// answer was cut, so resolvers retry over TCP.
	SilentTrim bool

	// Log is the logger; nil discards.
	Log *slog.Logger
}

// Defaults.
const (
	DefaultAddr           = "127.0.0.1:8600"
	DefaultDomain         = "consul."
	DefaultMaxAge         = 5 * time.Second
	DefaultDebounce       = 20 * time.Millisecond
	DefaultRequestTimeout = 5 * time.Second
	DefaultLoadParallel   = 8
	DefaultUDPAnswerLimit = 3
)

// DefaultConfig returns the defaults; Node and Datacenter are left for
// the caller, and CatalogHTTP is catalogd's default HTTP address.
func DefaultConfig() Config {
	return Config{
		Addr:           DefaultAddr,
		Domain:         DefaultDomain,
		CatalogHTTP:    "127.0.0.1:8500",
		SubjectPrefix:  "consort",
		MaxAge:         DefaultMaxAge,
		Debounce:       DefaultDebounce,
		RequestTimeout: DefaultRequestTimeout,
		LoadParallel:   DefaultLoadParallel,
		UDPAnswerLimit: DefaultUDPAnswerLimit,
	}
}

// withDefaults fills zero fields from DefaultConfig and puts domains in
// canonical form (lower case, fully qualified).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.Domain == "" {
		c.Domain = d.Domain
	}
	c.Domain = canonical(c.Domain)
	if c.AltDomain != "" {
		c.AltDomain = canonical(c.AltDomain)
	}
	if c.CatalogHTTP == "" {
		c.CatalogHTTP = d.CatalogHTTP
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = d.SubjectPrefix
	}
	if c.MaxAge == 0 {
		c.MaxAge = d.MaxAge
	}
	if c.Debounce == 0 {
		c.Debounce = d.Debounce
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.LoadParallel == 0 {
		c.LoadParallel = d.LoadParallel
	}
	if c.UDPAnswerLimit == 0 {
		c.UDPAnswerLimit = d.UDPAnswerLimit
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// canonical lower-cases a domain and makes it fully qualified.
func canonical(domain string) string {
	return dns.Fqdn(strings.ToLower(strings.TrimSpace(domain)))
}

// Validate reports every problem with c, joined. It does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.Datacenter == "" {
		errs = append(errs, errors.New("datacenter is required"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("dns address %q: %w", c.Addr, err))
	}
	for _, d := range []string{c.Domain, c.AltDomain} {
		if d == "" || d == "." {
			continue
		}
		if _, ok := dns.IsDomainName(d); !ok {
			errs = append(errs, fmt.Errorf("domain %q: not a domain name", d))
		}
	}
	if c.Domain == "" || c.Domain == "." {
		errs = append(errs, errors.New("domain is required and cannot be the root"))
	}
	if c.AltDomain != "" && strings.EqualFold(dns.Fqdn(c.AltDomain), dns.Fqdn(c.Domain)) {
		errs = append(errs, errors.New("alt domain equals domain"))
	}
	if _, _, err := net.SplitHostPort(c.CatalogHTTP); err != nil {
		errs = append(errs, fmt.Errorf("catalog http address %q: %w", c.CatalogHTTP, err))
	}
	if c.MaxAge <= 0 || c.Debounce < 0 || c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("max age and request timeout must be positive, debounce not negative"))
	}
	if c.LoadParallel < 1 {
		errs = append(errs, fmt.Errorf("load parallel %d: must be at least 1", c.LoadParallel))
	}
	if c.UDPAnswerLimit < 1 || c.ARecordLimit < 0 {
		errs = append(errs, errors.New("udp answer limit must be at least 1, a record limit not negative"))
	}
	if c.NodeTTL < 0 {
		errs = append(errs, errors.New("node ttl must not be negative"))
	}
	for name, ttl := range c.ServiceTTL {
		if ttl < 0 {
			errs = append(errs, fmt.Errorf("service ttl %q: negative", name))
		}
	}
	return errors.Join(errs...)
}

// ConfigFromNode turns the node config into dnsd's Config: DNS on
// client_addr:ports.dns (127.0.0.1:8600 by default; a wildcard
// client_addr is served as is), the view read from catalogd's HTTP API on
// client_addr:ports.http (a wildcard read through loopback), events from
// nats.url. The node config has no dns_config block yet, so TTLs, limits
// and the domain take their defaults. Log is left for the caller. A
// disabled DNS port (ports.dns = -1) leaves Addr empty; the caller
// should not start dnsd then.
func ConfigFromNode(n config.Node) Config {
	c := DefaultConfig()
	c.Node = n.NodeName
	c.Datacenter = n.Datacenter
	c.NATSURL = n.NATS.URL
	if n.NATS.SubjectPrefix != "" {
		c.SubjectPrefix = n.NATS.SubjectPrefix
	}
	host := n.ClientAddr
	if host == "" {
		host = "127.0.0.1"
	}
	switch {
	case n.Ports.DNS < 0:
		c.Addr = ""
	case n.Ports.DNS > 0:
		c.Addr = net.JoinHostPort(host, strconv.Itoa(n.Ports.DNS))
	}
	if n.Ports.HTTP > 0 {
		h := host
		switch h {
		case "0.0.0.0":
			h = "127.0.0.1"
		case "::":
			h = "::1"
		}
		c.CatalogHTTP = net.JoinHostPort(h, strconv.Itoa(n.Ports.HTTP))
	}
	return c
}

// serviceTTL is the TTL of answers about a service, in seconds.
func (c Config) serviceTTL(name string) uint32 {
	if len(c.ServiceTTL) == 0 {
		return 0
	}
	if t, ok := c.ServiceTTL[name]; ok {
		return secs(t)
	}
	best, found := -1, time.Duration(0)
	for pat, t := range c.ServiceTTL {
		p, ok := strings.CutSuffix(pat, "*")
		if !ok || !strings.HasPrefix(name, p) {
			continue
		}
		if len(p) > best {
			best, found = len(p), t
		}
	}
	if best >= 0 {
		return secs(found)
	}
	return 0
}

func secs(d time.Duration) uint32 { return uint32(d / time.Second) }
