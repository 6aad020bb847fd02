package state

import (
	"fmt"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// BenchmarkRegister applies catalog registrations of one node, one service
// and one HTTP check, each op one decode and one memdb write transaction:
// "new" creates a node each time (a fresh store every 10k ops, outside the
// timer), "check-status" flips a check of one of 10k instances (what
// healthd's reports cost), "unchanged" re-registers identical data (what
// anti-entropy costs when nothing changed: no write).
func BenchmarkRegister(b *testing.B) {
	const n = 10_000
	reg := func(i int, status string) []byte {
		data, err := Encode(RegisterType, &structs.RegisterRequest{
			Node: fmt.Sprintf("node-%05d", i), Address: "10.0.0.1", Datacenter: "dc1",
			NodeMeta: map[string]string{"rack": "r1"},
			Service:  &structs.NodeService{ID: "web", Service: "web", Tags: []string{"v1"}, Port: 8080},
			Check: &structs.HealthCheck{CheckID: "web-http", Name: "web http", ServiceID: "web", Status: status,
				Definition: structs.CheckType{HTTP: "http://10.0.0.1:8080/health", Interval: 10e9}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	passing := make([][]byte, n)
	critical := make([][]byte, n)
	for i := range passing {
		passing[i], critical[i] = reg(i, structs.HealthPassing), reg(i, structs.HealthCritical)
	}
	apply := func(b *testing.B, s *Store, idx uint64, data []byte) {
		if r, ok := s.Apply(idx, data).(*CatalogResult); !ok || r.Err != nil {
			b.Fatalf("apply: %+v", r)
		}
	}
	b.Run("new", func(b *testing.B) {
		var s *Store
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if i%n == 0 {
				b.StopTimer()
				s = New()
				b.StartTimer()
			}
			apply(b, s, uint64(i+1), passing[i%n])
		}
	})
	loaded := func(b *testing.B) *Store {
		s := New()
		for i, c := range passing {
			apply(b, s, uint64(i+1), c)
		}
		return s
	}
	b.Run("check-status", func(b *testing.B) {
		s := loaded(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c := critical
			if (i/n)%2 == 1 {
				c = passing
			}
			apply(b, s, uint64(n+i+1), c[i%n])
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		s := loaded(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			apply(b, s, uint64(n+i+1), passing[i%n])
		}
	})
}

// BenchmarkCheckServiceNodes reads a service of 100 instances, each with a
// node check and its own, among 10k nodes.
func BenchmarkCheckServiceNodes(b *testing.B) {
	s := New()
	for i := 0; i < 10_000; i++ {
		name := "other"
		if i%100 == 0 {
			name = "web"
		}
		data, _ := Encode(RegisterType, &structs.RegisterRequest{
			Node: fmt.Sprintf("node-%05d", i), Address: "10.0.0.1",
			Service: &structs.NodeService{ID: name, Service: name},
			Checks: []*structs.HealthCheck{
				{CheckID: structs.SerfCheckID, Status: structs.HealthPassing},
				{CheckID: name + "-check", ServiceID: name, Status: structs.HealthPassing},
			},
		})
		s.Apply(uint64(i+1), data)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, res, _ := s.CheckServiceNodes(nil, "web", nil, nil); len(res) != 100 {
			b.Fatalf("%d instances", len(res))
		}
	}
}
