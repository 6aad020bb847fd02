package state

import (
	"errors"
	"fmt"

	"github.com/consort-io/consort/pkg/structs"
)

// applyTxn applies a TxnType command body: Consul's Txn.Apply pre-checks,
// then every operation in one memdb write transaction, committed only if
// none failed (Consul's TxnRW).
func (s *Store) applyTxn(idx uint64, body []byte) *TxnResult {
	var req TxnRequest
	if err := decodeBody(body, &req); err != nil {
		return &TxnResult{Index: idx, Err: fmt.Errorf("apply index %d: %w: decode txn request: %v", idx, ErrInvalidCommand, err)}
	}
	if n := len(req.Ops); n > MaxTxnOps {
		return &TxnResult{Index: idx, Errors: []TxnError{{What: tooManyOps(n)}}}
	}
	tx := s.cur.Load().db.Txn(true)
	defer tx.Abort()
	c := &catalogTxn{tx: tx, idx: idx}
	if err := c.setNow(req.Now); err != nil {
		return &TxnResult{Index: idx, Errors: []TxnError{{What: err.Error()}}}
	}
	if errs := c.txnPreCheck(req.Ops, true); len(errs) > 0 {
		return &TxnResult{Index: idx, Errors: errs}
	}
	results, errs := c.txnDispatch(req.Ops, true)
	if len(errs) > 0 {
		return &TxnResult{Index: idx, Errors: errs}
	}
	tx.Commit()
	s.names.fire(c.created)
	return &TxnResult{Index: idx, Results: results, Changes: c.changes}
}

// TxnRead runs a read-only transaction on the current state, without
// Apply, for ?stale and read-index reads (Consul's Txn.Read and TxnRO).
// Write operations are refused with an error each; ReadOnly tells whether
// a request qualifies. The result's Index is the state's LastIndex. It
// does not block on Apply for longer than one command.
func (s *Store) TxnRead(req *TxnRequest) *TxnResult {
	db, last := s.view()
	res := &TxnResult{Index: atLeastOne(last)}
	if n := len(req.Ops); n > MaxTxnOps {
		res.Errors = []TxnError{{What: tooManyOps(n)}}
		return res
	}
	tx := db.Txn(false)
	defer tx.Abort()
	c := &catalogTxn{tx: tx}
	// The pre-checks may fill defaults; work on a copy of the operations.
	ops := make([]TxnOp, len(req.Ops))
	for i, op := range req.Ops {
		ops[i] = op.clone()
	}
	if errs := c.txnPreCheck(ops, false); len(errs) > 0 {
		res.Errors = errs
		return res
	}
	res.Results, res.Errors = c.txnDispatch(ops, false)
	if len(res.Errors) > 0 {
		res.Results = nil
	}
	return res
}

// ReadOnly reports whether every operation of the request only reads, so
// that it may run through TxnRead (Consul's HTTP layer sends such a
// transaction to Txn.Read).
func (r *TxnRequest) ReadOnly() bool {
	for i := range r.Ops {
		if r.Ops[i].isWrite() {
			return false
		}
	}
	return true
}

func (op *TxnOp) isWrite() bool {
	switch {
	case op.KV != nil:
		switch op.KV.Verb {
		case KVGet, KVGetOrEmpty, KVGetTree, KVCheckSession, KVCheckIndex, KVCheckNotExists:
			return false
		}
	case op.Node != nil:
		return op.Node.Verb != TxnGet
	case op.Service != nil:
		return op.Service.Verb != TxnGet
	case op.Check != nil:
		return op.Check.Verb != TxnGet
	}
	return true
}

// clone copies the operation's top-level structs so defaults can be filled
// in without touching the caller's request.
func (op TxnOp) clone() TxnOp {
	if op.KV != nil {
		kv := *op.KV
		op.KV = &kv
	}
	if op.Node != nil {
		n := *op.Node
		op.Node = &n
	}
	if op.Service != nil {
		svc := *op.Service
		op.Service = &svc
	}
	if op.Check != nil {
		chk := *op.Check
		op.Check = &chk
	}
	return op
}

func tooManyOps(n int) string {
	return fmt.Sprintf("Transaction contains too many operations (%d > %d)", n, MaxTxnOps)
}

// txnPreCheck is Consul's Txn.preCheck without ACLs: a KV operation needs
// a key (but delete-tree), a lock may not break a lock-delay, node,
// service and check verbs must be known and their writes pass the
// endpoint's checks; a check without an ID takes its name. All failures
// are reported. Lock-delays are checked only with write set (a read
// transaction refuses the lock anyway).
func (c *catalogTxn) txnPreCheck(ops []TxnOp, write bool) []TxnError {
	var errs []TxnError
	fail := func(i int, err error) { errs = append(errs, TxnError{OpIndex: i, What: err.Error()}) }
	for i := range ops {
		op := &ops[i]
		switch {
		case op.KV != nil:
			e := &op.KV.Entry
			if e.Key == "" && op.KV.Verb != KVDeleteTree {
				fail(i, errors.New("Must provide key"))
				continue
			}
			if op.KV.Verb == KVLock && write {
				delayed, err := c.lockDelayed(e.Key)
				if err != nil {
					fail(i, err)
				} else if delayed {
					fail(i, fmt.Errorf("failed to lock key %q due to lock delay", e.Key))
				}
			}
		case op.Node != nil:
			switch op.Node.Verb {
			case TxnGet:
			case TxnSet, TxnCAS, TxnDelete, TxnDeleteCAS:
				if err := txnNodePreApply(&op.Node.Node); err != nil {
					fail(i, err)
				}
			default:
				fail(i, fmt.Errorf("unknown node operation: %s", op.Node.Verb))
			}
		case op.Service != nil:
			switch op.Service.Verb {
			case TxnGet:
			case TxnSet, TxnCAS, TxnDelete, TxnDeleteCAS:
				if err := txnServicePreApply(op.Service); err != nil {
					fail(i, err)
				}
			default:
				fail(i, fmt.Errorf("unknown service operation: %s", op.Service.Verb))
			}
		case op.Check != nil:
			switch op.Check.Verb {
			case TxnGet:
			case TxnSet, TxnCAS, TxnDelete, TxnDeleteCAS:
				hc := &op.Check.Check
				if hc.CheckID == "" && hc.Name != "" {
					hc.CheckID = hc.Name
				}
			default:
				fail(i, fmt.Errorf("unknown check operation: %s", op.Check.Verb))
			}
		default:
			fail(i, errors.New("unknown operation type"))
		}
	}
	return errs
}

// txnNodePreApply is Consul's nodePreApply, plus the NUL guard of the
// catalog's keys.
func txnNodePreApply(n *structs.Node) error {
	if n.Node == "" {
		return errors.New("Must provide node")
	}
	if n.ID != "" {
		if err := parseUUID(n.ID); err != nil {
			return fmt.Errorf("Bad node ID: %v", err)
		}
	}
	return noNUL("node name", n.Node)
}

// txnServicePreApply is Consul's servicePreApplyValidate for a typical
// service: the ID defaults to the name, an ID needs a name, and the
// address may not be a wildcard.
func txnServicePreApply(op *TxnServiceOp) error {
	svc := &op.Service
	if svc.ID == "" && svc.Service != "" {
		svc.ID = svc.Service
	}
	if svc.ID != "" && svc.Service == "" {
		return errors.New("Must provide service name with ID")
	}
	if isAnyAddr(svc.Address) {
		return errors.New("Invalid service address")
	}
	for _, v := range []struct{ what, s string }{{"node name", op.Node}, {"service ID", svc.ID}, {"service name", svc.Service}} {
		if err := noNUL(v.what, v.s); err != nil {
			return err
		}
	}
	return nil
}

// txnDispatch is Consul's txnDispatch: it runs every operation in order
// and collects the results, or, if any failed, every failure and no
// results. With write false, a write operation fails instead of running.
func (c *catalogTxn) txnDispatch(ops []TxnOp, write bool) ([]TxnResultItem, []TxnError) {
	var (
		results []TxnResultItem
		errs    []TxnError
	)
	for i := range ops {
		op := &ops[i]
		var (
			ret []TxnResultItem
			err error
		)
		switch {
		case !write && op.isWrite():
			err = errors.New("cannot run a write operation in a read-only transaction")
		case op.KV != nil:
			ret, err = c.txnKV(op.KV)
		case op.Node != nil:
			ret, err = c.txnNode(op.Node)
		case op.Service != nil:
			ret, err = c.txnService(op.Service)
		case op.Check != nil:
			ret, err = c.txnCheck(op.Check)
		default:
			err = errors.New("no operation specified")
		}
		results = append(results, ret...)
		if err != nil {
			errs = append(errs, TxnError{OpIndex: i, What: err.Error()})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return results, nil
}
