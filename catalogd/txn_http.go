package catalogd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/structs"
)

// txnMaxReqLen is Consul's default txn_max_req_len: the most bytes a
// /v1/txn body may have (or kv_max_value_size when that is larger).
const txnMaxReqLen = 512 << 10

// txnLimitURL is where Consul's 413 answers send the reader.
const txnLimitURL = "https://www.consul.io/docs/agent/config/config-files#txn_max_req_len"

// The /v1/txn body, as the Consul API client's TxnOps encodes it. Field
// names match case-insensitively, unknown fields are ignored, and Value is
// base64, as in Consul. Fields Consul has for features consort lacks
// (Namespace, Partition, PeerName, Locality, Proxy, Connect) are ignored.
type (
	txnOpBody struct {
		KV      *txnKVBody
		Node    *txnNodeBody
		Service *txnServiceBody
		Check   *txnCheckBody
	}
	txnKVBody struct {
		Verb    string
		Key     string
		Value   []byte
		Flags   uint64
		Index   uint64
		Session string
	}
	txnNodeBody struct {
		Verb string
		Node struct {
			ID              string
			Node            string
			Address         string
			Datacenter      string
			TaggedAddresses map[string]string
			Meta            map[string]string
			ModifyIndex     uint64
		}
	}
	txnServiceBody struct {
		Verb    string
		Node    string
		Service struct {
			Kind              string
			ID                string
			Service           string
			Tags              []string
			Address           string
			Meta              map[string]string
			Port              int
			Weights           *structs.Weights
			EnableTagOverride bool
			ModifyIndex       uint64
		}
	}
	txnCheckBody struct {
		Verb  string
		Check struct {
			checkBody
			ModifyIndex uint64
		}
	}
)

// decodeTxn decodes and checks a /v1/txn body the way Consul's handler
// does: at most state.MaxTxnOps operations (413 beyond, naming the
// limit), no KV value above maxValue bytes (413), a body that is not a
// JSON array of operations is a 400, and so is an operation with none (or
// several) of KV, Node, Service and Check. Verbs are passed on as they
// are: the state machine refuses unknown ones with Consul's words, as a
// failed operation (409). dc fills a node operation's empty Datacenter.
// The size of the body itself is checked by the caller. It is what
// FuzzTxnRequest exercises.
func decodeTxn(body []byte, dc string, maxValue int) ([]state.TxnOp, error) {
	var in []*txnOpBody
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&in); err != nil {
		return nil, badRequest("Failed to parse body: %v", err)
	}
	if len(in) > state.MaxTxnOps {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"Transaction contains too many operations (%d > %d)", len(in), state.MaxTxnOps)}
	}
	ops := make([]state.TxnOp, 0, len(in))
	for i, op := range in {
		var out state.TxnOp
		set := 0
		if op != nil && op.KV != nil {
			set++
			kv := op.KV
			if len(kv.Value) > maxValue {
				return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
					"Value for key %q is too large (%d > %d bytes)", kv.Key, len(kv.Value), maxValue)}
			}
			out.KV = &state.TxnKVOp{Verb: state.KVOp(kv.Verb), Entry: structs.KVEntry{
				Key: kv.Key, Value: kv.Value, Flags: kv.Flags, Session: kv.Session, ModifyIndex: kv.Index,
			}}
		}
		if op != nil && op.Node != nil {
			set++
			n := op.Node.Node
			if n.Datacenter == "" {
				n.Datacenter = dc
			}
			out.Node = &state.TxnNodeOp{Verb: state.TxnVerb(op.Node.Verb), Node: structs.Node{
				ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter,
				TaggedAddresses: n.TaggedAddresses, Meta: n.Meta, ModifyIndex: n.ModifyIndex,
			}}
		}
		if op != nil && op.Service != nil {
			set++
			s := op.Service.Service
			// The API client always sends Weights; all zero means unset.
			w := s.Weights
			if w != nil && *w == (structs.Weights{}) {
				w = nil
			}
			out.Service = &state.TxnServiceOp{Verb: state.TxnVerb(op.Service.Verb), Node: op.Service.Node, Service: structs.NodeService{
				Kind: s.Kind, ID: s.ID, Service: s.Service, Tags: s.Tags, Address: s.Address, Meta: s.Meta,
				Port: s.Port, Weights: w, EnableTagOverride: s.EnableTagOverride, ModifyIndex: s.ModifyIndex,
			}}
		}
		if op != nil && op.Check != nil {
			set++
			c := op.Check.Check
			rec := c.checkBody.record()
			rec.ModifyIndex = c.ModifyIndex
			out.Check = &state.TxnCheckOp{Verb: state.TxnVerb(op.Check.Verb), Check: *rec}
		}
		if set != 1 {
			return nil, badRequest("Failed to parse body: operation %d must have exactly one of KV, Node, Service or Check, it has %d", i, set)
		}
		ops = append(ops, out)
	}
	return ops, nil
}

// txnResultJSON is one element of Results: Consul's structs.TxnResult.
type txnResultJSON struct {
	KV      *kvJSON      `json:",omitempty"`
	Node    *nodeJSON    `json:",omitempty"`
	Service *serviceJSON `json:",omitempty"`
	Check   *checkJSON   `json:",omitempty"`
}

// txnErrorJSON is Consul's structs.TxnError.
type txnErrorJSON struct {
	OpIndex int
	What    string
}

// txnResponseJSON is Consul's TxnResponse: Results or Errors, the other
// null.
type txnResponseJSON struct {
	Results []txnResultJSON
	Errors  []txnErrorJSON
}

// txnReadResponseJSON is Consul's TxnReadResponse: a TxnResponse with the
// read's QueryMeta inline.
type txnReadResponseJSON struct {
	txnResponseJSON
	Index            uint64
	LastContact      time.Duration
	KnownLeader      bool
	ConsistencyLevel string
	NotModified      bool
	Backend          int
}

// txnEndpoint serves PUT /v1/txn: a transaction of up to state.MaxTxnOps
// operations, applied all or nothing as one raft entry, or, when it only
// reads, answered from the local store with ?stale/?consistent honoured.
// 200 carries Results; 409 carries Errors naming the failed operations.
func (d *Daemon) txnEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.Method != http.MethodPut {
		return nil, methodNotAllowed(r.Method, http.MethodPut)
	}
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	q, err := parseQueryOptions(v)
	if err != nil {
		return nil, err
	}
	if err := d.checkDC(q); err != nil {
		return nil, err
	}
	body, err := d.readTxnBody(r)
	if err != nil {
		return nil, err
	}
	ops, err := decodeTxn(body, d.cfg.Datacenter, d.cfg.KVMaxValueSize)
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	cmd := &state.TxnRequest{Ops: ops, Now: time.Now().UnixNano()}
	var res *state.TxnResult
	if cmd.ReadOnly() {
		meta, err := d.barrier(r.Context(), q)
		if err != nil {
			return nil, err
		}
		res = d.store.TxnRead(cmd)
		// As Consul: a read transaction reports its leader facts in the
		// headers, but no index.
		h := w.Header()
		h.Set("X-Consul-KnownLeader", strconv.FormatBool(meta.knownLeader))
		h.Set("X-Consul-LastContact", strconv.FormatInt(max(meta.lastContact, 0).Milliseconds(), 10))
		writeJSON(w, r, txnStatus(res), txnReadResponseJSON{
			txnResponseJSON:  conv.txnResponse(res),
			Index:            res.Index,
			LastContact:      max(meta.lastContact, 0),
			KnownLeader:      meta.knownLeader,
			ConsistencyLevel: meta.mode.header(),
		})
		return nil, nil
	}
	if res, err = d.applyTxn(r.Context(), cmd); err != nil {
		return nil, err
	}
	writeJSON(w, r, txnStatus(res), conv.txnResponse(res))
	return nil, nil
}

// txnStatus is 200 for a transaction that succeeded, 409 for one that
// failed.
func txnStatus(res *state.TxnResult) int {
	if len(res.Errors) > 0 {
		return http.StatusConflict
	}
	return http.StatusOK
}

// readTxnBody reads the body within Consul's limit: txn_max_req_len, or
// kv_max_value_size when that is larger.
func (d *Daemon) readTxnBody(r *http.Request) ([]byte, error) {
	limit := int64(max(txnMaxReqLen, d.cfg.KVMaxValueSize))
	if r.ContentLength > limit {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"Request body(%d bytes) too large, max size: %d bytes. See %s.", r.ContentLength, limit, txnLimitURL)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, badRequest("Failed to read request body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf(
			"Request body too large, max size: %d bytes. See %s.", limit, txnLimitURL)}
	}
	return body, nil
}

// txnResponse renders a transaction's outcome: Results when it
// committed, Errors (and null Results) when it did not.
func (c records) txnResponse(res *state.TxnResult) txnResponseJSON {
	if res == nil {
		return txnResponseJSON{}
	}
	if len(res.Errors) > 0 {
		return txnResponseJSON{Errors: txnErrors(res.Errors)}
	}
	var out []txnResultJSON
	for _, it := range res.Results {
		var j txnResultJSON
		switch {
		case it.KV != nil:
			kv := toJSON(it.KV)
			j.KV = &kv
		case it.Node != nil:
			j.Node = c.node(it.Node)
		case it.Service != nil:
			j.Service = c.service(it.Service)
		case it.Check != nil:
			j.Check = c.check(it.Check)
		}
		out = append(out, j)
	}
	return txnResponseJSON{Results: out}
}

func txnErrors(errs []state.TxnError) []txnErrorJSON {
	out := make([]txnErrorJSON, len(errs))
	for i, e := range errs {
		out[i] = txnErrorJSON{OpIndex: e.OpIndex, What: e.What}
	}
	return out
}

// applyTxn commits a transaction through raft as one TxnType entry, waits
// until the store applied it and returns the store's result. Safe for
// concurrent use; blocks until applied, ctx ends or the apply wait runs
// out.
func (d *Daemon) applyTxn(ctx context.Context, cmd *state.TxnRequest) (*state.TxnResult, error) {
	data, err := state.Encode(state.TxnType, cmd)
	if err != nil {
		return nil, fmt.Errorf("encode txn: %w", err)
	}
	idx, err := d.cfg.Raft.Apply(ctx, data)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, d.applyWait)
	defer cancel()
	if err := d.track.wait(wctx, idx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("transaction committed at index %d; request ended before catalogd applied it: %w", idx, ctx.Err())
		}
		return nil, fmt.Errorf("transaction committed at index %d but catalogd has not applied it after %s (applied %d): it will take effect, its result is unknown: %w",
			idx, d.applyWait, d.track.applied(), errBehind)
	}
	res, ok := d.track.take(idx)
	if !ok {
		return nil, fmt.Errorf("transaction committed and applied at index %d, but its result is unknown (catalogd restored a snapshot past it): read the keys to find out", idx)
	}
	switch v := res.(type) {
	case *state.TxnResult:
		switch {
		case v == nil:
		case v.Err != nil:
			return nil, fmt.Errorf("transaction at index %d: %w", idx, v.Err)
		default:
			return v, nil
		}
	case error:
		return nil, fmt.Errorf("transaction at index %d: %w", idx, v)
	}
	return nil, fmt.Errorf("transaction at index %d: unexpected result %T", idx, res)
}

// publishTxn announces what a committed transaction changed: a
// <prefix>.kv event per KV write (locks and unlocks included, as for KV
// commands) and the catalog and health events of its node, service and
// check writes, all with the transaction's raft index. Its session and
// lock events are sessionApplied's. Failed transactions and entries
// replayed at startup publish nothing. It runs on the feed goroutine right
// after the transaction was applied and never blocks.
func (d *Daemon) publishTxn(index uint64, res *state.TxnResult) {
	if res == nil || res.Err != nil || len(res.Errors) > 0 || len(res.Changes) == 0 {
		return
	}
	if d.cfg.Bus == nil || index <= d.replayUntil.Load() {
		return
	}
	subj := bus.Subjects{Prefix: d.cfg.BusPrefix}
	var catalog []state.Change
	for _, c := range res.Changes {
		switch c.Kind {
		case state.ChangeKV:
			ev := bus.KV{Kind: bus.KindKV, Key: c.Key, Index: index}
			switch c.Op {
			case state.OpSet:
				ev.Op = bus.KVOpSet
				// The store shows this transaction's result: nothing after
				// it has been applied yet.
				if _, e, err := d.store.KVGet(nil, c.Key); err == nil && e != nil {
					ev.Flags = e.Flags
				}
			case state.OpDelete:
				ev.Op = bus.KVOpDelete
			case state.OpDeleteTree:
				ev.Op = bus.KVOpDeleteTree
			default:
				continue
			}
			d.cfg.Bus.Publish(subj.KV(), ev)
		case state.ChangeNode, state.ChangeService, state.ChangeCheck:
			catalog = append(catalog, c)
		}
	}
	if len(catalog) > 0 {
		d.publishCatalog(index, &state.CatalogResult{Changes: catalog})
	}
}
