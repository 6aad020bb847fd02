package state

import (
	"fmt"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

// BenchmarkApplySet applies sets of 128-byte values over 100k keys, the
// shape of the KV PUT target: each op is one decode and one memdb write
// transaction. "create" writes new keys (a fresh store every 100k ops,
// outside the timer), "update" rewrites existing ones.
func BenchmarkApplySet(b *testing.B) {
	const nkeys = 100_000
	value := make([]byte, 128)
	cmds := make([][]byte, nkeys)
	for i := range cmds {
		value[0] = byte(i)
		data, err := Encode(KVSType, &KVSRequest{Op: KVSet, Entry: structs.KVEntry{
			Key: fmt.Sprintf("bench/key/%06d", i), Value: value,
		}})
		if err != nil {
			b.Fatal(err)
		}
		cmds[i] = data
	}
	b.Run("create", func(b *testing.B) {
		var s *Store
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if i%nkeys == 0 {
				b.StopTimer()
				s = New()
				b.StartTimer()
			}
			if res := s.Apply(uint64(i+1), cmds[i%nkeys]); res != true {
				b.Fatalf("apply: %v", res)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		s := New()
		for i, c := range cmds {
			s.Apply(uint64(i+1), c)
		}
		// Every update changes the value, so none is skipped as a no-op.
		upd := make([][]byte, nkeys)
		for i := range upd {
			value[0], value[1] = byte(i), 1
			upd[i], _ = Encode(KVSType, &KVSRequest{Op: KVSet, Entry: structs.KVEntry{
				Key: fmt.Sprintf("bench/key/%06d", i), Value: value,
			}})
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c := upd
			if (i/nkeys)%2 == 1 {
				c = cmds
			}
			if res := s.Apply(uint64(nkeys+i+1), c[i%nkeys]); res != true {
				b.Fatalf("apply: %v", res)
			}
		}
	})
}

// BenchmarkKVGet reads one key of 10k.
func BenchmarkKVGet(b *testing.B) {
	s := New()
	for i := 0; i < 10_000; i++ {
		data, _ := Encode(KVSType, &KVSRequest{Op: KVSet, Entry: structs.KVEntry{
			Key: fmt.Sprintf("k/%05d", i), Value: []byte("v"),
		}})
		s.Apply(uint64(i+1), data)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, e, _ := s.KVGet(nil, "k/04242"); e == nil {
			b.Fatal("missing")
		}
	}
}
