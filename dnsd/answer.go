package dnsd

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// answer builds the reply to req from the current view. It never
// blocks. req has exactly one question (accept sees to it); anything
// else is answered FORMERR.
func (d *Daemon) answer(req *dns.Msg, tcp bool, now time.Time) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.Compress = true
	if len(req.Question) != 1 {
		resp.SetRcodeFormatError(req)
		return resp
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp
		}
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	pq := parseName(q.Name, d.c.Domain, d.c.AltDomain)
	v := d.view.Load()
	a := &reply{d: d, v: v, resp: resp, q: q, pq: pq, now: now}
	switch pq.kind {
	case kindOutside:
		// No recursors yet: names outside the domain are refused.
		resp.Rcode = dns.RcodeRefused
		return resp
	case kindInvalid:
		a.nxdomain()
	case kindApex:
		a.apex()
	case kindStatus:
		a.status()
	case kindQuery:
		d.log.Info("prepared query lookup answered NXDOMAIN: prepared queries are not implemented", "name", q.Name)
		a.nxdomain()
	case kindAddr:
		a.addr()
	case kindPTR, kindNode, kindService:
		if pq.dc != "" && !strings.EqualFold(pq.dc, d.c.Datacenter) {
			d.log.Debug("lookup in another datacenter answered NXDOMAIN", "name", q.Name, "dc", pq.dc)
			a.nxdomain()
			break
		}
		if v.loaded.IsZero() {
			resp.Rcode = dns.RcodeServerFailure
			return resp
		}
		switch pq.kind {
		case kindPTR:
			a.ptr()
		case kindNode:
			a.node()
		default:
			a.service()
		}
	}
	d.trim(req, resp, tcp)
	return resp
}

// reply is one answer being built.
type reply struct {
	d    *Daemon
	v    *view
	resp *dns.Msg
	q    dns.Question
	pq   query
	now  time.Time
}

// soa is the domain's SOA record, as Consul's defaults make it.
func (a *reply) soa() dns.RR {
	dom := a.pq.domain
	if dom == "" {
		dom = a.d.c.Domain
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: dom, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
		Ns:      "ns." + dom,
		Mbox:    "hostmaster." + dom,
		Serial:  uint32(a.now.Unix()),
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  0,
	}
}

// nxdomain answers "no such name" with the SOA in Authority.
func (a *reply) nxdomain() {
	a.resp.Rcode = dns.RcodeNameError
	a.resp.Ns = append(a.resp.Ns, a.soa())
}

// nodata finishes an answer: an existing name without records of the
// asked type gets NOERROR with the SOA in Authority.
func (a *reply) nodata() {
	if len(a.resp.Answer) == 0 {
		a.resp.Ns = append(a.resp.Ns, a.soa())
	}
}

func (a *reply) wants(t uint16) bool { return a.q.Qtype == t || a.q.Qtype == dns.TypeANY }

// nodeName is <node>.node.<dc>.<domain>.
func (a *reply) nodeName(n string) string {
	return n + ".node." + a.d.c.Datacenter + "." + a.pq.domainOr(a.d.c.Domain)
}

func (q query) domainOr(def string) string {
	if q.domain != "" {
		return q.domain
	}
	return def
}

// apex answers SOA and NS at the domain itself.
func (a *reply) apex() {
	if a.wants(dns.TypeSOA) {
		a.resp.Answer = append(a.resp.Answer, a.soa())
	}
	if a.wants(dns.TypeNS) {
		target := "ns." + a.pq.domain
		if a.d.c.Node != "" {
			if t := a.nodeName(a.d.c.Node); valid(t) {
				target = t
				if n := a.v.nodes[strings.ToLower(a.d.c.Node)]; n != nil {
					a.resp.Extra = append(a.resp.Extra, addrRRs(t, n.addr, 0, dns.TypeANY)...)
				}
			}
		}
		a.resp.Answer = append(a.resp.Answer, &dns.NS{
			Hdr: dns.RR_Header{Name: a.q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET}, Ns: target})
	}
	a.nodata()
}

// status answers TXT at StatusLabel: how old the view is.
func (a *reply) status() {
	if !a.wants(dns.TypeTXT) {
		a.nodata()
		return
	}
	v := a.v
	loaded, age := "never", "-1"
	if !v.loaded.IsZero() {
		loaded = v.loaded.UTC().Format(time.RFC3339Nano)
		age = strconv.FormatInt(a.now.Sub(v.loaded).Milliseconds(), 10)
	}
	busState := "off"
	if a.d.c.NATSURL != "" {
		busState = "on"
	}
	lastErr := ""
	if e := a.d.lastErr.Load(); e != nil {
		lastErr = *e
	}
	// One record, one string per fact, so no trimming splits it.
	var parts []string
	for _, kv := range []string{
		"age_ms=" + age,
		"loaded=" + loaded,
		"index=" + strconv.FormatUint(v.index, 10),
		"services=" + strconv.Itoa(len(v.services)),
		"nodes=" + strconv.Itoa(len(v.nodes)),
		"events=" + strconv.FormatUint(a.d.events.Load(), 10),
		"bus=" + busState,
		"error=" + lastErr,
	} {
		parts = append(parts, kv[:min(len(kv), 255)])
	}
	a.resp.Answer = append(a.resp.Answer, &dns.TXT{
		Hdr: dns.RR_Header{Name: a.q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: parts})
}

// txt is one TXT record holding s, cut into 255-byte strings.
func txt(name string, ttl uint32, s string) dns.RR {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, s[:255])
		s = s[255:]
	}
	parts = append(parts, s)
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: parts}
}

// metaTXT is a node's meta as TXT records, "key=value" sorted by key; a
// key starting "rfc1035-" gives its value alone, as Consul's.
func metaTXT(name string, ttl uint32, meta map[string]string) []dns.RR {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		s := k + "=" + meta[k]
		if strings.HasPrefix(k, "rfc1035-") {
			s = meta[k]
		}
		out = append(out, txt(name, ttl, s))
	}
	return out
}

// addrRRs is the record for addr under name, by what is asked: A for an
// IPv4 address (A or ANY), AAAA for IPv6 (AAAA or ANY), a CNAME for a
// host name (A, AAAA or ANY). Nothing for another type.
func addrRRs(name, addr string, ttl uint32, qtype uint16) []dns.RR {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	any := qtype == dns.TypeANY
	ip, err := netip.ParseAddr(addr)
	switch {
	case err != nil:
		if addr == "" || !(any || qtype == dns.TypeA || qtype == dns.TypeAAAA) || !valid(dns.Fqdn(addr)) {
			return nil
		}
		return []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(addr)}}
	case ip.Unmap().Is4():
		if any || qtype == dns.TypeA {
			return []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: ip.Unmap().AsSlice()}}
		}
	default:
		if any || qtype == dns.TypeAAAA {
			return []dns.RR{&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip.AsSlice()}}
		}
	}
	return nil
}

// valid reports whether name packs as a DNS name.
func valid(name string) bool {
	_, ok := dns.IsDomainName(name)
	return ok && len(name) <= 255
}

// addr answers <hex>.addr: the address the name spells.
func (a *reply) addr() {
	if a.pq.dc != "" && !strings.EqualFold(a.pq.dc, a.d.c.Datacenter) {
		a.nxdomain()
		return
	}
	a.resp.Answer = append(a.resp.Answer, addrRRs(a.q.Name, a.pq.ip.String(), 0, a.q.Qtype)...)
	a.nodata()
}

// node answers <node>.node: its address, and its meta as TXT (in Answer
// for TXT queries, in Additional with addresses).
func (a *reply) node() {
	n := a.v.nodes[strings.ToLower(a.pq.name)]
	if n == nil {
		a.nxdomain()
		return
	}
	ttl := secs(a.d.c.NodeTTL)
	a.resp.Answer = append(a.resp.Answer, addrRRs(a.q.Name, n.addr, ttl, a.q.Qtype)...)
	switch {
	case a.wants(dns.TypeTXT):
		a.resp.Answer = append(a.resp.Answer, metaTXT(a.q.Name, ttl, n.meta)...)
	case len(a.resp.Answer) > 0:
		a.resp.Extra = append(a.resp.Extra, metaTXT(a.q.Name, ttl, n.meta)...)
	}
	a.nodata()
}

// ptr answers a reverse lookup: the nodes at that address, or else the
// services whose instances have it as their own address.
func (a *reply) ptr() {
	dom := a.d.c.Domain
	var targets []string
	for _, n := range a.v.nodesAt(a.pq.ip) {
		targets = append(targets, n.name+".node."+a.d.c.Datacenter+"."+dom)
	}
	if len(targets) == 0 {
		for _, s := range a.v.servicesAt(a.pq.ip) {
			targets = append(targets, s+".service."+a.d.c.Datacenter+"."+dom)
		}
	}
	if len(targets) == 0 {
		a.resp.Rcode = dns.RcodeNameError
		return
	}
	if !a.wants(dns.TypePTR) {
		return
	}
	for _, t := range targets {
		if valid(t) {
			a.resp.Answer = append(a.resp.Answer, &dns.PTR{
				Hdr: dns.RR_Header{Name: a.q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: t})
		}
	}
}

// healthy returns the instances a lookup answers with, shuffled:
// critical ones never, warning ones unless OnlyPassing, and only those
// with the tag when one is asked.
func (a *reply) healthy(s *service) []*instance {
	out := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		switch {
		case in.status == statusCritical:
		case a.d.c.OnlyPassing && in.status != statusPassing:
		case a.pq.tag != "" && !in.hasTag(a.pq.tag):
		default:
			out = append(out, in)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// service answers a service lookup: A/AAAA per healthy instance (one per
// distinct address), or SRV records with their targets' addresses in
// Additional. No healthy instance is NXDOMAIN, as in Consul.
func (a *reply) service() {
	s := a.v.services[strings.ToLower(a.pq.name)]
	if s == nil {
		a.nxdomain()
		return
	}
	ins := a.healthy(s)
	if len(ins) == 0 {
		a.nxdomain()
		return
	}
	ttl := a.d.c.serviceTTL(s.name)
	if a.q.Qtype == dns.TypeSRV {
		a.srv(ins, ttl)
		return
	}
	seen := make(map[string]struct{}, len(ins))
	for _, in := range ins {
		addr := in.address()
		if _, dup := seen[addr]; dup {
			continue
		}
		seen[addr] = struct{}{}
		a.resp.Answer = append(a.resp.Answer, addrRRs(a.q.Name, addr, ttl, a.q.Qtype)...)
	}
	if l := a.d.c.ARecordLimit; l > 0 && len(a.resp.Answer) > l {
		a.resp.Answer = a.resp.Answer[:l]
	}
	a.nodata()
}

// srv answers SRV: priority 1, weight by status, the target a node name,
// an <hex>.addr name when the instance has an address of its own, or
// the host name it has.
func (a *reply) srv(ins []*instance, ttl uint32) {
	extra := map[string]bool{}
	for _, in := range ins {
		target, addr := a.nodeName(in.node), in.nodeAddr
		if in.addr != "" && in.addr != in.nodeAddr {
			addr = in.addr
			if ip, err := netip.ParseAddr(in.addr); err == nil {
				target = hexAddr(ip.Unmap()) + ".addr." + a.d.c.Datacenter + "." + a.pq.domain
			} else {
				target = dns.Fqdn(in.addr)
			}
		} else if _, err := netip.ParseAddr(in.nodeAddr); err != nil && in.nodeAddr != "" {
			target = dns.Fqdn(in.nodeAddr)
		}
		if !valid(target) || in.port < 0 || in.port > 65535 {
			continue
		}
		a.resp.Answer = append(a.resp.Answer, &dns.SRV{
			Hdr:      dns.RR_Header{Name: a.q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
			Priority: 1,
			Weight:   in.weight(),
			Port:     uint16(in.port),
			Target:   target,
		})
		if extra[target] {
			continue
		}
		extra[target] = true
		if _, err := netip.ParseAddr(addr); err == nil {
			a.resp.Extra = append(a.resp.Extra, addrRRs(target, addr, ttl, dns.TypeANY)...)
		}
	}
	a.nodata()
}

// String names a kind, for tests and logs.
func (k kind) String() string {
	names := [...]string{"invalid", "outside", "apex", "status", "node", "service", "addr", "query", "ptr"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}
