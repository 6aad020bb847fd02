package catalogd

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/consort-io/consort/catalogd/state"
)

// Blocking query timing, as Consul: ?wait defaults to 5 minutes, is
// clamped at 10, and gets up to wait/16 of random jitter so that many
// watchers do not all return at once.
const (
	defaultQueryTime = 5 * time.Minute
	maxQueryTime     = 10 * time.Minute
	jitterFraction   = 16
)

// mode is a read's consistency mode.
type mode int

const (
	modeDefault    mode = iota // leader lease read index
	modeStale                  // local state, no leader needed
	modeConsistent             // read index confirmed by a quorum
)

// header is the X-Consul-Effective-Consistency value of m.
func (m mode) header() string {
	switch m {
	case modeStale:
		return "stale"
	case modeConsistent:
		return "consistent"
	}
	return "leader"
}

// queryOptions are the parameters every read endpoint takes.
type queryOptions struct {
	mode     mode
	maxStale time.Duration // with ?stale: fall back to a leader read beyond this
	minIndex uint64        // ?index: block until the result's index exceeds it
	wait     time.Duration // ?wait: longest block; 0 means the default
	dc       string        // ?dc, empty for the local datacenter
	pretty   bool
}

// blocking reports whether the read waits for a change.
func (q queryOptions) blocking() bool { return q.minIndex > 0 }

// parseQuery decodes a raw query string. Unlike url.URL.Query it refuses
// malformed input instead of dropping it silently.
func parseQuery(raw string) (url.Values, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("Invalid query string: %v", err)
	}
	return v, nil
}

// has reports whether a flag-style parameter is present; like Consul,
// presence alone counts (?recurse, ?recurse=, ?recurse=false alike).
func has(v url.Values, name string) bool {
	_, ok := v[name]
	return ok
}

// parseQueryOptions decodes consistency, blocking and datacenter
// parameters with Consul's rules and words.
func parseQueryOptions(v url.Values) (queryOptions, error) {
	var q queryOptions
	stale, consistent := has(v, "stale"), has(v, "consistent")
	if ms := v.Get("max_stale"); ms != "" {
		d, err := time.ParseDuration(ms)
		if err != nil {
			return q, badRequest("Invalid max_stale value %q", ms)
		}
		q.maxStale = d
		if d > 0 {
			stale = true
		}
	}
	if stale && consistent {
		return q, badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
	}
	switch {
	case stale:
		q.mode = modeStale
	case consistent:
		q.mode = modeConsistent
	}
	if w := v.Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			return q, badRequest("Invalid wait time")
		}
		q.wait = d
	}
	if idx := v.Get("index"); idx != "" {
		n, err := strconv.ParseUint(idx, 10, 64)
		if err != nil {
			return q, badRequest("Invalid index")
		}
		q.minIndex = n
	}
	q.dc = v.Get("dc")
	q.pretty = has(v, "pretty")
	return q, nil
}

// timeout returns how long a blocking query waits before the jitter.
func (q queryOptions) timeout() time.Duration {
	switch {
	case q.wait <= 0:
		return defaultQueryTime
	case q.wait > maxQueryTime:
		return maxQueryTime
	}
	return q.wait
}

// kvRequest is a decoded /v1/kv request.
type kvRequest struct {
	key string
	// GET
	recurse   bool
	keys      bool
	separator string
	raw       bool
	// PUT and DELETE: the command to apply (Entry.Value filled later)
	cmd state.KVSRequest
}

// parseKV decodes a /v1/kv/<key> request's parameters the way Consul's
// KV endpoint does, refusing what it cannot apply with 400. ?acquire and
// ?release name the session (empty is left to the state machine, which
// refuses it as Consul does).
func parseKV(method, key string, v url.Values) (kvRequest, error) {
	r := kvRequest{key: key}
	switch method {
	case http.MethodGet:
		r.keys = has(v, "keys")
		r.recurse = has(v, "recurse")
		r.raw = has(v, "raw")
		// Consul accepts its historic misspelling too; the right one wins.
		if has(v, "seperator") {
			r.separator = v.Get("seperator")
		}
		if has(v, "separator") {
			r.separator = v.Get("separator")
		}
		if !r.keys && !r.recurse && key == "" {
			return r, badRequest("Missing key name")
		}
		return r, nil
	case http.MethodPut:
		if key == "" {
			return r, badRequest("Missing key name")
		}
		if err := conflicting(v, "cas", "acquire", "release"); err != nil {
			return r, err
		}
		r.cmd = state.KVSRequest{Op: state.KVSet}
		r.cmd.Entry.Key = key
		if has(v, "flags") {
			f, err := parseUint(v, "flags")
			if err != nil {
				return r, err
			}
			r.cmd.Entry.Flags = f
		}
		if has(v, "cas") {
			c, err := parseUint(v, "cas")
			if err != nil {
				return r, err
			}
			r.cmd.Op, r.cmd.Entry.ModifyIndex = state.KVCAS, c
		}
		if has(v, "acquire") {
			r.cmd.Op, r.cmd.Entry.Session = state.KVLock, v.Get("acquire")
		}
		if has(v, "release") {
			r.cmd.Op, r.cmd.Entry.Session = state.KVUnlock, v.Get("release")
		}
		return r, nil
	case http.MethodDelete:
		if err := conflicting(v, "recurse", "cas"); err != nil {
			return r, err
		}
		r.cmd = state.KVSRequest{Op: state.KVDelete}
		r.cmd.Entry.Key = key
		switch {
		case has(v, "recurse"):
			r.cmd.Op = state.KVDeleteTree
		case key == "":
			return r, badRequest("Missing key name")
		case has(v, "cas"):
			c, err := parseUint(v, "cas")
			if err != nil {
				return r, err
			}
			r.cmd.Op, r.cmd.Entry.ModifyIndex = state.KVDeleteCAS, c
		}
		return r, nil
	}
	return r, methodNotAllowed(method, http.MethodGet, http.MethodPut, http.MethodDelete)
}

// conflicting refuses a request naming more than one of flags, as Consul.
func conflicting(v url.Values, flags ...string) error {
	found := ""
	for _, f := range flags {
		if !has(v, f) {
			continue
		}
		if found != "" {
			return badRequest("Conflicting flags: %s", v.Encode())
		}
		found = f
	}
	return nil
}

func parseUint(v url.Values, name string) (uint64, error) {
	s := v.Get(name)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("Invalid %s %q: must be an unsigned integer", name, s)
	}
	return n, nil
}

// parseRequest decodes a /v1/kv request completely: query string, common
// options, KV parameters. It is what FuzzKVQuery exercises.
func parseRequest(method, key, rawQuery string) (queryOptions, kvRequest, error) {
	v, err := parseQuery(rawQuery)
	if err != nil {
		return queryOptions{}, kvRequest{}, err
	}
	q, err := parseQueryOptions(v)
	if err != nil {
		return q, kvRequest{}, err
	}
	r, err := parseKV(method, key, v)
	return q, r, err
}

// httpError is an error with the HTTP status and body to answer with.
type httpError struct {
	code  int
	msg   string
	allow string // Allow header for 405
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func methodNotAllowed(method string, allowed ...string) error {
	allow := ""
	for i, a := range allowed {
		if i > 0 {
			allow += ", "
		}
		allow += a
	}
	return &httpError{code: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s not allowed", method), allow: allow}
}
