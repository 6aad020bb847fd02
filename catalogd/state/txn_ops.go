package state

import (
	"errors"
	"fmt"

	"github.com/consort-io/consort/pkg/structs"
)

// txnKV is Consul's txnKVS. Writes answer the entry without its value,
// gets with it; deletes and check-not-exists answer nothing.
func (c *catalogTxn) txnKV(op *TxnKVOp) ([]TxnResultItem, error) {
	e := &op.Entry
	if len(e.Value) == 0 {
		e.Value = nil
	}
	var (
		entry *structs.KVEntry
		ok    bool
		err   error
	)
	switch op.Verb {
	case KVSet:
		entry = e
		if err = kvsSetTxn(c.tx, c.idx, e, false); err == nil {
			c.noteKV(OpSet, e.Key)
		}
	case KVCAS:
		entry = e
		ok, err = kvsSetCASTxn(c.tx, c.idx, e)
		if err == nil && !ok {
			err = fmt.Errorf("failed to set key %q, index is stale", e.Key)
		}
		if err == nil {
			c.noteKV(OpSet, e.Key)
		}
	case KVLock:
		entry = e
		ok, err = c.kvLock(e)
		if err == nil && !ok {
			err = fmt.Errorf("failed to lock key %q, lock is already held", e.Key)
		}
		if err == nil {
			c.noteKV(OpSet, e.Key)
		}
	case KVUnlock:
		entry = e
		ok, err = c.kvUnlock(e)
		if err == nil && !ok {
			err = fmt.Errorf("failed to unlock key %q, lock isn't held, or is held by another session", e.Key)
		}
		if err == nil {
			c.noteKV(OpSet, e.Key)
		}
	case KVDelete:
		if err = c.kvDelete(e.Key); err == nil {
			c.noteKV(OpDelete, e.Key)
		}
	case KVDeleteCAS:
		ok, err = c.kvDeleteCAS(e.ModifyIndex, e.Key)
		if err == nil && !ok {
			err = fmt.Errorf("failed to delete key %q, index is stale", e.Key)
		}
		if err == nil {
			c.noteKV(OpDelete, e.Key)
		}
	case KVDeleteTree:
		if err = c.kvDeleteTree(e.Key); err == nil {
			c.noteKV(OpDeleteTree, e.Key)
		}
	case KVGet:
		entry, err = getKVTxn(c.tx, e.Key)
		if err == nil && entry == nil {
			err = fmt.Errorf("key %q doesn't exist", e.Key)
		}
	case KVGetOrEmpty:
		entry, err = getKVTxn(c.tx, e.Key)
		if err == nil && entry == nil {
			// Consul answers the request's own entry, without a value.
			entry = e
		}
	case KVGetTree:
		var entries []*structs.KVEntry
		if _, entries, err = kvsListTxn(c.tx, nil, e.Key); err != nil {
			return nil, fmt.Errorf("failed kvs lookup: %s", err)
		}
		out := make([]TxnResultItem, 0, len(entries))
		for _, kv := range entries {
			cp := *kv
			out = append(out, TxnResultItem{KV: &cp})
		}
		return out, nil
	case KVCheckSession:
		entry, err = getKVTxn(c.tx, e.Key)
		switch {
		case err != nil:
		case entry == nil:
			err = fmt.Errorf("failed to check session, key %q doesn't exist", e.Key)
		case entry.Session != e.Session:
			err = fmt.Errorf("failed session check for key %q, current session %q != %q", e.Key, entry.Session, e.Session)
		}
	case KVCheckIndex:
		entry, err = getKVTxn(c.tx, e.Key)
		switch {
		case err != nil:
		case entry == nil:
			err = fmt.Errorf("failed to check index, key %q doesn't exist", e.Key)
		case entry.ModifyIndex != e.ModifyIndex:
			err = fmt.Errorf("failed index check for key %q, current modify index %d != %d", e.Key, entry.ModifyIndex, e.ModifyIndex)
		}
	case KVCheckNotExists:
		var existing *structs.KVEntry
		existing, err = getKVTxn(c.tx, e.Key)
		if err == nil && existing != nil {
			err = fmt.Errorf("key %q exists", e.Key)
		}
	default:
		err = fmt.Errorf("unknown KV verb %q", op.Verb)
	}
	if err != nil || entry == nil {
		return nil, err
	}
	cp := *entry
	if op.Verb != KVGet && op.Verb != KVGetOrEmpty {
		cp.Value = nil
	}
	return []TxnResultItem{{KV: &cp}}, nil
}

// noteKV records a KV write of a transaction for bus events.
func (c *catalogTxn) noteKV(op, key string) {
	c.changes = append(c.changes, Change{Kind: ChangeKV, Op: op, Key: key})
}

// txnNode is Consul's txnNode. A node is found by ID when the operation
// gives one, else by name.
func (c *catalogTxn) txnNode(op *TxnNodeOp) ([]TxnResultItem, error) {
	n := &op.Node
	get := func() (*structs.Node, error) {
		if n.ID != "" {
			return getNodeByIDTxn(c.tx, n.ID)
		}
		return getNodeTxn(c.tx, n.Node)
	}
	var (
		entry *structs.Node
		err   error
	)
	switch op.Verb {
	case TxnGet:
		entry, err = get()
		if err == nil && entry == nil {
			err = fmt.Errorf("node %q doesn't exist", n.Node)
		}
	case TxnSet:
		if err = c.ensureNode(n); err == nil {
			entry, err = get()
		}
	case TxnCAS:
		var existing *structs.Node
		if existing, err = getNodeTxn(c.tx, n.Node); err != nil {
			break
		}
		if !casMatches(n.ModifyIndex, existing != nil, modifyIndexOf(existing)) {
			err = fmt.Errorf("failed to set node %q, index is stale", n.Node)
			break
		}
		if err = c.ensureNode(n); err == nil {
			entry, err = get()
		}
	case TxnDelete:
		err = c.deleteNode(n.Node)
	case TxnDeleteCAS:
		var existing *structs.Node
		if existing, err = getNodeTxn(c.tx, n.Node); err != nil {
			break
		}
		if existing == nil || existing.ModifyIndex != n.ModifyIndex {
			err = fmt.Errorf("failed to delete node %q, index is stale", n.Node)
			break
		}
		err = c.deleteNode(n.Node)
	default:
		err = fmt.Errorf("unknown Node verb %q", op.Verb)
	}
	if err != nil || entry == nil {
		return nil, err
	}
	cp := *entry
	return []TxnResultItem{{Node: &cp}}, nil
}

// casMatches is the compare of Consul's *CASTxn functions: 0 means "must
// not exist", anything else the current ModifyIndex.
func casMatches(want uint64, exists bool, current uint64) bool {
	if want == 0 {
		return !exists
	}
	return exists && want == current
}

func modifyIndexOf(n *structs.Node) uint64 {
	if n == nil {
		return 0
	}
	return n.ModifyIndex
}

// txnService is Consul's txnService.
func (c *catalogTxn) txnService(op *TxnServiceOp) ([]TxnResultItem, error) {
	svc := &op.Service
	answer := func() ([]TxnResultItem, error) {
		e, err := getServiceTxn(c.tx, op.Node, svc.ID)
		if err != nil || e == nil {
			return nil, err
		}
		cp := *e.Service
		return []TxnResultItem{{Service: &cp}}, nil
	}
	switch op.Verb {
	case TxnGet:
		e, err := getServiceTxn(c.tx, op.Node, svc.ID)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, fmt.Errorf("service %q on node %q doesn't exist", svc.ID, op.Node)
		}
		cp := *e.Service
		return []TxnResultItem{{Service: &cp}}, nil
	case TxnSet:
		if err := c.ensureService(op.Node, svc); err != nil {
			return nil, err
		}
		return answer()
	case TxnCAS:
		e, err := getServiceTxn(c.tx, op.Node, svc.ID)
		if err != nil {
			return nil, err
		}
		var cur uint64
		if e != nil {
			cur = e.Service.ModifyIndex
		}
		if !casMatches(svc.ModifyIndex, e != nil, cur) {
			return nil, fmt.Errorf("failed to set service %q on node %q, index is stale", svc.ID, op.Node)
		}
		if err := c.ensureService(op.Node, svc); err != nil {
			return nil, err
		}
		return answer()
	case TxnDelete:
		return nil, c.deleteService(op.Node, svc.ID)
	case TxnDeleteCAS:
		e, err := getServiceTxn(c.tx, op.Node, svc.ID)
		if err != nil {
			return nil, fmt.Errorf("service lookup failed: %s", err)
		}
		if e == nil || e.Service.ModifyIndex != svc.ModifyIndex {
			return nil, fmt.Errorf("failed to delete service %q on node %q, index is stale", svc.ID, op.Node)
		}
		return nil, c.deleteService(op.Node, svc.ID)
	default:
		return nil, fmt.Errorf("unknown Service verb %q", op.Verb)
	}
}

// txnCheck is Consul's txnCheck.
func (c *catalogTxn) txnCheck(op *TxnCheckOp) ([]TxnResultItem, error) {
	hc := &op.Check
	answer := func() ([]TxnResultItem, error) {
		got, err := getCheckTxn(c.tx, hc.Node, hc.CheckID)
		if err != nil || got == nil {
			return nil, err
		}
		cp := *got
		return []TxnResultItem{{Check: &cp}}, nil
	}
	switch op.Verb {
	case TxnGet:
		got, err := getCheckTxn(c.tx, hc.Node, hc.CheckID)
		if err != nil {
			return nil, err
		}
		if got == nil {
			return nil, fmt.Errorf("check %q on node %q doesn't exist", hc.CheckID, hc.Node)
		}
		cp := *got
		return []TxnResultItem{{Check: &cp}}, nil
	case TxnSet:
		if err := c.txnEnsureCheck(hc); err != nil {
			return nil, err
		}
		return answer()
	case TxnCAS:
		existing, err := getCheckTxn(c.tx, hc.Node, hc.CheckID)
		if err != nil {
			return nil, fmt.Errorf("failed health check lookup: %s", err)
		}
		var cur uint64
		if existing != nil {
			cur = existing.ModifyIndex
		}
		if !casMatches(hc.ModifyIndex, existing != nil, cur) {
			return nil, fmt.Errorf("failed to set check %q on node %q, index is stale", hc.CheckID, hc.Node)
		}
		if err := c.txnEnsureCheck(hc); err != nil {
			return nil, err
		}
		return answer()
	case TxnDelete:
		return nil, c.deleteCheck(hc.Node, hc.CheckID)
	case TxnDeleteCAS:
		existing, err := getCheckTxn(c.tx, hc.Node, hc.CheckID)
		if err != nil {
			return nil, fmt.Errorf("check lookup failed: %s", err)
		}
		if existing == nil || existing.ModifyIndex != hc.ModifyIndex {
			return nil, fmt.Errorf("failed to delete check %q on node %q, index is stale", hc.CheckID, hc.Node)
		}
		return nil, c.deleteCheck(hc.Node, hc.CheckID)
	default:
		return nil, fmt.Errorf("unknown Check verb %q", op.Verb)
	}
}

// txnEnsureCheck writes a check as a registration would: its type from
// its definition, a normalized definition, no NUL in its identifiers.
func (c *catalogTxn) txnEnsureCheck(hc *structs.HealthCheck) error {
	if hc.CheckID == "" {
		return errors.New("missing check ID")
	}
	for _, v := range []struct{ what, s string }{{"node name", hc.Node}, {"check ID", hc.CheckID}, {"service ID", hc.ServiceID}} {
		if err := noNUL(v.what, v.s); err != nil {
			return err
		}
	}
	if hc.Type == "" {
		hc.Type = checkType(&hc.Definition)
	}
	normalizeDefinition(&hc.Definition)
	return c.ensureCheck(hc)
}
