package catalogd

import (
	"reflect"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/hashicorp/consul/api"
)

// catalogEvents decodes the catalog and health events recorded from
// position from on, as a NATS subscriber would, keyed by subject in order.
func catalogEvents(t *testing.T, r *bustest.Recorder, from int) []subjectEvent {
	t.Helper()
	var out []subjectEvent
	for _, e := range r.Events()[from:] {
		var p any
		switch {
		case bus.MatchSubject("consort.catalog.service.*", e.Subject):
			p = new(bus.CatalogService)
		case bus.MatchSubject("consort.catalog.node.*", e.Subject):
			p = new(bus.CatalogNode)
		case bus.MatchSubject("consort.health.*", e.Subject):
			p = new(bus.Health)
		default:
			continue
		}
		if err := e.Decode(p); err != nil {
			t.Fatalf("decode %s: %v", e.Subject, err)
		}
		out = append(out, subjectEvent{e.Subject, reflect.ValueOf(p).Elem().Interface()})
	}
	return out
}

type subjectEvent struct {
	Subject string
	Payload any
}

// settle waits until the recorder holds n events from position from on.
func settle(t *testing.T, r *bustest.Recorder, from, n int) {
	t.Helper()
	waitFor(t, "catalog events", func() bool { return r.Len()-from >= n })
}

// TestCatalogEvents: each applied catalog command publishes what it
// changed, with its raft index, on consort.catalog.{node,service}.<name>
// and consort.health.<service>; node-level checks also reach every
// service of their node.
func TestCatalogEvents(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	rec := &n.bus.all

	n.register(t, &api.CatalogRegistration{Node: "n1", Address: "10.0.0.1",
		Service: &api.AgentService{ID: "web-1", Service: "web", Port: 80},
		Check:   &api.AgentCheck{CheckID: "c1", Name: "c1", ServiceID: "web-1", Status: "passing", Output: "ok"}})
	idx := raft.LastIndex()
	settle(t, rec, 0, 3)
	want := []subjectEvent{
		{"consort.catalog.node.n1", bus.CatalogNode{Kind: bus.KindCatalogNode, Op: "register", Node: "n1", Index: idx}},
		{"consort.catalog.service.web", bus.CatalogService{Kind: bus.KindCatalogService, Op: "register", Service: "web", ServiceID: "web-1", Node: "n1", Index: idx}},
		{"consort.health.web", bus.Health{Kind: bus.KindHealth, Op: "register", Node: "n1", CheckID: "c1", ServiceID: "web-1", ServiceName: "web", NewStatus: "passing", Output: "ok", Index: idx}},
	}
	if got := catalogEvents(t, rec, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("register events:\n got %+v\nwant %+v", got, want)
	}

	// A status change: old and new status.
	from := rec.Len()
	n.register(t, &api.CatalogRegistration{Node: "n1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "c1", Name: "c1", ServiceID: "web-1", Status: "critical", Output: "refused"}})
	idx = raft.LastIndex()
	settle(t, rec, from, 1)
	want = []subjectEvent{
		{"consort.health.web", bus.Health{Kind: bus.KindHealth, Op: "update", Node: "n1", CheckID: "c1", ServiceID: "web-1", ServiceName: "web",
			OldStatus: "passing", NewStatus: "critical", Output: "refused", Index: idx}},
	}
	if got := catalogEvents(t, rec, from); !reflect.DeepEqual(got, want) {
		t.Fatalf("status change events:\n got %+v\nwant %+v", got, want)
	}

	// A node-level check reaches "~" and every service on the node.
	n.register(t, &api.CatalogRegistration{Node: "n1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "api.v2", Service: "api.v2"}})
	from = rec.Len()
	n.register(t, &api.CatalogRegistration{Node: "n1", Address: "10.0.0.1", SkipNodeUpdate: true,
		Check: &api.AgentCheck{CheckID: "serfHealth", Name: "Serf Health Status", Status: "critical"}})
	idx = raft.LastIndex()
	settle(t, rec, from, 3)
	ev := bus.Health{Kind: bus.KindHealth, Op: "register", Node: "n1", CheckID: "serfHealth", NewStatus: "critical", Index: idx}
	want = []subjectEvent{{"consort.health.~", ev}, {"consort.health.api~2Ev2", ev}, {"consort.health.web", ev}}
	if got := catalogEvents(t, rec, from); !reflect.DeepEqual(got, want) {
		t.Fatalf("node check events:\n got %+v\nwant %+v", got, want)
	}

	// A refused command publishes nothing; deregistering a service
	// publishes it and its checks.
	from = rec.Len()
	if _, err := n.api.Catalog().Register(&api.CatalogRegistration{Node: "n1", Address: "x",
		Check: &api.AgentCheck{Name: "c", ServiceID: "nope"}}, nil); err == nil {
		t.Fatal("register with unknown service accepted")
	}
	if _, err := n.api.Catalog().Deregister(&api.CatalogDeregistration{Node: "n1", ServiceID: "web-1"}, nil); err != nil {
		t.Fatal(err)
	}
	idx = raft.LastIndex()
	settle(t, rec, from, 2)
	got := catalogEvents(t, rec, from)
	wantSubjects := map[string]bool{"consort.catalog.service.web": true, "consort.health.web": true}
	for _, e := range got {
		if !wantSubjects[e.Subject] {
			t.Fatalf("unexpected event %+v in %+v", e, got)
		}
		switch p := e.Payload.(type) {
		case bus.CatalogService:
			if p.Op != "deregister" || p.ServiceID != "web-1" || p.Index != idx {
				t.Fatalf("service deregister event %+v", p)
			}
		case bus.Health:
			if p.Op != "deregister" || p.CheckID != "c1" || p.OldStatus != "critical" || p.NewStatus != "" || p.Index != idx {
				t.Fatalf("check deregister event %+v", p)
			}
		}
	}
}

// TestCatalogEventsNotReplayed: a restarted catalogd applies the log
// silently up to what raftd had committed when it started, then
// publishes new changes.
func TestCatalogEventsNotReplayed(t *testing.T) {
	raft := catalogdtest.Start(t)
	n := startNode(t, raft)
	fleet(t, n)
	n.stop()

	n2 := startNode(t, raft)
	if es, _, err := n2.api.Health().Service("web", "", false, nil); err != nil || len(es) != 3 {
		t.Fatalf("after restart: %d entries, %v", len(es), err)
	}
	if got := catalogEvents(t, &n2.bus.all, 0); len(got) != 0 {
		t.Fatalf("replayed entries were published: %+v", got)
	}
	n2.register(t, &api.CatalogRegistration{Node: "d", Address: "10.0.0.4"})
	ev := n2.bus.all.Expect(t, 10*time.Second, bustest.Subject("consort.catalog.node.d"))
	var p bus.CatalogNode
	if err := ev.Decode(&p); err != nil || p.Op != "register" || p.Index != raft.LastIndex() {
		t.Fatalf("new node event %+v, %v", p, err)
	}
}
