package testcluster

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// Issue 7, points 1 (service lookups following health) and 4 (dig from
// the shell): the cluster's dnsd, a real process reading the real
// catalogd, answers A and SRV for a service registered through the Consul
// client, drops the instance when its check turns critical and brings it
// back when it passes.

// dnsFollowWait bounds each wait for a health change to show in DNS.
const dnsFollowWait = 5 * time.Second

// dnsExchange sends one question to addr over network ("udp" or "tcp").
func dnsExchange(addr, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], network, err)
	}
	return r, nil
}

// webAnswer describes what dnsd says about web.service.consul: the
// instances in the SRV answer and the addresses in the A answer.
type webAnswer struct {
	srv   []*dns.SRV
	extra []dns.RR // the SRV reply's Additional section
	a     []net.IP
	rcode string // of the A reply
}

// askWeb asks addr for web.service.consul SRV (over network) and A (UDP).
func askWeb(addr, network string) (webAnswer, error) {
	var w webAnswer
	const name = "web.service.consul."
	r, err := dnsExchange(addr, network, name, dns.TypeSRV)
	if err != nil {
		return w, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return w, fmt.Errorf("SRV answered %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			w.srv = append(w.srv, srv)
		}
	}
	w.extra = r.Extra
	r, err = dnsExchange(addr, "udp", name, dns.TypeA)
	if err != nil {
		return w, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return w, fmt.Errorf("A answered %s", dns.RcodeToString[r.Rcode])
	}
	w.rcode = dns.RcodeToString[r.Rcode]
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			w.a = append(w.a, a.A)
		}
	}
	return w, nil
}

// present checks that the answer holds exactly the one instance of web on
// node at 127.0.0.1:port, with the target's address in Additional.
func (w webAnswer) present(node string, port uint16) error {
	target := node + ".node.dc1.consul."
	if len(w.srv) != 1 || w.srv[0].Target != target || w.srv[0].Port != port {
		return fmt.Errorf("SRV answer %v, want one record for %s port %d", w.srv, target, port)
	}
	if !slices.ContainsFunc(w.extra, func(rr dns.RR) bool {
		a, ok := rr.(*dns.A)
		return ok && a.Hdr.Name == target && a.A.Equal(net.IPv4(127, 0, 0, 1))
	}) {
		return fmt.Errorf("SRV Additional %v has no A 127.0.0.1 for %s", w.extra, target)
	}
	if len(w.a) != 1 || !w.a[0].Equal(net.IPv4(127, 0, 0, 1)) {
		return fmt.Errorf("A answer %v (%s), want 127.0.0.1", w.a, w.rcode)
	}
	return nil
}

// absent checks that neither answer names an instance.
func (w webAnswer) absent() error {
	if len(w.srv) != 0 || len(w.a) != 0 {
		return fmt.Errorf("still answered: SRV %v, A %v", w.srv, w.a)
	}
	return nil
}

func TestDNSServiceFollowsHealth(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)
	addr := n.DNSAddr()

	const port = 8080
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Name: "web", Port: port, Check: &api.AgentServiceCheck{TTL: "10m"},
	}); err != nil {
		t.Fatal(err)
	}
	const checkID = "service:web"
	if err := client.Agent().UpdateTTL(checkID, "up", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	// The first wait covers dnsd's first load and the agent's sync.
	waitFor(t, healthWait, "web in DNS", func() error {
		for _, network := range []string{"udp", "tcp"} {
			w, err := askWeb(addr, network)
			if err != nil {
				return err
			}
			if err := w.present(n.Name, port); err != nil {
				return fmt.Errorf("over %s: %w", network, err)
			}
		}
		return nil
	})

	for round := range 2 {
		if err := client.Agent().UpdateTTL(checkID, "down", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, dnsFollowWait, fmt.Sprintf("round %d: web gone from DNS after turning critical", round), func() error {
			w, err := askWeb(addr, "udp")
			if err != nil {
				return err
			}
			return w.absent()
		})
		t.Logf("round %d: critical instance left A and SRV answers after %v", round, time.Since(start).Round(time.Millisecond))

		if err := client.Agent().UpdateTTL(checkID, "up", api.HealthPassing); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		waitFor(t, dnsFollowWait, fmt.Sprintf("round %d: web back in DNS after passing", round), func() error {
			w, err := askWeb(addr, "udp")
			if err != nil {
				return err
			}
			return w.present(n.Name, port)
		})
		t.Logf("round %d: passing instance back in A and SRV answers after %v", round, time.Since(start).Round(time.Millisecond))
	}

	t.Run("dig", func(t *testing.T) {
		dig, err := exec.LookPath("dig")
		if err != nil {
			t.Skip("dig not installed (dnsutils; .ci/run installs it)")
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dig, "@"+host, "-p", p, "web.service.consul", "SRV", "+short").CombinedOutput()
		if err != nil {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		got := strings.TrimSpace(string(out))
		t.Logf("dig @%s -p %s web.service.consul SRV +short:\n%s", host, p, got)
		// +short prints "priority weight port target" per record.
		want := fmt.Sprintf(" %d %s.node.dc1.consul.", port, n.Name)
		if lines := strings.Split(got, "\n"); len(lines) != 1 || !strings.HasSuffix(lines[0], want) {
			t.Errorf("dig output %q, want one line ending %q", got, want)
		}
	})
}
