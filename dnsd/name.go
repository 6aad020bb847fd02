package dnsd

import (
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// kind is what a query name asks about.
type kind int

const (
	kindInvalid kind = iota // inside the domain, but no form dnsd knows
	kindOutside             // outside the domain and not a reverse name: refused
	kindApex                // the domain itself: SOA, NS
	kindStatus              // status.consort.<domain>: the view's age
	kindNode                // <node>.node[.<dc>[.dc]].<domain>
	kindService             // [<tag>.]<service>.service[.<dc>[.dc]].<domain>, RFC 2782
	kindAddr                // <hex>.addr[.<dc>[.dc]].<domain>
	kindQuery               // <query>.query[.<dc>].<domain>: prepared queries (not yet)
	kindPTR                 // <reversed ip>.in-addr.arpa. or .ip6.arpa.
)

// StatusLabel is the name, under the domain, of the TXT record that tells
// how old dnsd's view is: "status.consort.consul." by default.
const StatusLabel = "status.consort"

// query is a parsed question name.
type query struct {
	kind   kind
	domain string // the domain the name was asked in (canonical form)
	dc     string // "" when the name gave none
	name   string // node or service name; the query name for kindQuery
	tag    string // service tag filter; "" for none
	ip     netip.Addr
}

// parseName parses a question name against the configured domains. It
// never fails: what it cannot read is kindInvalid (inside a domain) or
// kindOutside.
func parseName(qname string, domains ...string) query {
	name := strings.ToLower(dns.Fqdn(qname))
	if ip, ok := parseReverse(name); ok {
		return query{kind: kindPTR, ip: ip}
	}
	for _, d := range domains {
		if d == "" {
			continue
		}
		if name == d {
			return query{kind: kindApex, domain: d}
		}
		if rest, ok := strings.CutSuffix(name, "."+d); ok {
			q := parseLabels(rest)
			q.domain = d
			return q
		}
	}
	return query{kind: kindOutside}
}

// parseLabels reads the labels before the domain (dot-separated, no
// trailing dot).
func parseLabels(rest string) query {
	if rest == StatusLabel {
		return query{kind: kindStatus}
	}
	labels := dns.SplitDomainName(rest + ".")
	if len(labels) == 0 {
		return query{kind: kindInvalid}
	}
	// An empty label (".service.consul.", "a..node.consul.") names
	// nothing: no query form may take one as a name, tag or datacenter.
	for _, l := range labels {
		if l == "" {
			return query{kind: kindInvalid}
		}
	}
	// The rightmost type label decides, as in Consul; what is left of it
	// names the thing, what is right of it the datacenter.
	for i := len(labels) - 1; i >= 0; i-- {
		var k kind
		switch labels[i] {
		case "node":
			k = kindNode
		case "service":
			k = kindService
		case "addr":
			k = kindAddr
		case "query":
			k = kindQuery
		default:
			continue
		}
		dc, ok := parseDC(labels[i+1:])
		if !ok || i == 0 {
			return query{kind: kindInvalid}
		}
		return parts(k, labels[:i], dc)
	}
	// RFC 2782 without ".service": _<service>._<tag>[.<dc>].
	if len(labels) >= 2 && rfc2782(labels[0], labels[1]) {
		if dc, ok := parseDC(labels[2:]); ok {
			return parts(kindService, labels[:2], dc)
		}
	}
	return query{kind: kindInvalid}
}

// parseDC reads what follows the type label: nothing, "<dc>" or
// "<dc>.dc".
func parseDC(s []string) (string, bool) {
	switch {
	case len(s) == 0:
		return "", true
	case len(s) == 1:
		return s[0], true
	case len(s) == 2 && s[1] == "dc":
		return s[0], true
	}
	return "", false
}

// rfc2782 reports whether two labels are _<service>._<tag>.
func rfc2782(a, b string) bool {
	return len(a) > 1 && len(b) > 1 && a[0] == '_' && b[0] == '_'
}

// parts builds the query from the labels left of the type label.
func parts(k kind, p []string, dc string) query {
	q := query{kind: k, dc: dc}
	switch k {
	case kindNode, kindQuery:
		q.name = strings.Join(p, ".")
	case kindService:
		n := len(p)
		if n == 2 && rfc2782(p[0], p[1]) {
			q.name, q.tag = p[0][1:], p[1][1:]
			if q.tag == "tcp" {
				q.tag = ""
			}
			return q
		}
		q.name = p[n-1]
		if n > 1 {
			q.tag = strings.Join(p[:n-1], ".")
		}
	case kindAddr:
		if len(p) != 1 {
			return query{kind: kindInvalid}
		}
		ip, ok := parseHexAddr(p[0])
		if !ok {
			return query{kind: kindInvalid}
		}
		q.ip = ip
	}
	return q
}

// parseHexAddr reads the <hex> of an addr name: 8 hex digits for IPv4,
// 32 for IPv6.
func parseHexAddr(s string) (netip.Addr, bool) {
	if len(s) != 8 && len(s) != 32 {
		return netip.Addr{}, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(b)
	return ip, ok
}

// hexAddr is the <hex> label of ip.
func hexAddr(ip netip.Addr) string {
	b := ip.AsSlice()
	return hex.EncodeToString(b)
}

// parseReverse reads an in-addr.arpa or ip6.arpa name.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		l := strings.Split(rest, ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, s := range l {
			if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
				return netip.Addr{}, false
			}
			v := 0
			for _, c := range []byte(s) {
				if c < '0' || c > '9' {
					return netip.Addr{}, false
				}
				v = v*10 + int(c-'0')
			}
			if v > 255 {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		l := strings.Split(rest, ".")
		if len(l) != 32 {
			return netip.Addr{}, false
		}
		var h [32]byte
		for i, s := range l {
			if len(s) != 1 {
				return netip.Addr{}, false
			}
			h[31-i] = s[0]
		}
		b, err := hex.DecodeString(string(h[:]))
		if err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(b)), true
	}
	return netip.Addr{}, false
}
