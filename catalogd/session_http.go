package catalogd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
	"github.com/hashicorp/go-memdb"
)

// Session limits and defaults, Consul's.
const (
	// DefaultSessionTTLMin is the shortest session TTL accepted (Consul's
	// session_ttl_min default).
	DefaultSessionTTLMin = 10 * time.Second
	// SessionTTLMax is the longest session TTL accepted.
	SessionTTLMax = 24 * time.Hour
	// sessionTTLMultiplier: a TTL session expires on the leader after
	// TTL × 2 without a renew, Consul's grace for clients and networks.
	sessionTTLMultiplier = 2
	// defaultLockDelay is a new session's lock-delay unless the body
	// gives one.
	defaultLockDelay = 15 * time.Second
	// lockDelayMinThreshold: a LockDelay below it, as a number or a
	// duration string, counts in seconds (Consul's quirk: users write 15
	// meaning 15 s).
	lockDelayMinThreshold = 1000
	// serfHealthID is the check every session is tied to by default.
	serfHealthID = "serfHealth"
	// maxSessionBody bounds a /v1/session/create body.
	maxSessionBody = 512 << 10
)

// sessionEndpoint serves /v1/session/*.
func (d *Daemon) sessionEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/session/")
	op, arg, hasArg := strings.Cut(rest, "/")
	var method string
	var h endpoint
	switch {
	case op == "create" && !hasArg:
		method, h = http.MethodPut, d.sessionCreate
	case op == "list" && !hasArg:
		method, h = http.MethodGet, d.sessionList
	case op == "destroy":
		method, h = http.MethodPut, func(w http.ResponseWriter, r *http.Request) (any, error) { return d.sessionDestroy(w, r, arg) }
	case op == "renew":
		method, h = http.MethodPut, func(w http.ResponseWriter, r *http.Request) (any, error) { return d.sessionRenew(w, r, arg) }
	case op == "info":
		method, h = http.MethodGet, func(w http.ResponseWriter, r *http.Request) (any, error) { return d.sessionInfo(w, r, arg) }
	case op == "node":
		method, h = http.MethodGet, func(w http.ResponseWriter, r *http.Request) (any, error) { return d.sessionNode(w, r, arg) }
	default:
		return nil, &httpError{code: http.StatusNotFound, msg: "Unknown endpoint " + r.Method + " " + r.URL.Path +
			": consort serves /v1/session/{create,destroy/<id>,renew/<id>,info/<id>,node/<node>,list}"}
	}
	if r.Method != method {
		return nil, methodNotAllowed(r.Method, method)
	}
	return h(w, r)
}

// sessionJSON is a session as Consul's API writes it, fields in Consul's
// order; LockDelay is in nanoseconds.
type sessionJSON struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           string
	NodeChecks    []string
	ServiceChecks []serviceCheckJSON
	CreateIndex   uint64
	ModifyIndex   uint64
}

type serviceCheckJSON struct {
	ID        string
	Namespace string
}

func sessionToJSON(s *structs.Session) sessionJSON {
	j := sessionJSON{
		ID: s.ID, Name: s.Name, Node: s.Node, LockDelay: time.Duration(s.LockDelay),
		Behavior: s.Behavior, TTL: s.TTL, NodeChecks: s.NodeChecks,
		CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex,
	}
	if j.NodeChecks == nil {
		// The store keeps no empty lists; Consul answers [] for a session
		// without node checks (and null without service checks).
		j.NodeChecks = []string{}
	}
	for _, c := range s.ServiceChecks {
		j.ServiceChecks = append(j.ServiceChecks, serviceCheckJSON(c))
	}
	return j
}

func sessionsToJSON(list []*structs.Session) []sessionJSON {
	out := make([]sessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, sessionToJSON(s))
	}
	return out
}

// sessionBody is a /v1/session/create body, decoded as Consul's
// structs.Session: field names in any case, unknown fields (Namespace,
// Partition, ID, indexes) ignored. LockDelay stays raw for its quirks.
type sessionBody struct {
	Name          string
	Node          string
	LockDelay     any
	Behavior      string
	TTL           string
	Checks        []string
	NodeChecks    []string
	ServiceChecks []serviceCheckJSON
}

// sessionSpec is a decoded create request before validation.
type sessionSpec struct {
	session structs.Session
	// defaultSerf: NodeChecks holds serfHealth only because it is the
	// default, not because the body asked for it.
	defaultSerf bool
}

// decodeSession decodes a /v1/session/create body the way Consul's
// handler does, starting from its defaults: Node the agent's node,
// NodeChecks ["serfHealth"], LockDelay 15 s, Behavior release, no TTL.
// An empty body keeps every default. Checks (the pre-1.7 field) counts as
// node checks; "Checks": [] removes the default serfHealth check, as does
// "NodeChecks": []. It is what FuzzSessionCreate exercises.
func decodeSession(body []byte, node string) (sessionSpec, error) {
	def := []string{serfHealthID}
	b := sessionBody{
		Node:       node,
		Checks:     slices.Clone(def),
		NodeChecks: slices.Clone(def),
		Behavior:   structs.SessionBehaviorRelease,
	}
	delay := defaultLockDelay
	named := map[string]bool{}
	if len(body) > 0 {
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&b); err != nil {
			return sessionSpec{}, badRequest("Request decode failed: %v", err)
		}
		if b.LockDelay != nil {
			d, err := lockDelay(b.LockDelay)
			if err != nil {
				return sessionSpec{}, badRequest("Request decode failed: %v", err)
			}
			delay = d
		}
		// Which check fields the body names, matched as encoding/json
		// matches them; the decode above succeeded, so this one does too
		// unless the body is not an object (then none is named).
		var raw map[string]json.RawMessage
		if json.NewDecoder(bytes.NewReader(body)).Decode(&raw) == nil {
			for k := range raw {
				for _, f := range []string{"Checks", "NodeChecks"} {
					if strings.EqualFold(k, f) {
						named[f] = true
					}
				}
			}
		}
	}
	spec := sessionSpec{
		session: structs.Session{
			Name: b.Name, Node: b.Node, LockDelay: int64(delay), Behavior: b.Behavior, TTL: b.TTL,
		},
		defaultSerf: !named["NodeChecks"] && !(named["Checks"] && slices.Contains(b.Checks, serfHealthID)),
	}
	for _, c := range b.ServiceChecks {
		spec.session.ServiceChecks = append(spec.session.ServiceChecks, structs.ServiceCheck(c))
	}
	checks, nodeChecks := b.Checks, b.NodeChecks
	// Consul's fixupEmptySessionChecks, step by step.
	switch {
	case len(checks) == 0:
		nodeChecks = []string{}
	case len(checks) == 1 && checks[0] == serfHealthID:
		checks = nil
	case len(nodeChecks) == 0:
		checks = nil
	}
	// consort's sessions have no separate Checks field: the old field's
	// IDs are node checks too (Consul ties the session to both lists).
	for _, c := range checks {
		if !slices.Contains(nodeChecks, c) {
			nodeChecks = append(nodeChecks, c)
		}
	}
	spec.session.NodeChecks = nodeChecks
	spec.defaultSerf = spec.defaultSerf && slices.Contains(nodeChecks, serfHealthID)
	return spec, nil
}

// lockDelay converts a LockDelay as Consul's Session.UnmarshalJSON does: a
// Go duration string or a number of nanoseconds, either counted in
// seconds below 1000; any other JSON type means 0.
func lockDelay(v any) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case string:
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, err
		}
	case float64:
		d = time.Duration(v)
	}
	if d < lockDelayMinThreshold {
		d *= time.Second
	}
	return d, nil
}

// validateSession applies Consul's server-side checks to a session being
// created, in Consul's words. It fills the default behavior.
func validateSession(s *structs.Session, ttlMin time.Duration) error {
	if s.Node == "" {
		return errors.New("Must provide Node")
	}
	switch s.Behavior {
	case "":
		s.Behavior = structs.SessionBehaviorRelease
	case structs.SessionBehaviorRelease, structs.SessionBehaviorDelete:
	default:
		return fmt.Errorf("Invalid Behavior setting '%s'", s.Behavior)
	}
	if s.TTL != "" {
		ttl, err := time.ParseDuration(s.TTL)
		if err != nil {
			return fmt.Errorf("Session TTL '%s' invalid: %v", s.TTL, err)
		}
		if ttl != 0 && (ttl < ttlMin || ttl > SessionTTLMax) {
			return fmt.Errorf("Invalid Session TTL '%d', must be between [%v=%v]", ttl, ttlMin, SessionTTLMax)
		}
	}
	return nil
}

// sessionTTL returns a session's TTL, 0 for none (or one that does not
// parse, which validateSession refuses before it is written).
func sessionTTL(s *structs.Session) time.Duration {
	switch s.TTL {
	case "", "0", "0s", "0m", "0h":
		return 0
	}
	ttl, err := time.ParseDuration(s.TTL)
	if err != nil || ttl < 0 {
		return 0
	}
	return ttl
}

// writeQuery decodes a write's query string and refuses another
// datacenter.
func (d *Daemon) writeQuery(r *http.Request) error {
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	return d.checkDC(queryOptions{dc: v.Get("dc")})
}

// readQuery decodes a read's query string and refuses another
// datacenter.
func (d *Daemon) readQuery(r *http.Request) (queryOptions, error) {
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return queryOptions{}, err
	}
	q, err := parseQueryOptions(v)
	if err != nil {
		return q, err
	}
	return q, d.checkDC(q)
}

// sessionCreate serves PUT /v1/session/create: it decodes and checks the
// body, makes a random UUID for the session, commits the session through
// raft and answers {"ID": ...}.
func (d *Daemon) sessionCreate(w http.ResponseWriter, r *http.Request) (any, error) {
	if err := d.writeQuery(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSessionBody+1))
	if err != nil {
		return nil, badRequest("Failed to read request body: %v", err)
	}
	if len(body) > maxSessionBody {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"Request body too large: more than %d bytes", maxSessionBody)}
	}
	spec, err := decodeSession(body, d.cfg.NodeName)
	if err != nil {
		return nil, err
	}
	s := spec.session
	if err := validateSession(&s, d.cfg.SessionTTLMin); err != nil {
		return nil, err
	}
	if spec.defaultSerf && !d.hasCheck(s.Node, serfHealthID) {
		// consort has no gossip yet (issue 6), so no serfHealth check: a
		// default that cannot exist would refuse every plain create. An
		// explicit serfHealth still fails as in Consul.
		d.log.Debug("session create: no serfHealth check on the node, dropped from the default checks", "node", s.Node)
		s.NodeChecks = slices.DeleteFunc(s.NodeChecks, func(c string) bool { return c == serfHealthID })
	}
	if s.ID, err = d.newSessionID(); err != nil {
		return nil, err
	}
	res, _, err := d.applySession(r.Context(), state.SessionRequest{Op: state.SessionCreate, Session: s, Now: d.wallNow()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, &httpError{code: http.StatusInternalServerError, msg: res.Err.Error()}
	}
	return struct{ ID string }{s.ID}, nil
}

// hasCheck reports whether the local store has check id on node.
func (d *Daemon) hasCheck(node, id string) bool {
	_, checks, err := d.store.NodeChecks(nil, node)
	if err != nil {
		return false
	}
	for _, c := range checks {
		if c.CheckID == id {
			return true
		}
	}
	return false
}

// newSessionID returns a random (version 4) UUID not used by a session in
// the local store.
func (d *Daemon) newSessionID() (string, error) {
	for range 5 {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("session id: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		if _, s, err := d.store.SessionGet(nil, id); err == nil && s == nil {
			return id, nil
		}
	}
	return "", errors.New("session id: no unused random UUID after 5 tries")
}

// wallNow is the time writers stamp into commands, in unix nanoseconds.
func (d *Daemon) wallNow() int64 { return time.Now().UnixNano() }

// sessionDestroy serves PUT /v1/session/destroy/<id>: true once applied,
// whether or not the session existed (as Consul).
func (d *Daemon) sessionDestroy(w http.ResponseWriter, r *http.Request, id string) (any, error) {
	if err := d.writeQuery(r); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, badRequest("Missing session")
	}
	res, _, err := d.applySession(r.Context(), state.SessionRequest{
		Op: state.SessionDestroy, Session: structs.Session{ID: id}, Now: d.wallNow(), Reason: state.ReasonDestroyed,
	})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, &httpError{code: http.StatusInternalServerError, msg: res.Err.Error()}
	}
	return true, nil
}

// sessionRenew serves PUT /v1/session/renew/<id>. The renew is a raft
// command on every server (Consul renews by RPC to the leader), so the
// leader's catalogd re-arms the TTL timer when it applies it. It answers
// the session as a one-element list, or 404 when it does not exist
// (never did, destroyed, expired).
func (d *Daemon) sessionRenew(w http.ResponseWriter, r *http.Request, id string) (any, error) {
	if _, err := d.readQuery(r); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, badRequest("Missing session")
	}
	res, _, err := d.applySession(r.Context(), state.SessionRequest{
		Op: state.SessionRenew, Session: structs.Session{ID: id}, Now: d.wallNow(),
	})
	if err != nil {
		return nil, err
	}
	_, s, gerr := d.store.SessionGet(nil, id)
	switch {
	case gerr != nil:
		return nil, gerr
	case s == nil:
		return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("Session id '%s' not found", id)}
	case res.Err != nil:
		return nil, &httpError{code: http.StatusInternalServerError, msg: res.Err.Error()}
	}
	return []sessionJSON{sessionToJSON(s)}, nil
}

// sessionInfo serves GET /v1/session/info/<id>: the session as a
// one-element list, [] when there is none. Blocking, any consistency.
func (d *Daemon) sessionInfo(w http.ResponseWriter, r *http.Request, id string) (any, error) {
	q, err := d.readQuery(r)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, badRequest("Missing session")
	}
	var out []*structs.Session
	meta, err := d.query(r.Context(), q, func(ws memdb.WatchSet) (uint64, error) {
		idx, s, err := d.store.SessionGet(ws, id)
		out = out[:0]
		if s != nil {
			out = append(out, s)
		}
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	return sessionsToJSON(out), nil
}

// sessionNode serves GET /v1/session/node/<node>: the node's sessions.
func (d *Daemon) sessionNode(w http.ResponseWriter, r *http.Request, node string) (any, error) {
	q, err := d.readQuery(r)
	if err != nil {
		return nil, err
	}
	if node == "" {
		return nil, badRequest("Missing node name")
	}
	return d.sessionRead(w, r, q, func(ws memdb.WatchSet) (uint64, []*structs.Session, error) {
		return d.store.NodeSessions(ws, node)
	})
}

// sessionList serves GET /v1/session/list: every session.
func (d *Daemon) sessionList(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := d.readQuery(r)
	if err != nil {
		return nil, err
	}
	return d.sessionRead(w, r, q, d.store.SessionList)
}

// sessionRead runs a session list query and answers it ([] when empty).
func (d *Daemon) sessionRead(w http.ResponseWriter, r *http.Request, q queryOptions,
	read func(memdb.WatchSet) (uint64, []*structs.Session, error)) (any, error) {
	var out []*structs.Session
	meta, err := d.query(r.Context(), q, func(ws memdb.WatchSet) (uint64, error) {
		idx, list, err := read(ws)
		out = list
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	return sessionsToJSON(out), nil
}

// applySession commits a session command through raft, waits until the
// store applied it, and returns the store's result and the index.
func (d *Daemon) applySession(ctx context.Context, req state.SessionRequest) (*state.SessionResult, uint64, error) {
	data, err := state.Encode(state.SessionType, req)
	if err != nil {
		return nil, 0, fmt.Errorf("encode session %s %q: %w", req.Op, req.Session.ID, err)
	}
	idx, err := d.cfg.Raft.Apply(ctx, data)
	if err != nil {
		return nil, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, d.applyWait)
	defer cancel()
	if err := d.track.wait(wctx, idx); err != nil {
		if ctx.Err() != nil {
			return nil, idx, fmt.Errorf("write committed at index %d; request ended before catalogd applied it: %w", idx, ctx.Err())
		}
		return nil, idx, fmt.Errorf("write committed at index %d but catalogd has not applied it after %s (applied %d): the write will take effect, its result is unknown: %w",
			idx, d.applyWait, d.track.applied(), errBehind)
	}
	res, ok := d.track.take(idx)
	if !ok {
		// Reached through a snapshot restore, or evicted: applied, but
		// its own answer is gone. Only a create can have been refused.
		if req.Op != state.SessionCreate {
			return &state.SessionResult{}, idx, nil
		}
		return nil, idx, fmt.Errorf("session create committed and applied at index %d, but its result is unknown (catalogd restored a snapshot past it): list the sessions to find out", idx)
	}
	switch v := res.(type) {
	case *state.SessionResult:
		if v != nil {
			return v, idx, nil
		}
	case error:
		return nil, idx, fmt.Errorf("session %s at index %d: %w", req.Op, idx, v)
	}
	return nil, idx, fmt.Errorf("session %s at index %d: unexpected result %T", req.Op, idx, res)
}
