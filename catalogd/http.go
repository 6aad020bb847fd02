package catalogd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/raftapi"
)

// ConsulVersion is the Consul version whose HTTP API catalogd speaks; it
// is what /v1/agent/self reports as Config.Version.
const ConsulVersion = "1.22.0"

// endpoint handles one route. It returns a value to answer as JSON, or nil
// after writing the response itself, or an error to answer with.
type endpoint func(w http.ResponseWriter, r *http.Request) (any, error)

// Handler returns the Consul /v1 HTTP API handler. Run serves it on
// Config.HTTPAddr; tests may serve it themselves.
func (d *Daemon) Handler() http.Handler { return http.HandlerFunc(d.serveHTTP) }

// serveHTTP routes a request. Routing is by exact path prefix, without
// http.ServeMux's path cleaning: a KV key is whatever follows /v1/kv/,
// slashes and dots included.
func (d *Daemon) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var h endpoint
	switch {
	case strings.HasPrefix(p, "/v1/kv/") || p == "/v1/kv":
		h = d.kvEndpoint
	case strings.HasPrefix(p, "/v1/catalog/"):
		h = d.catalogEndpoint
	case strings.HasPrefix(p, "/v1/health/"):
		h = d.healthEndpoint
	case strings.HasPrefix(p, "/v1/session/"):
		h = d.sessionEndpoint
	case p == "/v1/txn":
		h = d.txnEndpoint
	case p == "/v1/status/leader":
		h = get(d.statusLeader)
	case p == "/v1/status/peers":
		h = get(d.statusPeers)
	case p == "/v1/agent/self":
		h = get(d.agentSelf)
	case strings.HasPrefix(p, "/v1/agent/"):
		h = d.agentEndpoint
	case p == "/":
		h = get(func(w http.ResponseWriter, r *http.Request) (any, error) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "Consul Agent (consort catalogd): the HTTP API is under /v1/")
			return nil, nil
		})
	default:
		h = func(w http.ResponseWriter, r *http.Request) (any, error) {
			return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(
				"Unknown endpoint %s %s: consort's catalogd serves /v1/kv/, /v1/catalog/, /v1/health/, /v1/session/, /v1/agent/, /v1/txn, /v1/status/leader and /v1/status/peers", r.Method, p)}
		}
	}
	d.run(w, r, h)
}

// get restricts an endpoint to GET.
func get(h endpoint) endpoint {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		if r.Method != http.MethodGet {
			return nil, methodNotAllowed(r.Method, http.MethodGet)
		}
		return h(w, r)
	}
}

// run calls h and writes its result or error, recovering a panic into a
// 500 for this request only.
func (d *Daemon) run(w http.ResponseWriter, r *http.Request, h endpoint) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			d.log.Error("http handler panic", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			d.writeError(w, r, fmt.Errorf("internal error: %v", p))
		}
	}()
	obj, err := h(w, r)
	switch {
	case err != nil:
		d.writeError(w, r, err)
	case obj != nil:
		writeJSON(w, r, http.StatusOK, obj)
	}
	d.log.Debug("http request", "method", r.Method, "url", logURL(r), "took", time.Since(start), "err", err)
}

// logURL is the request URL with any ?token hidden.
func logURL(r *http.Request) string {
	if !strings.Contains(r.URL.RawQuery, "token") {
		return r.URL.String()
	}
	v := r.URL.Query()
	if has(v, "token") {
		v.Set("token", "hidden")
	}
	u := *r.URL
	u.RawQuery = v.Encode()
	return u.String()
}

// writeJSON answers obj as JSON, indented under ?pretty as Consul does.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, obj any) {
	var b []byte
	var err error
	if strings.Contains(r.URL.RawQuery, "pretty") && has(r.URL.Query(), "pretty") {
		b, err = json.MarshalIndent(obj, "", "    ")
		b = append(b, '\n')
	} else {
		b, err = json.Marshal(obj)
	}
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeError answers err with Consul's status and words where Consul has
// them, and a sentence saying what to do where it does not.
func (d *Daemon) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := d.errorResponse(err)
	var he *httpError
	if errors.As(err, &he) && he.allow != "" {
		w.Header().Set("Allow", he.allow)
	}
	if code >= 500 {
		// Expected outages (no leader, raftd away, shutting down) would
		// flood the log at every request; they are logged where they are
		// noticed (feed, status) instead.
		lvl := slog.LevelWarn
		if expected(err) {
			lvl = slog.LevelDebug
		}
		d.log.Log(r.Context(), lvl, "http request failed", "method", r.Method, "url", logURL(r), "status", code, "err", msg)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprint(w, msg)
}

// expected reports whether err is an outage the daemon already reports
// elsewhere rather than a fault in this request.
func expected(err error) bool {
	for _, e := range []error{raftapi.ErrNoLeader, raftapi.ErrShutdown, ipc.ErrUnavailable, errBehind, context.Canceled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// errorResponse maps an error to a status and body.
func (d *Daemon) errorResponse(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.Is(err, raftapi.ErrNoLeader):
		return http.StatusInternalServerError, "No cluster leader"
	case errors.Is(err, raftapi.ErrTimeout):
		return http.StatusInternalServerError, "rpc error: timed out waiting for raft to commit the write; its outcome is unknown (it may or may not have been applied): read the key to find out"
	case errors.Is(err, raftapi.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("rpc error: %v (limit %d bytes)", err, raftapi.MaxCommandSize)
	case errors.Is(err, ipc.ErrUnavailable):
		return http.StatusInternalServerError, fmt.Sprintf(
			"rpc error: raftd unavailable: %v; start raftd (or check that it serves %s), then retry", err, d.cfg.RaftSocket)
	case errors.Is(err, errBehind):
		return http.StatusInternalServerError, err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusInternalServerError, "request cancelled: " + err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

// checkDC refuses a ?dc naming another datacenter: consort does not
// forward between datacenters yet. Consul's words for an unreachable
// datacenter.
func (d *Daemon) checkDC(q queryOptions) error {
	if q.dc != "" && q.dc != d.cfg.Datacenter {
		return fmt.Errorf("No path to datacenter")
	}
	return nil
}

// statusLeader answers raft's leader address, "" when there is none.
func (d *Daemon) statusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	st, err := d.cfg.Raft.Status(r.Context())
	if err != nil {
		return nil, err
	}
	if !st.KnownLeader {
		return "", nil
	}
	return st.LeaderAddr, nil
}

// statusPeers answers the raft addresses of the servers in the raft
// configuration.
func (d *Daemon) statusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	st, err := d.cfg.Raft.Status(r.Context())
	if err != nil {
		return nil, err
	}
	peers := make([]string, 0, len(st.Peers))
	for _, p := range st.Peers {
		peers = append(peers, p.Address)
	}
	return peers, nil
}

// agentSelf answers the parts of Consul's /v1/agent/self that clients
// read: Config (datacenter, node name and ID, server, version) and Member.
func (d *Daemon) agentSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	id := d.cfg.NodeID
	if id == "" {
		id = d.status.serverID()
	}
	role := "node"
	if d.cfg.Server {
		role = "consul"
	}
	return map[string]any{
		"Config": map[string]any{
			"Datacenter":        d.cfg.Datacenter,
			"PrimaryDatacenter": d.cfg.Datacenter,
			"NodeName":          d.cfg.NodeName,
			"NodeID":            id,
			"Server":            d.cfg.Server,
			"Revision":          "consort",
			"Version":           ConsulVersion,
		},
		"Member": map[string]any{
			"Name":   d.cfg.NodeName,
			"Addr":   d.cfg.Advertise,
			"Port":   d.cfg.SerfLANPort,
			"Tags":   map[string]string{"dc": d.cfg.Datacenter, "role": role, "id": id},
			"Status": 1,
		},
		"Meta": nodeMeta(d.cfg.NodeMeta),
	}, nil
}

// nodeMeta is the node's meta as /v1/agent/self reports it: {} when none.
func nodeMeta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
