package testcluster

import (
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// promSD replays what Prometheus' Consul service discovery
// (discovery/consul/consul.go) does against an agent, call for call, with
// the Consul client it uses: agent/self for the datacenter, a blocking
// stale /v1/catalog/services with node_meta, its tag filter applied to the
// answer, then a blocking stale /v1/health/service/<name> with every
// configured tag. Targets are the label sets Prometheus builds from the
// fields its code reads.
type promSD struct {
	client   *api.Client
	tags     []string          // sd config "tags"
	nodeMeta map[string]string // sd config "node_meta"
	dc       string
}

// watchTimeout is consul_sd's blocking wait.
const watchTimeout = 2 * time.Minute

// datacenter is Discovery.getDatacenter.
func (p *promSD) datacenter() error {
	info, err := p.client.Agent().Self()
	if err != nil {
		return err
	}
	dc, ok := info["Config"]["Datacenter"].(string)
	if !ok {
		return fmt.Errorf("invalid value '%v' for Config.Datacenter", info["Config"]["Datacenter"])
	}
	p.dc = dc
	return nil
}

// services is one round of Discovery.watchServices: the services worth
// watching and the index to block on next.
func (p *promSD) services(lastIndex uint64, wait time.Duration) ([]string, uint64, error) {
	opts := &api.QueryOptions{WaitIndex: lastIndex, WaitTime: wait, AllowStale: true, NodeMeta: p.nodeMeta}
	srvs, meta, err := p.client.Catalog().Services(opts)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	for name, tags := range srvs {
		if p.shouldWatchFromTags(tags) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, meta.LastIndex, nil
}

// shouldWatchFromTags is Discovery.shouldWatchFromTags: every configured
// tag must be among the service's tags.
func (p *promSD) shouldWatchFromTags(tags []string) bool {
	for _, w := range p.tags {
		if !slices.Contains(tags, w) {
			return false
		}
	}
	return true
}

// targets is one round of consulService.watch: label sets by target.
func (p *promSD) targets(name string, lastIndex uint64, wait time.Duration) ([]map[string]string, uint64, error) {
	opts := &api.QueryOptions{WaitIndex: lastIndex, WaitTime: wait, AllowStale: true, NodeMeta: p.nodeMeta}
	nodes, meta, err := p.client.Health().ServiceMultipleTags(name, p.tags, false, opts)
	if err != nil {
		return nil, 0, err
	}
	var out []map[string]string
	for _, sn := range nodes {
		tags := "," + strings.Join(sn.Service.Tags, ",") + ","
		addr := sn.Node.Address
		if sn.Service.Address != "" {
			addr = sn.Service.Address
		}
		l := map[string]string{
			"__address__":                         net.JoinHostPort(addr, strconv.Itoa(sn.Service.Port)),
			"__meta_consul_address":               sn.Node.Address,
			"__meta_consul_node":                  sn.Node.Node,
			"__meta_consul_tags":                  tags,
			"__meta_consul_service_address":       sn.Service.Address,
			"__meta_consul_service_port":          strconv.Itoa(sn.Service.Port),
			"__meta_consul_service_id":            sn.Service.ID,
			"__meta_consul_health":                sn.Checks.AggregatedStatus(),
			"__meta_consul_partition":             sn.Service.Partition,
			"__meta_consul_namespace":             sn.Service.Namespace,
			"__meta_consul_service":               name,
			"__meta_consul_dc":                    p.dc,
			"__meta_consul_tagged_address_wan":    sn.Node.TaggedAddresses["wan"],
			"__meta_consul_metadata_env":          sn.Node.Meta["env"],
			"__meta_consul_service_metadata_role": sn.Service.Meta["role"],
		}
		out = append(out, l)
	}
	return out, meta.LastIndex, nil
}

// TestPrometheusConsulSD: the calls Prometheus' consul_sd makes return
// what its code reads (issue 4, point 6).
func TestPrometheusConsulSD(t *testing.T) {
	c := New(t, Options{})
	n := c.WaitLeader(t)
	client := n.APIClient(t)
	reg := func(node, addr, env string, s *api.AgentService, status string) {
		r := &api.CatalogRegistration{Node: node, Address: addr, NodeMeta: map[string]string{"env": env},
			TaggedAddresses: map[string]string{"lan": addr, "wan": "203.0.113." + addr[strings.LastIndexByte(addr, '.')+1:]}, Service: s}
		if status != "" {
			r.Check = &api.AgentCheck{CheckID: "check:" + s.ID, Name: "alive", ServiceID: s.ID, Status: status}
		}
		if _, err := client.Catalog().Register(r, nil); err != nil {
			t.Fatalf("register %s: %v", s.ID, err)
		}
	}
	reg("p1", "10.2.0.1", "prod", &api.AgentService{ID: "api-1", Service: "api", Port: 9100, Tags: []string{"metrics", "v1"},
		Meta: map[string]string{"role": "front"}}, "passing")
	reg("p2", "10.2.0.2", "prod", &api.AgentService{ID: "api-2", Service: "api", Port: 9101, Address: "10.2.1.2",
		Tags: []string{"metrics"}}, "critical")
	reg("p2", "10.2.0.2", "prod", &api.AgentService{ID: "db-1", Service: "db", Port: 5432, Tags: []string{"v1"}}, "")
	reg("d1", "10.2.0.3", "dev", &api.AgentService{ID: "api-3", Service: "api", Port: 9100, Tags: []string{"metrics"}}, "passing")

	sd := &promSD{client: client, tags: []string{"metrics"}, nodeMeta: map[string]string{"env": "prod"}}
	if err := sd.datacenter(); err != nil || sd.dc != "dc1" {
		t.Fatalf("agent/self datacenter = %q, %v", sd.dc, err)
	}

	// First round: no index yet, so no blocking.
	names, svcIndex, err := sd.services(0, watchTimeout)
	if err != nil || !slices.Equal(names, []string{"api"}) || svcIndex == 0 {
		t.Fatalf("services = %v, index %d, %v (want api only: db lacks the tag)", names, svcIndex, err)
	}
	targets, hIndex, err := sd.targets("api", 0, watchTimeout)
	if err != nil || hIndex == 0 {
		t.Fatalf("targets: index %d, %v", hIndex, err)
	}
	want := []map[string]string{{
		"__address__": "10.2.0.1:9100", "__meta_consul_address": "10.2.0.1", "__meta_consul_node": "p1",
		"__meta_consul_tags": ",metrics,v1,", "__meta_consul_service_address": "", "__meta_consul_service_port": "9100",
		"__meta_consul_service_id": "api-1", "__meta_consul_health": "passing", "__meta_consul_partition": "",
		"__meta_consul_namespace": "", "__meta_consul_service": "api", "__meta_consul_dc": "dc1",
		"__meta_consul_tagged_address_wan": "203.0.113.1", "__meta_consul_metadata_env": "prod",
		"__meta_consul_service_metadata_role": "front",
	}, {
		"__address__": "10.2.1.2:9101", "__meta_consul_address": "10.2.0.2", "__meta_consul_node": "p2",
		"__meta_consul_tags": ",metrics,", "__meta_consul_service_address": "10.2.1.2", "__meta_consul_service_port": "9101",
		"__meta_consul_service_id": "api-2", "__meta_consul_health": "critical", "__meta_consul_partition": "",
		"__meta_consul_namespace": "", "__meta_consul_service": "api", "__meta_consul_dc": "dc1",
		"__meta_consul_tagged_address_wan": "203.0.113.2", "__meta_consul_metadata_env": "prod",
		"__meta_consul_service_metadata_role": "",
	}}
	if !reflect.DeepEqual(targets, want) {
		for i := range max(len(targets), len(want)) {
			var g, w map[string]string
			if i < len(targets) {
				g = targets[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !maps.Equal(g, w) {
				t.Errorf("target %d:\n got %v\nwant %v", i, g, w)
			}
		}
		t.FailNow()
	}

	// An unchanged catalog: the blocking round times out with the same
	// index, which consul_sd reads as "no update".
	if _, idx, err := sd.services(svcIndex, time.Second); err != nil || idx != svcIndex {
		t.Fatalf("idle services round: index %d (was %d), %v", idx, svcIndex, err)
	}
	if _, idx, err := sd.targets("api", hIndex, time.Second); err != nil || idx != hIndex {
		t.Fatalf("idle targets round: index %d (was %d), %v", idx, hIndex, err)
	}

	// A new tagged service wakes the services watch; a health change wakes
	// the service watch.
	type round struct {
		names   []string
		targets []map[string]string
		index   uint64
		err     error
	}
	svcCh, tgtCh := make(chan round, 1), make(chan round, 1)
	go func() {
		names, idx, err := sd.services(svcIndex, watchTimeout)
		svcCh <- round{names: names, index: idx, err: err}
	}()
	go func() {
		tg, idx, err := sd.targets("api", hIndex, watchTimeout)
		tgtCh <- round{targets: tg, index: idx, err: err}
	}()
	reg("p1", "10.2.0.1", "prod", &api.AgentService{ID: "cache-1", Service: "cache", Port: 6379, Tags: []string{"metrics"}}, "")
	reg("p2", "10.2.0.2", "prod", &api.AgentService{ID: "api-2", Service: "api", Port: 9101, Address: "10.2.1.2",
		Tags: []string{"metrics"}}, "passing")
	for _, ch := range []chan round{svcCh, tgtCh} {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if ch == svcCh && (r.index <= svcIndex || !slices.Equal(r.names, []string{"api", "cache"})) {
				t.Fatalf("services watch woke with %v at %d (was %d)", r.names, r.index, svcIndex)
			}
			if ch == tgtCh && (r.index <= hIndex || len(r.targets) != 2 || r.targets[1]["__meta_consul_health"] != "passing") {
				t.Fatalf("api watch woke with %v at %d (was %d)", r.targets, r.index, hIndex)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a consul_sd watch did not wake on a change it covers")
		}
	}

	// Prometheus 2.40+ also sends the configured filter on both calls.
	es, _, err := client.Health().ServiceMultipleTags("api", sd.tags, false,
		&api.QueryOptions{AllowStale: true, NodeMeta: sd.nodeMeta, Filter: `Service.Meta.role == "front"`})
	if err != nil || len(es) != 1 || es[0].Service.ID != "api-1" {
		t.Fatalf("health with filter = %v, %v", serviceIDs(es), err)
	}
}
