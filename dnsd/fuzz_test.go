package dnsd

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in            string
		kind          kind
		name, tag, dc string
	}{
		{"web.service.consul.", kindService, "web", "", ""},
		{"v1.web.service.dc1.consul", kindService, "web", "v1", "dc1"},
		{"a.b.web.service.consul.", kindService, "web", "a.b", ""},
		{"_web._tcp.service.consul.", kindService, "web", "", ""},
		{"_web._v1.dc2.consul.", kindService, "web", "v1", "dc2"},
		{"web.service.dc1.dc.consul.", kindService, "web", "", "dc1"},
		{"web.service.a.b.c.consul.", kindInvalid, "", "", ""},
		{"n.example.node.consul.", kindNode, "n.example", "", ""},
		{"node.consul.", kindInvalid, "", "", ""},
		{"q.query.consul.", kindQuery, "q", "", ""},
		{"0a000001.addr.dc1.consul.", kindAddr, "", "", "dc1"},
		{"0a00001.addr.dc1.consul.", kindInvalid, "", "", ""},
		{"status.consort.consul.", kindStatus, "", "", ""},
		{"consul.", kindApex, "", "", ""},
		{"CONSUL", kindApex, "", "", ""},
		{"example.com.", kindOutside, "", "", ""},
		{"1.2.3.4.in-addr.arpa.", kindPTR, "", "", ""},
		{"01.2.3.4.in-addr.arpa.", kindOutside, "", "", ""},
		{"256.2.3.4.in-addr.arpa.", kindOutside, "", "", ""},
	}
	for _, tc := range tests {
		q := parseName(tc.in, "consul.", "")
		if q.kind != tc.kind || q.name != tc.name || q.tag != tc.tag || q.dc != tc.dc {
			t.Errorf("%s: got %v %q %q %q, want %v %q %q %q", tc.in, q.kind, q.name, q.tag, q.dc, tc.kind, tc.name, tc.tag, tc.dc)
		}
	}
	ip6 := dns.Fqdn(strings.TrimSuffix(mustReverse(t, "fd00::6"), "."))
	if q := parseName(ip6, "consul."); q.kind != kindPTR || q.ip.String() != "fd00::6" {
		t.Errorf("%s: %v %v", ip6, q.kind, q.ip)
	}
}

func mustReverse(t *testing.T, ip string) string {
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzQueryName checks that name parsing never panics and that what it
// returns is consistent with the name.
func FuzzQueryName(f *testing.F) {
	for _, s := range []string{
		"web.service.consul.", "v1.web.service.dc1.consul.", "_web._tcp.service.consul.",
		"_web._tcp.consul.", "n.node.dc1.dc.consul.", "0a000001.addr.dc1.consul.",
		"1.0.0.10.in-addr.arpa.", "6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
		"consul.", "status.consort.consul.", "q.query.consul.", ".", "", "..consul.", "a\\.b.node.consul.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q := parseName(name, "consul.", "alt.example.")
		switch q.kind {
		case kindService:
			if q.name == "" {
				t.Fatalf("%q: service without a name", name)
			}
		case kindNode, kindQuery:
			if q.name == "" {
				t.Fatalf("%q: %v without a name", name, q.kind)
			}
		case kindAddr, kindPTR:
			if !q.ip.IsValid() {
				t.Fatalf("%q: %v without an address", name, q.kind)
			}
		}
		if q.kind != kindOutside && q.kind != kindPTR && q.domain == "" {
			t.Fatalf("%q: %v without a domain", name, q.kind)
		}
	})
}

// fuzzDaemon is a Daemon with a loaded view and no network.
func fuzzDaemon(f *testing.F) *Daemon {
	d, err := New(Config{Datacenter: "dc1", Node: "node1", CatalogHTTP: "127.0.0.1:1"})
	if err != nil {
		f.Fatal(err)
	}
	fc := &fakeCatalog{services: map[string][]*entryJSON{}}
	fc.addNode("node1", "10.0.0.1", map[string]string{"k": "v"})
	fc.addInstance("web", inst{node: "node1", nodeAddr: "10.0.0.1", port: 80, tags: []string{"t"}})
	fc.addInstance("web", inst{node: "node2", nodeAddr: "10.0.0.2", svcAddr: "10.9.9.9", port: 81})
	v := emptyView()
	v.services["web"] = buildService("web", fc.services["web"])
	v.nodes = buildNodes(fc.nodes)
	v.loaded = v.loaded.AddDate(2000, 0, 0)
	d.view.Store(v)
	return d
}

// FuzzMessage feeds whole packets through the server's path. It must
// never panic; a packet the header check accepts but that does not
// unpack gets FORMERR; every reply unpacks.
func FuzzMessage(f *testing.F) {
	d := fuzzDaemon(f)
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"web.service.consul.", dns.TypeSRV, false}, {"web.service.consul.", dns.TypeA, true},
		{"node1.node.consul.", dns.TypeTXT, false}, {"consul.", dns.TypeNS, false},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, false}, {"example.com.", dns.TypeA, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if q.edns {
			m.SetEdns0(4096, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b[:len(b)-3], true)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'}, false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		out := d.serveWire(b, tcp)
		if out == nil {
			return
		}
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if !r.Response {
			t.Fatal("reply without QR")
		}
		var req dns.Msg
		if req.Unpack(b) != nil && r.Rcode != dns.RcodeFormatError && r.Rcode != dns.RcodeNotImplemented {
			t.Fatalf("malformed packet answered %s", dns.RcodeToString[r.Rcode])
		}
		if !tcp && len(out) > 512 && (req.IsEdns0() == nil || len(out) > int(req.IsEdns0().UDPSize())) {
			t.Fatalf("udp reply of %d bytes", len(out))
		}
	})
}
