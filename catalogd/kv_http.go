package catalogd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/structs"
	"github.com/hashicorp/go-memdb"
)

// applyWait bounds how long a writer waits for the store to apply the
// index raftd committed its command at.
const applyWait = 30 * time.Second

// kvJSON is one KV entry as Consul's API writes it, fields in Consul's
// order. Value is base64 (null when empty); Session only appears when set.
type kvJSON struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte
	Session     string `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

func toJSON(e *structs.KVEntry) kvJSON {
	j := kvJSON{
		LockIndex:   e.LockIndex,
		Key:         e.Key,
		Flags:       e.Flags,
		Value:       e.Value,
		Session:     e.Session,
		CreateIndex: e.CreateIndex,
		ModifyIndex: e.ModifyIndex,
	}
	if len(j.Value) == 0 {
		j.Value = nil
	}
	return j
}

// kvEndpoint serves /v1/kv/<key>.
func (d *Daemon) kvEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1/kv"), "/")
	q, req, err := parseRequest(r.Method, key, r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if err := d.checkDC(q); err != nil {
		return nil, err
	}
	switch r.Method {
	case http.MethodGet:
		if req.keys {
			return d.kvKeys(w, r, q, req)
		}
		return d.kvGet(w, r, q, req)
	case http.MethodPut:
		return d.kvPut(w, r, req)
	default: // DELETE; parseKV refused the rest
		ok, err := d.apply(r.Context(), req.cmd)
		if err != nil {
			return nil, err
		}
		// Only a CAS delete can fail; Consul answers true otherwise.
		return ok || req.cmd.Op != state.KVDeleteCAS, nil
	}
}

// kvGet answers one key, or every key under a prefix with ?recurse.
func (d *Daemon) kvGet(w http.ResponseWriter, r *http.Request, q queryOptions, req kvRequest) (any, error) {
	var ents []*structs.KVEntry
	meta, err := d.query(r.Context(), q, func(ws memdb.WatchSet) (uint64, error) {
		if req.recurse {
			idx, list, err := d.store.KVList(ws, req.key)
			ents = list
			return idx, err
		}
		idx, e, err := d.store.KVGet(ws, req.key)
		ents = ents[:0]
		if e != nil {
			ents = append(ents, e)
		}
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	if len(ents) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return nil, nil
	}
	if req.raw && !req.recurse {
		// As Consul: the value's bytes as text/plain that browsers may not
		// sniff or run, so a stored value cannot script the API's origin.
		body := ents[0].Value
		h := w.Header()
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Content-Type", "text/plain")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		return nil, nil
	}
	out := make([]kvJSON, len(ents))
	for i, e := range ents {
		out[i] = toJSON(e)
	}
	return out, nil
}

// kvKeys answers the key names under a prefix, rolled up at the first
// separator after the prefix when one is given.
func (d *Daemon) kvKeys(w http.ResponseWriter, r *http.Request, q queryOptions, req kvRequest) (any, error) {
	var keys []string
	meta, err := d.query(r.Context(), q, func(ws memdb.WatchSet) (uint64, error) {
		idx, k, err := d.store.KVKeys(ws, req.key, req.separator)
		keys = k
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	meta.setHeaders(w.Header())
	// As Consul: nothing under a prefix is a 404, nothing at all is [].
	if len(keys) == 0 && req.key != "" {
		w.WriteHeader(http.StatusNotFound)
		return nil, nil
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

// kvPut stores the request body as the key's value.
func (d *Daemon) kvPut(w http.ResponseWriter, r *http.Request, req kvRequest) (any, error) {
	max := d.cfg.KVMaxValueSize
	if r.ContentLength > int64(max) {
		return nil, tooLarge(r.ContentLength, max)
	}
	// A chunked body has no length up front: read one byte past the limit.
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, badRequest("Failed to read request body: %v", err)
	}
	if len(body) > max {
		return nil, tooLarge(-1, max)
	}
	req.cmd.Entry.Value = body
	if req.cmd.Op == state.KVLock || req.cmd.Op == state.KVUnlock {
		// The state machine checks lock-delays against the writer's clock.
		req.cmd.Now = d.wallNow()
	}
	ok, err := d.apply(r.Context(), req.cmd)
	if err != nil {
		return nil, err
	}
	// A CAS, acquire or release can fail; Consul answers true for a
	// plain set.
	return ok || req.cmd.Op == state.KVSet, nil
}

// tooLarge is Consul's answer to a value over kv_max_value_size; size is
// -1 when the body came without a length.
func tooLarge(size int64, max int) error {
	got := "more than " + strconv.Itoa(max)
	if size >= 0 {
		got = strconv.FormatInt(size, 10)
	}
	return &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
		"Request body(%s bytes) too large, max size: %d bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.", got, max)}
}

// apply commits a KV command through raft, waits until the store applied
// it, and returns the store's result for it.
func (d *Daemon) apply(ctx context.Context, cmd state.KVSRequest) (bool, error) {
	data, err := state.Encode(state.KVSType, cmd)
	if err != nil {
		return false, fmt.Errorf("encode kv %s %q: %w", cmd.Op, cmd.Entry.Key, err)
	}
	idx, err := d.cfg.Raft.Apply(ctx, data)
	if err != nil {
		return false, err
	}
	wctx, cancel := context.WithTimeout(ctx, d.applyWait)
	defer cancel()
	if err := d.track.wait(wctx, idx); err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("write committed at index %d; request ended before catalogd applied it: %w", idx, ctx.Err())
		}
		return false, fmt.Errorf("write committed at index %d but catalogd has not applied it after %s (applied %d): the write will take effect, its result is unknown: %w",
			idx, d.applyWait, d.track.applied(), errBehind)
	}
	res, ok := d.track.take(idx)
	if !ok {
		// Reached through a snapshot restore, or evicted: applied, but
		// the command's own answer is gone. Only CAS, acquire and
		// release answers can differ.
		if cmd.Op != state.KVCAS && cmd.Op != state.KVDeleteCAS && cmd.Op != state.KVLock && cmd.Op != state.KVUnlock {
			return true, nil
		}
		return false, fmt.Errorf("write committed and applied at index %d, but its result is unknown (catalogd restored a snapshot past it)", idx)
	}
	switch v := res.(type) {
	case bool:
		return v, nil
	case error:
		return false, fmt.Errorf("kv %s %q: %w", cmd.Op, cmd.Entry.Key, v)
	case nil:
		return false, fmt.Errorf("kv %s %q: the state machine returned no result", cmd.Op, cmd.Entry.Key)
	}
	return false, fmt.Errorf("kv %s %q: unexpected result %T", cmd.Op, cmd.Entry.Key, res)
}
