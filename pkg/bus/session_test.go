package bus

import (
	"encoding/json"
	"testing"
)

// TestSessionPayloadJSON pins the JSON field names and subjects of the
// session and lock events.
func TestSessionPayloadJSON(t *testing.T) {
	for _, tt := range []struct {
		payload any
		want    string
	}{
		{SessionInvalidated{Kind: KindSessionInvalidated, Session: "s1", Node: "n1", Reason: SessionReasonTTL, Index: 7},
			`{"kind":"session.invalidated.v1","session":"s1","node":"n1","reason":"ttl","index":7}`},
		{Lock{Kind: KindLock, Op: LockOpAcquired, Key: "svc/leader", Session: "s1", LockIndex: 3, Index: 8},
			`{"kind":"lock.v1","op":"acquired","key":"svc/leader","session":"s1","lock_index":3,"index":8}`},
		{Lock{Kind: KindLock, Op: LockOpLost, Key: "k", Session: "s1", LockIndex: 3, Deleted: true, Reason: SessionReasonTTL, Index: 9},
			`{"kind":"lock.v1","op":"lost","key":"k","session":"s1","lock_index":3,"deleted":true,"reason":"ttl","index":9}`},
	} {
		b, err := json.Marshal(tt.payload)
		if err != nil || string(b) != tt.want {
			t.Errorf("%T = %s, %v\nwant %s", tt.payload, b, err, tt.want)
		}
	}
	s := Subjects{}
	for got, want := range map[string]string{
		s.SessionInvalidated():         "consort.session.invalidated",
		s.Lock(LockOpAcquired):         "consort.lock.acquired",
		s.Lock(LockOpReleased):         "consort.lock.released",
		Subjects{"x"}.Lock(LockOpLost): "x.lock.lost",
	} {
		if got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
	}
	if !MatchSubject("consort.lock.*", s.Lock(LockOpLost)) {
		t.Error("consort.lock.* does not match lost")
	}
}
