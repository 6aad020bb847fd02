package state

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// randomCatalogCommands returns n register and deregister commands over a
// few nodes, services and checks, so that creates, no-op re-registrations,
// updates, renames, refusals and cascading deletes all happen.
func randomCatalogCommands(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	nodes := []string{"n1", "n2", "N1", "n3"}
	ids := []string{"", "", "11111111-2222-3333-4444-555555555555", "22222222-2222-3333-4444-555555555555"}
	serviceIDs := []string{"web-1", "web-2", "api-1", "db", "WEB-1"}
	cmds := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		node := nodes[rng.IntN(len(nodes))]
		var (
			data []byte
			err  error
		)
		switch rng.IntN(10) {
		case 0, 1:
			req := &structs.DeregisterRequest{Node: node}
			switch rng.IntN(3) {
			case 0:
				req.ServiceID = serviceIDs[rng.IntN(len(serviceIDs))]
			case 1:
				req.CheckID = pick("c1", "c2", "serfHealth", "C1")
			}
			data, err = Encode(DeregisterType, req)
		default:
			req := &structs.RegisterRequest{
				Node:           node,
				ID:             ids[rng.IntN(len(ids))],
				Address:        pick("10.0.0.1", "10.0.0.2", ""),
				SkipNodeUpdate: rng.IntN(4) == 0,
			}
			if rng.IntN(2) == 0 {
				req.NodeMeta = map[string]string{"env": pick("prod", "dev")}
			}
			if rng.IntN(2) == 0 {
				req.Service = &structs.NodeService{
					ID:      serviceIDs[rng.IntN(len(serviceIDs))],
					Service: pick("web", "api", "db", "Web"),
					Port:    rng.IntN(2) * 80,
				}
				if rng.IntN(2) == 0 {
					req.Service.Tags = []string{pick("a", "b"), pick("c", "")}
				}
				if rng.IntN(8) == 0 {
					req.Service.Meta = map[string]string{pick("ok", "bad key"): "v"}
				}
			}
			for j := rng.IntN(3); j > 0; j-- {
				hc := &structs.HealthCheck{
					CheckID: pick("c1", "c2", "serfHealth", "C1"),
					Status:  pick(structs.HealthPassing, structs.HealthWarning, structs.HealthCritical, ""),
					Output:  pick("", "ok", "timeout"),
				}
				if rng.IntN(2) == 0 {
					hc.ServiceID = serviceIDs[rng.IntN(len(serviceIDs))]
				}
				if rng.IntN(4) == 0 {
					hc.Definition = structs.CheckType{HTTP: "http://x/", Interval: 1e9, Header: map[string][]string{}}
				}
				req.Checks = append(req.Checks, hc)
			}
			data, err = Encode(RegisterType, req)
		}
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, data)
	}
	return cmds
}

// randomMixedCommands interleaves KV and catalog commands.
func randomMixedCommands(t testing.TB, seed uint64, n int) [][]byte {
	kv := randomCommands(t, seed, n/2)
	cat := randomCatalogCommands(t, seed, n-n/2)
	out := make([][]byte, 0, n)
	for i := 0; len(kv) > 0 || len(cat) > 0; i++ {
		if len(cat) == 0 || (len(kv) > 0 && i%2 == 0) {
			out, kv = append(out, kv[0]), kv[1:]
		} else {
			out, cat = append(out, cat[0]), cat[1:]
		}
	}
	return out
}

func TestDeterministicCatalogReplicas(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		cmds := randomMixedCommands(t, seed, 3000)
		a, b := New(), New()
		idx := uint64(0)
		var changes, refused int
		for i, c := range cmds {
			idx += 1 + uint64(i%2)
			ra, rb := a.Apply(idx, c), b.Apply(idx, c)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d index %d: results differ: %v vs %v", seed, idx, ra, rb)
			}
			if cr, ok := ra.(*CatalogResult); ok {
				changes += len(cr.Changes)
				if cr.Err != nil {
					refused++
				}
			}
			if i%200 == 0 {
				checkCatalogInvariants(t, a)
			}
		}
		if changes == 0 || refused == 0 {
			t.Fatalf("seed %d: workload too tame: %d changes, %d refused", seed, changes, refused)
		}
		if da, db := a.Dump(), b.Dump(); da != db {
			t.Fatalf("seed %d: dumps differ:\n%s\nvs\n%s", seed, da, db)
		}
		checkCatalogInvariants(t, a)
		checkSnapshotRoundTrip(t, a)
	}
}

// checkCatalogInvariants checks the catalog's referential integrity and its
// index rows: every service and check has its node, every service check
// its service, every service name with instances (and only those) has its
// index row, every node (and only those) its own, and node IDs resolve.
func checkCatalogInvariants(t testing.TB, s *Store) {
	t.Helper()
	db, _ := s.view()
	tx := db.Txn(false)
	defer tx.Abort()
	nodes := map[string]bool{}
	for _, n := range all[*structs.Node](t, tx, tableNodes) {
		nodes[lower(n.Node)] = true
		if n.ID != "" {
			if byID, _ := getNodeByIDTxn(tx, n.ID); byID != n {
				t.Fatalf("node %q: ID %q resolves to %v", n.Node, n.ID, byID)
			}
		}
	}
	names := map[string]bool{}
	for _, e := range all[*serviceEntry](t, tx, tableServices) {
		if !nodes[lower(e.Node)] {
			t.Fatalf("service %q on missing node %q", e.Service.ID, e.Node)
		}
		names[lower(e.Service.Service)] = true
	}
	for _, hc := range all[*structs.HealthCheck](t, tx, tableChecks) {
		if !nodes[lower(hc.Node)] {
			t.Fatalf("check %q on missing node %q", hc.CheckID, hc.Node)
		}
		if hc.ServiceID != "" {
			if e, _ := getServiceTxn(tx, hc.Node, hc.ServiceID); e == nil {
				t.Fatalf("check %q of missing service %q on %q", hc.CheckID, hc.ServiceID, hc.Node)
			}
		}
	}
	rows := map[string]bool{}
	for _, row := range all[*indexEntry](t, tx, tableIndex) {
		rows[row.Key] = true
		if name, ok := strings.CutPrefix(row.Key, "service."); ok && !names[name] {
			t.Fatalf("index row %q for a service without instances", row.Key)
		}
		if name, ok := strings.CutPrefix(row.Key, "node."); ok && !nodes[name] {
			t.Fatalf("index row %q for a missing node", row.Key)
		}
	}
	for name := range names {
		if !rows[serviceIndexKey(name)] {
			t.Fatalf("service %q has no index row", name)
		}
	}
	for name := range nodes {
		if !rows[nodeIndexKey(name)] {
			t.Fatalf("node %q has no index row", name)
		}
	}
}

func all[T any](t testing.TB, tx *memdb.Txn, table string) []T {
	t.Helper()
	out, err := collect[T](tx, table, indexID)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// catalogObjects lists every catalog and session record, for deep comparison: Dump
// does not show the difference between a nil and an empty slice or map,
// which JSON answers do.
func catalogObjects(t testing.TB, s *Store) []any {
	db, _ := s.view()
	tx := db.Txn(false)
	defer tx.Abort()
	var out []any
	for _, table := range []string{tableNodes, tableServices, tableChecks,
		tableSessions, tableSessionChecks, tableSessionRenew, tableLockDelays, tableKVLocks} {
		out = append(out, all[any](t, tx, table)...)
	}
	return out
}

// TestSnapshotReadsVersion1 restores a KV-only image in the version 1
// format that came before the catalog.
func TestSnapshotReadsVersion1(t *testing.T) {
	s := New()
	set(t, s, "a", "1")
	set(t, s, "b", "2")
	var img bytes.Buffer
	if _, err := s.Snapshot(&img); err != nil {
		t.Fatal(err)
	}
	v1 := rewriteHeaderVersion(t, img.Bytes(), 1)
	r := New()
	if _, err := r.Restore(bytes.NewReader(v1)); err != nil {
		t.Fatalf("restore v1: %v", err)
	}
	if r.Dump() != s.Dump() {
		t.Fatalf("v1 restore differs:\n%s\nvs\n%s", r.Dump(), s.Dump())
	}
	if _, err := New().Restore(bytes.NewReader(rewriteHeaderVersion(t, img.Bytes(), snapshotVersion+1))); err == nil {
		t.Fatalf("restored a version %d image", snapshotVersion+1)
	}
}

// rewriteHeaderVersion re-frames an image with another header version and
// a fresh checksum.
func rewriteHeaderVersion(t *testing.T, img []byte, version int) []byte {
	t.Helper()
	var out bytes.Buffer
	out.WriteString(snapshotMagic)
	r := bytes.NewReader(img[len(snapshotMagic):])
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == recEnd {
			break
		}
		if hdr[0] == recHeader {
			var h snapshotHeader
			if err := decodeBody(payload, &h); err != nil {
				t.Fatal(err)
			}
			h.Version = version
			data, err := Encode(0, &h)
			if err != nil {
				t.Fatal(err)
			}
			payload = data[1:]
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
		}
		out.Write(hdr[:])
		out.Write(payload)
	}
	sum := crc32.Checksum(out.Bytes(), crcTable)
	out.Write([]byte{recEnd, 0, 0, 0, 4})
	out.Write(binary.BigEndian.AppendUint32(nil, sum))
	return out.Bytes()
}

// TestCatalogSnapshotRoundTrip restores a catalog and checks it record by
// record, then goes on applying to both copies.
func TestCatalogSnapshotRoundTrip(t *testing.T) {
	cmds := randomCatalogCommands(t, 99, 2000)
	orig := New()
	for i, c := range cmds[:1000] {
		orig.Apply(uint64(i+1), c)
	}
	var img bytes.Buffer
	idx, err := orig.Snapshot(&img)
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	if _, err := restored.Restore(&img); err != nil {
		t.Fatal(err)
	}
	if a, b := catalogObjects(t, orig), catalogObjects(t, restored); len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("restored catalog records differ (%d vs %d records)", len(a), len(b))
	}
	for i, c := range cmds[1000:] {
		at := idx + uint64(i) + 1
		if ra, rb := orig.Apply(at, c), restored.Apply(at, c); !reflect.DeepEqual(ra, rb) {
			t.Fatalf("index %d: results differ: %v vs %v", at, ra, rb)
		}
	}
	if a, b := orig.Dump(), restored.Dump(); a != b {
		t.Fatalf("dumps differ:\n%s\nvs\n%s", a, b)
	}
	if a, b := catalogObjects(t, orig), catalogObjects(t, restored); !reflect.DeepEqual(a, b) {
		t.Fatal("catalog records differ after further applies")
	}
}
