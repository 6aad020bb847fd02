package dnsd

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/nats-io/nats.go"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/embednats"
)

// standardCatalog is three nodes and two services.
func standardCatalog(t *testing.T) *fakeCatalog {
	f := newFakeCatalog(t)
	f.addNode("node1", "10.0.0.1", map[string]string{"rack": "r1", "rfc1035-x": "raw"})
	f.addNode("node2", "10.0.0.2", nil)
	f.addNode("node6", "fd00::6", nil)
	f.addInstance("web", inst{node: "node1", nodeAddr: "10.0.0.1", port: 80, tags: []string{"primary"}})
	f.addInstance("web", inst{node: "node2", nodeAddr: "10.0.0.2", port: 80, status: statusWarning})
	f.addInstance("db", inst{node: "node2", nodeAddr: "10.0.0.2", svcAddr: "10.1.0.9", port: 5432,
		weights: &weightsJSON{Passing: 10, Warning: 2}})
	f.addInstance("v6", inst{node: "node6", nodeAddr: "fd00::6", port: 8080})
	f.addInstance("down", inst{node: "node1", nodeAddr: "10.0.0.1", port: 1, status: statusCritical})
	return f
}

func rrStrings(rrs []dns.RR) string {
	var s []string
	for _, rr := range rrs {
		h := rr.Header()
		s = append(s, strings.TrimPrefix(rr.String(), h.String()))
	}
	return strings.Join(s, " | ")
}

func TestQueryForms(t *testing.T) {
	f := standardCatalog(t)
	d := startDaemon(t, Config{CatalogHTTP: f.addr(), AltDomain: "alt.example"})
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		// answer and extra are the record data, sorted by the query so
		// shuffling does not matter; "" means none.
		answer, extra string
		soa           bool // SOA in Authority
	}{
		{"node1.node.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "rack=r1 | raw", false},
		{"NODE1.node.dc1.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "rack=r1 | raw", false},
		{"node1.node.dc1.dc.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "rack=r1 | raw", false},
		{"node1.node.consul.", dns.TypeTXT, dns.RcodeSuccess, "rack=r1 | raw", "", false},
		{"node1.node.consul.", dns.TypeAAAA, dns.RcodeSuccess, "", "", true},
		{"node6.node.consul.", dns.TypeAAAA, dns.RcodeSuccess, "fd00::6", "", false},
		{"nope.node.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"node1.node.alt.example.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "rack=r1 | raw", false},
		{"web.service.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1 | 10.0.0.2", "", false},
		{"web.service.dc1.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1 | 10.0.0.2", "", false},
		{"primary.web.service.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "", false},
		{"PRIMARY.web.service.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "", false},
		{"other.web.service.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"web.service.consul.", dns.TypeTXT, dns.RcodeSuccess, "", "", true},
		{"web.service.consul.", dns.TypeSRV, dns.RcodeSuccess,
			"1 1 80 node1.node.dc1.consul. | 1 1 80 node2.node.dc1.consul.", "10.0.0.1 | 10.0.0.2", false},
		{"db.service.consul.", dns.TypeSRV, dns.RcodeSuccess, "1 10 5432 0a010009.addr.dc1.consul.", "10.1.0.9", false},
		{"db.service.consul.", dns.TypeA, dns.RcodeSuccess, "10.1.0.9", "", false},
		{"v6.service.consul.", dns.TypeAAAA, dns.RcodeSuccess, "fd00::6", "", false},
		{"_web._tcp.service.consul.", dns.TypeSRV, dns.RcodeSuccess,
			"1 1 80 node1.node.dc1.consul. | 1 1 80 node2.node.dc1.consul.", "10.0.0.1 | 10.0.0.2", false},
		{"_web._tcp.consul.", dns.TypeSRV, dns.RcodeSuccess,
			"1 1 80 node1.node.dc1.consul. | 1 1 80 node2.node.dc1.consul.", "10.0.0.1 | 10.0.0.2", false},
		{"_web._primary.service.dc1.consul.", dns.TypeSRV, dns.RcodeSuccess, "1 1 80 node1.node.dc1.consul.", "10.0.0.1", false},
		{"down.service.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"nope.service.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"web.service.dc2.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"0a000001.addr.dc1.consul.", dns.TypeA, dns.RcodeSuccess, "10.0.0.1", "", false},
		{"fd000000000000000000000000000006.addr.dc1.consul.", dns.TypeAAAA, dns.RcodeSuccess, "fd00::6", "", false},
		{"zz000001.addr.dc1.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "node1.node.dc1.consul.", "", false},
		{"9.0.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "db.service.dc1.consul.", "", false},
		{"9.9.9.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "", false},
		{"consul.", dns.TypeSOA, dns.RcodeSuccess, "ns.consul. hostmaster.consul.", "", false},
		{"consul.", dns.TypeNS, dns.RcodeSuccess, "node1.node.dc1.consul.", "10.0.0.1", false},
		{"consul.", dns.TypeA, dns.RcodeSuccess, "", "", true},
		{"geo.query.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"what.consul.", dns.TypeA, dns.RcodeNameError, "", "", true},
		{"example.com.", dns.TypeA, dns.RcodeRefused, "", "", false},
	}
	for _, tc := range tests {
		for _, netw := range []string{"udp", "tcp"} {
			r := ask(t, d, netw, tc.name, tc.qtype, 0)
			where := fmt.Sprintf("%s %s %s", netw, tc.name, dns.TypeToString[tc.qtype])
			if r.Rcode != tc.rcode {
				t.Errorf("%s: rcode %s, want %s", where, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				continue
			}
			if !r.Authoritative && tc.rcode != dns.RcodeRefused {
				t.Errorf("%s: not authoritative", where)
			}
			if got := sortedData(r.Answer); !strings.HasPrefix(got, tc.answer) || (tc.answer == "") != (got == "") {
				t.Errorf("%s: answer %q, want %q", where, got, tc.answer)
			}
			if got := sortedData(r.Extra); got != tc.extra {
				t.Errorf("%s: extra %q, want %q", where, got, tc.extra)
			}
			hasSOA := len(answers[*dns.SOA](r.Ns)) == 1
			if hasSOA != tc.soa {
				t.Errorf("%s: SOA in authority %v, want %v (%s)", where, hasSOA, tc.soa, rrStrings(r.Ns))
			}
		}
	}
}

// sortedData is the data of records (owner, class, TTL and type cut),
// sorted, joined with " | "; SOA keeps its names only.
func sortedData(rrs []dns.RR) string {
	var s []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.SOA:
			s = append(s, v.Ns+" "+v.Mbox)
		case *dns.TXT:
			s = append(s, strings.Join(v.Txt, " "))
		case *dns.A:
			s = append(s, v.A.String())
		case *dns.AAAA:
			s = append(s, v.AAAA.String())
		default:
			s = append(s, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	sortStrings(s)
	return strings.Join(s, " | ")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestOnlyPassingAndWeights(t *testing.T) {
	f := newFakeCatalog(t)
	f.addNode("a", "10.0.0.1", nil)
	f.addNode("b", "10.0.0.2", nil)
	w := &weightsJSON{Passing: 10, Warning: 3}
	f.addInstance("web", inst{node: "a", nodeAddr: "10.0.0.1", port: 80, weights: w})
	f.addInstance("web", inst{node: "b", nodeAddr: "10.0.0.2", port: 80, weights: w, status: statusWarning})

	d := startDaemon(t, Config{CatalogHTTP: f.addr()})
	r := ask(t, d, "udp", "web.service.consul.", dns.TypeSRV, 0)
	if got := sortedData(r.Answer); got != "1 10 80 a.node.dc1.consul. | 1 3 80 b.node.dc1.consul." {
		t.Errorf("weights: %q", got)
	}
	d2 := startDaemon(t, Config{CatalogHTTP: f.addr(), OnlyPassing: true})
	r = ask(t, d2, "udp", "web.service.consul.", dns.TypeA, 0)
	if got := sortedData(r.Answer); got != "10.0.0.1" {
		t.Errorf("only passing: %q", got)
	}
}

func TestCriticalLeavesAnswers(t *testing.T) {
	f := standardCatalog(t)
	d := startDaemon(t, Config{CatalogHTTP: f.addr(), MaxAge: 50 * time.Millisecond})
	f.setStatus("web", "node1", statusCritical)
	waitFor(t, 5*time.Second, "node1 out of web", func() bool {
		return sortedData(ask(t, d, "udp", "web.service.consul.", dns.TypeA, 0).Answer) == "10.0.0.2"
	})
	f.setStatus("web", "node2", statusMaint)
	waitFor(t, 5*time.Second, "web gone", func() bool {
		return ask(t, d, "udp", "web.service.consul.", dns.TypeSRV, 0).Rcode == dns.RcodeNameError
	})
	f.setStatus("web", "node1", statusPassing)
	waitFor(t, 5*time.Second, "node1 back", func() bool {
		return sortedData(ask(t, d, "udp", "web.service.consul.", dns.TypeA, 0).Answer) == "10.0.0.1"
	})
}

func TestFiftyInstances(t *testing.T) {
	f := newFakeCatalog(t)
	for i := range 50 {
		n := fmt.Sprintf("node%02d", i)
		a := fmt.Sprintf("10.0.1.%d", i+1)
		f.addNode(n, a, nil)
		f.addInstance("big", inst{node: n, nodeAddr: a, port: 8000 + i})
	}
	d := startDaemon(t, Config{CatalogHTTP: f.addr()})

	r := ask(t, d, "udp", "big.service.consul.", dns.TypeA, 0)
	if n := len(r.Answer); n == 0 || n > 3 || !r.Truncated {
		t.Errorf("udp without edns: %d answers, TC %v; want 1..3 with TC", n, r.Truncated)
	}
	r = ask(t, d, "udp", "big.service.consul.", dns.TypeA, 4096)
	if n := len(r.Answer); n <= 3 {
		t.Errorf("udp edns 4096: %d answers, want more than 3", n)
	}
	r = ask(t, d, "tcp", "big.service.consul.", dns.TypeA, 0)
	if n := len(r.Answer); n != 50 || r.Truncated {
		t.Errorf("tcp: %d answers, TC %v; want 50 without TC", n, r.Truncated)
	}

	for _, tc := range []struct {
		netw string
		edns uint16
	}{{"udp", 0}, {"udp", 1232}, {"tcp", 0}} {
		r = ask(t, d, tc.netw, "big.service.consul.", dns.TypeSRV, tc.edns)
		srvs := answers[*dns.SRV](r.Answer)
		if len(srvs) == 0 {
			t.Fatalf("%s edns %d: no SRV", tc.netw, tc.edns)
		}
		if tc.netw == "tcp" && len(srvs) != 50 {
			t.Errorf("tcp SRV: %d answers, want 50", len(srvs))
		}
		if tc.netw == "udp" && len(srvs) < 50 && !r.Truncated {
			t.Errorf("udp edns %d: %d SRV without TC", tc.edns, len(srvs))
		}
		as := map[string]string{}
		for _, a := range answers[*dns.A](r.Extra) {
			as[a.Hdr.Name] = a.A.String()
		}
		if len(as) != len(srvs) || len(answers[*dns.A](r.Extra)) != len(srvs) {
			t.Errorf("%s edns %d: %d SRV but %d A in additional", tc.netw, tc.edns, len(srvs), len(r.Extra))
		}
		for _, s := range srvs {
			n := strings.TrimSuffix(s.Target, ".node.dc1.consul.")
			var i int
			fmt.Sscanf(n, "node%d", &i)
			if want := fmt.Sprintf("10.0.1.%d", i+1); as[s.Target] != want || int(s.Port) != 8000+i {
				t.Errorf("%s: SRV %v with A %q, want %s", tc.netw, s, as[s.Target], want)
			}
		}
	}
}

func TestViewSurvivesCatalogGone(t *testing.T) {
	f := standardCatalog(t)
	d := startDaemon(t, Config{CatalogHTTP: f.addr(), MaxAge: 50 * time.Millisecond})
	f.srv.Close()
	waitFor(t, 5*time.Second, "a failed reload", func() bool { return d.lastErr.Load() != nil })
	r := ask(t, d, "udp", "web.service.consul.", dns.TypeA, 0)
	if got := sortedData(r.Answer); got != "10.0.0.1 | 10.0.0.2" {
		t.Errorf("answer from the last view: %q", got)
	}
	st := ask(t, d, "udp", "status.consort.consul.", dns.TypeTXT, 0)
	data := sortedData(st.Answer)
	if !strings.Contains(data, "error=get /v1/catalog/services") || !strings.Contains(data, "age_ms=") {
		t.Errorf("status: %q", data)
	}
}

func TestStatusBeforeFirstLoad(t *testing.T) {
	f := newFakeCatalog(t)
	addr := f.addr()
	f.srv.Close()
	c := Config{CatalogHTTP: addr, Datacenter: "dc1", Addr: "127.0.0.1:0"}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(t.Context()) }()
	<-d.Ready()
	if r := ask(t, d, "udp", "web.service.consul.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("before any view: rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if got := sortedData(ask(t, d, "tcp", "status.consort.consul.", dns.TypeTXT, 0).Answer); !strings.Contains(got, "loaded=never") {
		t.Errorf("status: %q", got)
	}
	d.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestBusEventRefreshes(t *testing.T) {
	ns, err := embednats.Start(embednats.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	f := standardCatalog(t)
	// A max age of an hour: only an event can refresh the view.
	d := startDaemon(t, Config{CatalogHTTP: f.addr(), MaxAge: time.Hour, NATSURL: ns.ClientURL()})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := bus.Subjects{}
	// Wait for the first full load. The bus subscription may come up a
	// little later, so each poll below publishes its event again: only
	// an event can refresh the view within the hour.
	waitFor(t, 5*time.Second, "first load", func() bool { return d.fulls.Load() >= 1 })

	f.addInstance("web", inst{node: "node6", nodeAddr: "fd00::6", port: 80})
	waitFor(t, 10*time.Second, "the new instance", func() bool {
		nc.Publish(subj.CatalogService("web"), []byte(`{"kind":"catalog.service.v1","op":"register","service":"web"}`))
		return sortedData(ask(t, d, "udp", "web.service.consul.", dns.TypeAAAA, 0).Answer) == "fd00::6"
	})
	f.setStatus("web", "node1", statusCritical)
	waitFor(t, 10*time.Second, "node1 critical", func() bool {
		nc.Publish(subj.Health("web"), []byte(`{"kind":"health.v1"}`))
		return sortedData(ask(t, d, "udp", "web.service.consul.", dns.TypeA, 0).Answer) == "10.0.0.2"
	})
	if d.fulls.Load() > 2 {
		t.Errorf("%d full loads; events should have refreshed one service", d.fulls.Load())
	}
}

func TestMalformedPackets(t *testing.T) {
	f := standardCatalog(t)
	d := startDaemon(t, Config{CatalogHTTP: f.addr()})
	conn, err := net.Dial("udp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A header claiming one question, then a name cut short.
	bad := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(bad); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var r dns.Msg
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if r.Id != 0x1234 || r.Rcode != dns.RcodeFormatError {
		t.Errorf("malformed: id %#x rcode %s, want FORMERR", r.Id, dns.RcodeToString[r.Rcode])
	}
	if out := d.serveWire(bad, false); out == nil {
		t.Error("serveWire: no answer to a malformed query")
	} else if err := r.Unpack(out); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("serveWire: %v rcode %d", err, r.Rcode)
	}
	// The server still answers.
	if got := sortedData(ask(t, d, "udp", "node1.node.consul.", dns.TypeA, 0).Answer); got != "10.0.0.1" {
		t.Errorf("after garbage: %q", got)
	}
}
