package catalogd

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
)

var fuzzMethods = []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost}

// FuzzKVQuery: no query string, key or method makes the /v1/kv decoders
// panic; a refusal is always an httpError with a 4xx (or 501 for session
// operations), and malformed numbers, durations or encodings get 400.
// Requests the decoders accept run through the real handler as
// non-blocking reads.
func FuzzKVQuery(f *testing.F) {
	for _, seed := range []struct {
		method uint8
		key    string
		query  string
	}{
		{0, "k", ""},
		{0, "k", "index=5&wait=10s"},
		{0, "k", "index=abc"},
		{0, "k", "index=1&wait=10"},
		{0, "", "recurse"},
		{0, "a/", "keys&separator=/"},
		{0, "a/", "keys&seperator=%2F"},
		{0, "k", "raw"},
		{0, "k", "stale&consistent"},
		{0, "k", "stale&max_stale=5s"},
		{0, "k", "max_stale=-1s"},
		{0, "k", "a=%zz"},
		{0, "k", "a;b"},
		{0, "k", "dc=dc1&pretty"},
		{1, "k", "flags=42"},
		{1, "k", "flags=-1"},
		{1, "k", "cas=0"},
		{1, "k", "cas=18446744073709551616"},
		{1, "k", "cas=1&acquire=x"},
		{1, "k", "release=x"},
		{1, "", ""},
		{2, "k", "cas=3"},
		{2, "", "recurse"},
		{2, "k", "recurse&cas=1"},
		{3, "k", ""},
	} {
		f.Add(seed.method, seed.key, seed.query)
	}
	raft := catalogdtest.Start(f)
	d, err := New(Config{Raft: raft.Client()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, m uint8, key, raw string) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		q, req, err := parseRequest(method, key, raw)
		v, perr := url.ParseQuery(raw)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				t.Fatalf("%s %q ?%s: error %v is not an httpError", method, key, raw, err)
			}
			switch {
			case he.code == http.StatusMethodNotAllowed && method == http.MethodPost:
			case he.code == http.StatusNotImplemented && (has(v, "acquire") || has(v, "release")):
			case he.code == http.StatusBadRequest && he.msg != "":
			default:
				t.Fatalf("%s %q ?%s: answered %d %q", method, key, raw, he.code, he.msg)
			}
			return
		}
		if method == http.MethodPost {
			t.Fatalf("POST accepted")
		}
		// What the decoders accepted must be well-formed.
		if perr != nil {
			t.Fatalf("?%s accepted despite %v", raw, perr)
		}
		if s := v.Get("index"); s != "" {
			if n, err := strconv.ParseUint(s, 10, 64); err != nil || n != q.minIndex {
				t.Fatalf("index %q accepted as %d", s, q.minIndex)
			}
		}
		if s := v.Get("wait"); s != "" {
			if _, err := time.ParseDuration(s); err != nil {
				t.Fatalf("wait %q accepted", s)
			}
		}
		if method != http.MethodGet && req.cmd.Entry.Key != key {
			t.Fatalf("command key %q, want %q", req.cmd.Entry.Key, key)
		}
		if method != http.MethodGet || q.blocking() || strings.ContainsAny(key, "?#") {
			return
		}
		// Through the handler, against the local store (no Run needed
		// for stale reads; default reads use the fake raft).
		u := &url.URL{Path: "/v1/kv/" + key, RawQuery: raw}
		r := httptest.NewRequest(method, "/", nil)
		r.URL = u
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusNotFound:
		case http.StatusInternalServerError:
			if !strings.Contains(w.Body.String(), "No path to datacenter") {
				t.Fatalf("GET %s: 500 %q", u, w.Body.String())
			}
		default:
			t.Fatalf("GET %s: %d %q", u, w.Code, w.Body.String())
		}
	})
}
