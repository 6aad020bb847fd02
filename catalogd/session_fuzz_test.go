package catalogd

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// FuzzSessionCreate: no body makes the /v1/session/create decoder panic;
// a refusal is a 400 "Request decode failed"; what it accepts has a node,
// keeps serfHealth only where it came from, and passes validation or is
// refused in Consul's words.
func FuzzSessionCreate(f *testing.F) {
	for _, seed := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`{"LockDelay": 5}`,
		`{"LockDelay": "15s", "Behavior": "delete", "TTL": "30s"}`,
		`{"LockDelay": 1e30}`,
		`{"LockDelay": -3}`,
		`{"lockdelay": "500ns"}`,
		`{"LockDelay": {"a": 1}}`,
		`{"Checks": []}`,
		`{"Checks": null}`,
		`{"Checks": ["serfHealth"]}`,
		`{"Checks": ["a", "serfHealth"], "NodeChecks": []}`,
		`{"NodeChecks": ["a"], "ServiceChecks": [{"ID": "s", "Namespace": "default"}]}`,
		`{"Node": "", "TTL": "bogus"}`,
		`{"TTL": "25h"}`,
		`{"Name": 5}`,
		`{"Name": "x"} trailing`,
		`{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := decodeSession(body, "node-1")
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest {
				t.Fatalf("decode %q: %v is not a 400", body, err)
			}
			return
		}
		s := spec.session
		if spec.defaultSerf && !slices.Contains(s.NodeChecks, serfHealthID) {
			t.Fatalf("decode %q: default serfHealth flagged but not in %q", body, s.NodeChecks)
		}
		if len(body) == 0 && (s.Node != "node-1" || s.LockDelay != int64(defaultLockDelay) || !spec.defaultSerf) {
			t.Fatalf("empty body: %+v", spec)
		}
		if err := validateSession(&s, time.Second); err != nil {
			return
		}
		if s.Node == "" || (s.Behavior != structs.SessionBehaviorRelease && s.Behavior != structs.SessionBehaviorDelete) {
			t.Fatalf("decode %q: accepted %+v", body, s)
		}
		if ttl := sessionTTL(&s); ttl != 0 && (ttl < time.Second || ttl > SessionTTLMax) {
			t.Fatalf("decode %q: ttl %s accepted", body, ttl)
		}
	})
}
