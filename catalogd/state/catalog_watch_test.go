package state

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// registerOK applies a registration at the next index and fails the test
// unless it succeeds; it returns the changes.
func registerOK(t testing.TB, s *Store, req *structs.RegisterRequest) []Change {
	t.Helper()
	return catalogOK(t, s, RegisterType, req)
}

func deregisterOK(t testing.TB, s *Store, req *structs.DeregisterRequest) []Change {
	t.Helper()
	return catalogOK(t, s, DeregisterType, req)
}

func catalogOK(t testing.TB, s *Store, typ MessageType, req any) []Change {
	t.Helper()
	data, err := Encode(typ, req)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := s.Apply(s.LastIndex()+1, data).(*CatalogResult)
	if !ok || res == nil || res.Err != nil {
		t.Fatalf("apply %T: %+v", req, res)
	}
	return res.Changes
}

// instanceOn registers one instance of service on node with one check
// of the given status.
func instanceOn(node, service, id, status string) *structs.RegisterRequest {
	return &structs.RegisterRequest{
		Node: node, Address: "10.0.0.1",
		Service: &structs.NodeService{ID: id, Service: service, Port: 80},
		Check:   &structs.HealthCheck{CheckID: id + "-check", ServiceID: id, Status: status},
	}
}

func webOn(node, id, status string) *structs.RegisterRequest {
	return instanceOn(node, "web", id, status)
}

// checkStatus sets a registered service check's status.
func checkStatus(node, id, status string) *structs.RegisterRequest {
	return &structs.RegisterRequest{Node: node, SkipNodeUpdate: true,
		Check: &structs.HealthCheck{CheckID: id + "-check", ServiceID: id, Status: status, Output: "now " + status}}
}

// serviceReads are the reads answered by a service's own index.
var serviceReads = []struct {
	name string
	read func(s *Store, ws memdb.WatchSet, service string) (uint64, int)
}{
	{"CheckServiceNodes", func(s *Store, ws memdb.WatchSet, service string) (uint64, int) {
		idx, r, _ := s.CheckServiceNodes(ws, service, nil, nil)
		return idx, len(r)
	}},
	{"ServiceNodes", func(s *Store, ws memdb.WatchSet, service string) (uint64, int) {
		idx, r, _ := s.ServiceNodes(ws, service, nil, nil)
		return idx, len(r)
	}},
	{"ServiceChecks", func(s *Store, ws memdb.WatchSet, service string) (uint64, int) {
		idx, r, _ := s.ServiceChecks(ws, service, nil)
		return idx, len(r)
	}},
	{"CheckServiceNodesTagged", func(s *Store, ws memdb.WatchSet, service string) (uint64, int) {
		idx, r, _ := s.CheckServiceNodes(ws, service, []string{"v1"}, map[string]string{})
		return idx, len(r)
	}},
}

// TestServiceWatchFiresOnlyForItsService: a blocking read of web wakes on
// a web check status change and not on changes to other services, other
// nodes, KV, or a re-registration that changes nothing.
func TestServiceWatchFiresOnlyForItsService(t *testing.T) {
	for _, rd := range serviceReads {
		t.Run(rd.name, func(t *testing.T) {
			s := New()
			web := webOn("n1", "web-1", structs.HealthPassing)
			web.Service.Tags = []string{"v1"}
			registerOK(t, s, web)
			registerOK(t, s, instanceOn("n2", "api", "api-1", structs.HealthPassing))
			registerOK(t, s, instanceOn("n1", "db", "db-1", structs.HealthPassing))

			ws := memdb.NewWatchSet()
			idx, n := rd.read(s, ws, "web")
			if n != 1 || idx != 1 {
				t.Fatalf("read web: index %d, %d results", idx, n)
			}
			registerOK(t, s, checkStatus("n2", "api-1", structs.HealthCritical)) // other service, other node
			registerOK(t, s, checkStatus("n1", "db-1", structs.HealthCritical))  // other service, same node
			registerOK(t, s, instanceOn("n3", "cache", "cache-1", structs.HealthPassing))
			registerOK(t, s, &structs.RegisterRequest{Node: "n2", Address: "10.9.9.9"})
			deregisterOK(t, s, &structs.DeregisterRequest{Node: "n2"})
			set(t, s, "kv", "x")
			if c := registerOK(t, s, web); len(c) != 0 {
				t.Fatalf("unchanged re-registration changed %v", c)
			}
			if fired(ws) {
				t.Fatal("web watch fired for changes outside web")
			}
			if i, _ := rd.read(s, nil, "web"); i != idx {
				t.Fatalf("web index moved from %d to %d for changes outside web", idx, i)
			}

			registerOK(t, s, checkStatus("n1", "web-1", structs.HealthCritical))
			if !fired(ws) {
				t.Fatal("web watch did not fire on a web check status change")
			}
			if i, _ := rd.read(s, nil, "web"); i != s.LastIndex() {
				t.Fatalf("web index %d after its change at %d", i, s.LastIndex())
			}
		})
	}
}

// TestNodeChangesWakeServicesOfTheNode: a node-level check or a node update
// moves every service on that node, and only those.
func TestNodeChangesWakeServicesOfTheNode(t *testing.T) {
	s := New()
	registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
	registerOK(t, s, instanceOn("n1", "db", "db-1", structs.HealthPassing))
	registerOK(t, s, instanceOn("n2", "api", "api-1", structs.HealthPassing))

	for _, change := range []struct {
		name  string
		req   *structs.RegisterRequest
		dereg *structs.DeregisterRequest
	}{
		{"node check registered", &structs.RegisterRequest{Node: "n1", SkipNodeUpdate: true,
			Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthPassing}}, nil},
		{"node check status", &structs.RegisterRequest{Node: "n1", SkipNodeUpdate: true,
			Check: &structs.HealthCheck{CheckID: structs.SerfCheckID, Status: structs.HealthCritical}}, nil},
		{"node address", &structs.RegisterRequest{Node: "n1", Address: "10.1.1.1"}, nil},
		{"node check deregistered", nil, &structs.DeregisterRequest{Node: "n1", CheckID: structs.SerfCheckID}},
	} {
		t.Run(change.name, func(t *testing.T) {
			wsWeb, wsDB, wsAPI := memdb.NewWatchSet(), memdb.NewWatchSet(), memdb.NewWatchSet()
			s.CheckServiceNodes(wsWeb, "web", nil, nil)
			s.CheckServiceNodes(wsDB, "db", nil, nil)
			s.CheckServiceNodes(wsAPI, "api", nil, nil)
			if change.req != nil {
				registerOK(t, s, change.req)
			} else {
				deregisterOK(t, s, change.dereg)
			}
			if !fired(wsWeb) || !fired(wsDB) {
				t.Fatal("services on the node did not wake")
			}
			if fired(wsAPI) {
				t.Fatal("a service on another node woke")
			}
			for _, name := range []string{"web", "db"} {
				if idx, _, _ := s.CheckServiceNodes(nil, name, nil, nil); idx != s.LastIndex() {
					t.Fatalf("%s index %d, want %d", name, idx, s.LastIndex())
				}
			}
		})
	}
}

// TestMissingServiceWatch: a read of a service with no instances does not
// wake for unrelated writes (neighbouring names included) and its index
// does not move; it wakes when the service is registered.
func TestMissingServiceWatch(t *testing.T) {
	for _, rd := range serviceReads {
		t.Run(rd.name, func(t *testing.T) {
			s := New()
			registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
			ws := memdb.NewWatchSet()
			idx, n := rd.read(s, ws, "webx")
			if n != 0 || idx != 1 {
				t.Fatalf("read missing: index %d, %d results", idx, n)
			}
			registerOK(t, s, checkStatus("n1", "web-1", structs.HealthCritical))
			registerOK(t, s, instanceOn("n2", "webxy", "webxy-1", structs.HealthPassing)) // a neighbour in the tree
			registerOK(t, s, instanceOn("n2", "web", "web-2", structs.HealthPassing))
			registerOK(t, s, &structs.RegisterRequest{Node: "n3", Address: "10.0.0.3"})
			set(t, s, "webx", "kv")
			if fired(ws) {
				t.Fatal("missing-service watch fired for unrelated writes")
			}
			if i, _ := rd.read(s, nil, "webx"); i != idx {
				t.Fatalf("missing service index moved from %d to %d", idx, i)
			}
			registerOK(t, s, instanceOn("n3", "WebX", "webx-1", structs.HealthPassing))
			if !fired(ws) {
				t.Fatal("missing-service watch did not fire when the service was registered")
			}
			if i, _ := rd.read(s, nil, "webx"); i != s.LastIndex() {
				t.Fatalf("index %d after registration at %d", i, s.LastIndex())
			}
		})
	}
}

// TestServiceExtinctionWakes: removing the last instance wakes readers of
// the service, and its index then is the extinction's, not lower.
func TestServiceExtinctionWakes(t *testing.T) {
	s := New()
	registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
	registerOK(t, s, instanceOn("n1", "api", "api-1", structs.HealthPassing))
	ws := memdb.NewWatchSet()
	before, _, _ := s.CheckServiceNodes(ws, "web", nil, nil)
	deregisterOK(t, s, &structs.DeregisterRequest{Node: "n1", ServiceID: "web-1"})
	if !fired(ws) {
		t.Fatal("watch did not fire when the last instance left")
	}
	after, res, _ := s.CheckServiceNodes(nil, "web", nil, nil)
	if len(res) != 0 || after <= before || after != s.LastIndex() {
		t.Fatalf("after extinction: index %d (before %d), %d results", after, before, len(res))
	}
}

// TestMissingServiceWatchRace: a registration racing a read of the missing
// service is seen by the read or wakes its watch.
func TestMissingServiceWatchRace(t *testing.T) {
	for i := 0; i < 300; i++ {
		s := New()
		registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			registerOK(t, s, instanceOn("n2", "late", "late-1", structs.HealthPassing))
		}()
		ws := memdb.NewWatchSet()
		_, res, err := s.CheckServiceNodes(ws, "late", nil, nil)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 0 && !fired(ws) {
			t.Fatalf("round %d: registration neither seen nor signalled", i)
		}
	}
}

// TestMissingNodeWatch: NodeServices and GetNode of a missing node wake when
// it registers, not for other nodes.
func TestMissingNodeWatch(t *testing.T) {
	s := New()
	registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
	wsSvc, wsNode := memdb.NewWatchSet(), memdb.NewWatchSet()
	if idx, n, _, _ := s.NodeServices(wsSvc, "n2"); n != nil || idx != 1 {
		t.Fatalf("NodeServices of a missing node: %d, %v", idx, n)
	}
	if _, n, _ := s.GetNode(wsNode, "n2"); n != nil {
		t.Fatalf("GetNode of a missing node: %v", n)
	}
	registerOK(t, s, &structs.RegisterRequest{Node: "n22", Address: "10.0.0.22"})
	registerOK(t, s, &structs.RegisterRequest{Node: "n1", Address: "10.0.0.9"})
	if fired(wsSvc) || fired(wsNode) {
		t.Fatal("missing-node watch fired for other nodes")
	}
	registerOK(t, s, &structs.RegisterRequest{Node: "N2", Address: "10.0.0.2"})
	if !fired(wsSvc) || !fired(wsNode) {
		t.Fatal("missing-node watch did not fire when the node registered")
	}

	// An existing node's services watch fires for its services only.
	ws := memdb.NewWatchSet()
	s.NodeServices(ws, "n2")
	registerOK(t, s, instanceOn("n1", "db", "db-1", structs.HealthPassing))
	if fired(ws) {
		t.Fatal("node-services watch fired for another node's service")
	}
	registerOK(t, s, instanceOn("n2", "db", "db-2", structs.HealthPassing))
	if !fired(ws) {
		t.Fatal("node-services watch did not fire for the node's new service")
	}
}

// TestBlockingHealthReadWakes waits on a health watch the way a blocking
// query does.
func TestBlockingHealthReadWakes(t *testing.T) {
	s := New()
	registerOK(t, s, webOn("n1", "web-1", structs.HealthPassing))
	ws := memdb.NewWatchSet()
	idx, _, _ := s.CheckServiceNodes(ws, "web", nil, nil)
	woke := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		woke <- ws.WatchCtx(ctx)
	}()
	registerOK(t, s, checkStatus("n1", "web-1", structs.HealthWarning))
	if err := <-woke; err != nil {
		t.Fatalf("blocking read did not wake: %v", err)
	}
	if idx2, res, _ := s.CheckServiceNodes(nil, "web", nil, nil); idx2 <= idx || res[0].Checks[0].Status != structs.HealthWarning {
		t.Fatalf("after the change: index %d (before %d), %+v", idx2, idx, res[0].Checks[0])
	}
}

// TestRestoreWakesMissingNameWatch: Restore wakes readers of missing names
// too (through AbandonCh) and drops the pending name channels.
func TestRestoreWakesMissingNameWatch(t *testing.T) {
	src := New()
	registerOK(t, src, webOn("n1", "web-1", structs.HealthPassing))
	var img bytes.Buffer
	if _, err := src.Snapshot(&img); err != nil {
		t.Fatal(err)
	}
	s := New()
	ws := memdb.NewWatchSet()
	s.CheckServiceNodes(ws, "web", nil, nil)
	if _, err := s.Restore(&img); err != nil {
		t.Fatal(err)
	}
	if !fired(ws) {
		t.Fatal("restore did not wake a missing-service read")
	}
	if n := len(s.names.chans); n != 0 {
		t.Fatalf("%d name channels left after restore", n)
	}
	if _, res, _ := s.CheckServiceNodes(nil, "web", nil, nil); len(res) != 1 {
		t.Fatalf("restored catalog has %d web instances", len(res))
	}
}

// TestNameWatchesBounded: past maxNameWatches names, pending channels are
// closed (their readers wake once) rather than kept.
func TestNameWatchesBounded(t *testing.T) {
	w := newNameWatches()
	first := w.watch("service:first")
	for i := 1; i < maxNameWatches; i++ {
		w.watch("service:" + string(rune('a'+i%26)) + string(rune(i)))
	}
	select {
	case <-first:
		t.Fatal("closed before the bound was reached")
	default:
	}
	w.watch("service:one-more")
	select {
	case <-first:
	default:
		t.Fatal("channels not closed past the bound")
	}
	if len(w.chans) != 1 {
		t.Fatalf("%d channels kept, want 1", len(w.chans))
	}
	// Reads without a watch set make no channels.
	s := New()
	s.CheckServiceNodes(nil, "nope", nil, nil)
	s.NodeServices(nil, "nope")
	if len(s.names.chans) != 0 {
		t.Fatal("a read without a watch set registered a name channel")
	}
}
