package catalogd

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
)

// fuzzEndpoints are the read endpoints FuzzHealthQuery drives, by number.
var fuzzEndpoints = []string{
	"/v1/health/service/", "/v1/health/checks/", "/v1/health/node/", "/v1/health/state/",
	"/v1/catalog/service/", "/v1/catalog/node/", "/v1/catalog/node-services/",
	"/v1/catalog/nodes", "/v1/catalog/services", "/v1/catalog/datacenters",
}

// fuzzStore is a store holding a small catalog, applied directly.
func fuzzStore(tb testing.TB, d *Daemon) {
	idx := uint64(0)
	apply := func(t state.MessageType, req any) {
		data, err := state.Encode(t, req)
		if err != nil {
			tb.Fatal(err)
		}
		idx++
		if r, ok := d.store.Apply(idx, data).(*state.CatalogResult); !ok || r.Err != nil {
			tb.Fatalf("seed catalog: %+v", r)
		}
	}
	for i, name := range []string{"a", "b"} {
		apply(state.RegisterType, &structs.RegisterRequest{
			Node: name, Address: "10.0.0." + strconv.Itoa(i+1), NodeMeta: map[string]string{"env": "prod"},
			Service: &structs.NodeService{ID: "web-" + name, Service: "web", Tags: []string{"v1"}, Port: 80, Meta: map[string]string{"v": "1"}},
			Checks: []*structs.HealthCheck{
				{CheckID: "c-" + name, Name: "c", ServiceID: "web-" + name, Status: structs.HealthPassing},
				{CheckID: "serfHealth", Name: "serf", Status: structs.HealthCritical},
			},
		})
	}
}

// FuzzHealthQuery: no path argument or query string makes the catalog and
// health endpoints panic; what they refuse is a 4xx with a message (400
// for malformed parameters and filters), and what they accept answers 200
// with JSON, or 500 only for a datacenter that cannot be reached. Requests
// run as non-blocking reads against a small catalog.
func FuzzHealthQuery(f *testing.F) {
	for _, s := range []struct {
		ep         uint8
		arg, query string
	}{
		{0, "web", ""},
		{0, "web", "passing"},
		{0, "web", "passing=false&tag=v1&tag=primary"},
		{0, "web", "node-meta=env:prod&node-meta=rack"},
		{0, "web", "filter=" + url.QueryEscape(`Checks.Status == critical and Service.Meta.v == "1"`)},
		{0, "web", "filter=" + url.QueryEscape(`Service.Tags == v1`)},
		{0, "web", "filter=" + url.QueryEscape(`"/Node/Node" == a`)},
		{0, "web", "filter=" + url.QueryEscape(`Node.Meta["x\ny"] is empty`)},
		{0, "web", "passing=maybe"},
		{0, "web", "stale&near=_agent&dc=dc1"},
		{0, "web", "dc=dc2"},
		{1, "web", "filter=Status%20!=%20passing"},
		{2, "a", "filter=CheckID%20matches%20%22(%22"},
		{3, "critical", "node-meta=env:prod"},
		{3, "any", "filter=ServiceTags%20is%20empty"},
		{4, "web", "tag=v1&filter=ServicePort%20==%2080"},
		{5, "a", "filter=Port%20==%20x"},
		{6, "b", ""},
		{7, "", "filter=Meta.env%20==%20prod"},
		{8, "", "filter=ServiceName%20==%20web&node-meta=env:prod"},
		{9, "", ""},
		{0, "", ""},
		{0, "web", "a=%zz&index=x"},
		{0, "web", "index=5&wait=1s"},
	} {
		f.Add(s.ep, s.arg, s.query)
	}
	raft := catalogdtest.Start(f)
	d, err := New(Config{Raft: raft.Client()})
	if err != nil {
		f.Fatal(err)
	}
	fuzzStore(f, d)
	f.Fuzz(func(t *testing.T, ep uint8, arg, raw string) {
		q, err := parseCatalogQuery(raw)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest || he.msg == "" {
				t.Fatalf("?%s: refused with %v, want a 400 httpError", raw, err)
			}
			return
		}
		if v, err := url.ParseQuery(raw); err != nil {
			t.Fatalf("?%s accepted despite %v", raw, err)
		} else if len(v["tag"]) != len(q.tags) || v.Get("filter") != q.filter {
			t.Fatalf("?%s: tags %q filter %q", raw, q.tags, q.filter)
		}
		if q.opts.blocking() || strings.ContainsAny(arg, "?#") {
			return // blocking reads would wait; the decoding is what counts
		}
		path := fuzzEndpoints[int(ep)%len(fuzzEndpoints)]
		if strings.HasSuffix(path, "/") {
			path += arg
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL = &url.URL{Path: path, RawQuery: raw}
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, r)
		body := w.Body.String()
		switch {
		case w.Code == http.StatusOK:
			if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("GET %s: 200 without JSON: %q", r.URL, body)
			}
		case w.Code == http.StatusBadRequest && body != "":
		case w.Code == http.StatusInternalServerError && strings.Contains(body, "No path to datacenter"):
		default:
			t.Fatalf("GET %s: %d %q", r.URL, w.Code, body)
		}
	})
}

// FuzzRegisterBody: no body makes the /v1/catalog/register decoder panic;
// a body it refuses is a 400 "Request decode failed", and one it accepts
// encodes as a raft command the state machine decodes back.
func FuzzRegisterBody(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`{"Node":"n1","Address":"10.0.0.1"}`,
		`{"node":"n1","address":"10.0.0.1","nodemeta":{"a":"b"},"taggedaddresses":{"lan":"x"}}`,
		`{"Node":"n","Address":"a","Service":{"Service":"web","Port":80,"Tags":["a"],"TaggedAddresses":{"lan":{"Address":"x","Port":1}},"Weights":{"Passing":2}}}`,
		`{"Node":"n","Address":"a","Check":{"Name":"c","Definition":{"HTTP":"http://x","Interval":"10s","Timeout":1e9,"Header":{"A":["b"]}}}}`,
		`{"Node":"n","Address":"a","Checks":[null,{"CheckID":"x","Definition":{"IntervalDuration":"1m","TTL":"30s"}}]}`,
		`{"Node":"n","Check":{"Definition":{"Interval":"soon"}}}`,
		`{"Node":"n","Check":{"Definition":{"Interval":1e300}}}`,
		`{"Node":["x"]}`,
		`[1,2,3]`,
		`{"Node":"n"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRegister(body)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.code != http.StatusBadRequest || !strings.HasPrefix(he.msg, "Request decode failed: ") {
				t.Fatalf("%q: refused with %v", body, err)
			}
			return
		}
		data, err := state.Encode(state.RegisterType, req)
		if err != nil {
			t.Fatalf("%q: encode: %v", body, err)
		}
		if _, _, err := state.DecodeCommand(data); err != nil && !bytes.Contains([]byte(err.Error()), []byte("unknown message type")) {
			t.Fatalf("%q: command does not decode: %v", body, err)
		}
	})
}
