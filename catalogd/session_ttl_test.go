package catalogd

import (
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// TestTTLTimers: deadlines at TTL × 2 from arming, earliest first; arm
// does nothing while not leading; a renew stamp that moved re-arms; a
// failed expiry retries with backoff unless re-armed meanwhile.
func TestTTLTimers(t *testing.T) {
	tt := newTTLTimers()
	t0 := time.Unix(1000, 0)
	stamps := map[string]int64{"a": 1, "b": 1}
	stamp := func(id string) int64 { return stamps[id] }
	stampOK := func(id string) (int64, bool) { s, ok := stamps[id]; return s, ok }

	tt.arm("x", time.Second, t0, 0)
	if tt.len() != 0 {
		t.Fatal("armed while not leading")
	}
	n := tt.start(t0, func() []*structs.Session {
		return []*structs.Session{{ID: "a", TTL: "10s"}, {ID: "b", TTL: "5s"}, {ID: "c"}, {ID: "d", TTL: "0s"}}
	}, stamp)
	if n != 2 || tt.len() != 2 {
		t.Fatalf("start armed %d (len %d), want 2", n, tt.len())
	}
	if at, ok := tt.next(); !ok || !at.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("next = %v %v, want b at +10s", at, ok)
	}
	// b renewed (its stamp moved) at t0+8s: deadline t0+18s; a untouched.
	stamps["b"] = 2
	tt.renewed(t0.Add(8*time.Second), stampOK)
	if got := tt.expired(t0.Add(17 * time.Second)); len(got) != 0 {
		t.Fatalf("expired at +17s: %+v", got)
	}
	got := tt.expired(t0.Add(20 * time.Second))
	if len(got) != 2 || got[0].id != "b" || got[1].id != "a" {
		t.Fatalf("expired at +20s: %+v, want b then a", got)
	}
	if tt.len() != 0 {
		t.Fatal("expired entries still armed")
	}
	// A failed expiry retries after ttlRetryMin, then twice that.
	if w := tt.retry(got[1], t0); w != ttlRetryMin {
		t.Fatalf("first retry in %s", w)
	}
	again := tt.expired(t0.Add(ttlRetryMin))
	if len(again) != 1 || again[0].id != "a" {
		t.Fatalf("retry: %+v", again)
	}
	if w := tt.retry(again[0], t0); w != 2*ttlRetryMin {
		t.Fatalf("second retry in %s", w)
	}
	// A renew re-arms normally and resets the retries; a retry of an
	// entry armed meanwhile does nothing.
	tt.arm("a", 10*time.Second, t0, 3)
	if w := tt.retry(again[0], t0); w != 0 {
		t.Fatalf("retry of a re-armed session: %s", w)
	}
	tt.disarm("a")
	if tt.armed("a") || tt.len() != 0 {
		t.Fatal("disarm left a deadline")
	}
	tt.arm("a", 10*time.Second, t0, 3)
	tt.stop()
	if tt.len() != 0 || tt.isLeading() {
		t.Fatal("stop left deadlines")
	}
	if w := tt.retry(again[0], t0); w != 0 {
		t.Fatalf("retry while not leading: %s", w)
	}
}
