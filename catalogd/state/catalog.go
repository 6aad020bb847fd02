package state

import (
	"errors"
	"fmt"

	"github.com/consort-io/consort/pkg/structs"
)

// CatalogResult is what Apply returns for RegisterType and DeregisterType
// commands; never nil for them.
type CatalogResult struct {
	// Err is a refused or undecodable command; nothing changed. Where
	// Consul has words for the failure these are its words.
	Err error
	// Changes lists what changed, in the order it happened, for bus
	// events. Empty when the command changed nothing (a re-registration of
	// identical data, a deregistration of something absent).
	Changes []Change
}

// Kinds of catalog objects in a Change.
const (
	ChangeNode    = "node"
	ChangeService = "service"
	ChangeCheck   = "check"
)

// Operations in a Change.
const (
	OpRegister   = "register"
	OpUpdate     = "update"
	OpDeregister = "deregister"
)

// Change is one catalog object created, modified or removed by a command.
type Change struct {
	Kind string // ChangeNode, ChangeService or ChangeCheck
	Op   string // OpRegister, OpUpdate or OpDeregister
	Node string
	// ServiceID and ServiceName name the service of a service change; for
	// a check change, the check's service ("" for a node-level check).
	ServiceID, ServiceName string
	CheckID                string
	// OldStatus ("" when registered), NewStatus ("" when deregistered)
	// and the new Output, for check changes.
	OldStatus, NewStatus, Output string
	// Key, Session and LockIndex describe lock and KV changes (Kind
	// ChangeLock, ChangeKV); Session also names the session of a
	// ChangeSession.
	Key       string
	Session   string
	LockIndex uint64
	// Reason says why a session was invalidated (Reason* constants).
	Reason string
}

// ServiceNode is one instance of a service with its node.
type ServiceNode struct {
	Node    *structs.Node
	Service *structs.NodeService
}

// CheckServiceNode is one instance of a service with its node and the
// checks that decide its health: the node's node-level checks, then the
// instance's own, each group in check ID order.
type CheckServiceNode struct {
	Node    *structs.Node
	Service *structs.NodeService
	Checks  []*structs.HealthCheck
}

// Consul's state store errors.
var (
	// ErrMissingNode: a service or check names a node that is not
	// registered.
	ErrMissingNode = errors.New("Missing node registration")
	// ErrMissingService: a check names a service not registered on its
	// node.
	ErrMissingService = errors.New("Missing service registration")
)

// applyRegister applies a RegisterType command body.
func (s *Store) applyRegister(idx uint64, body []byte) *CatalogResult {
	var req structs.RegisterRequest
	if err := decodeBody(body, &req); err != nil {
		return &CatalogResult{Err: fmt.Errorf("apply index %d: %w: decode register request: %v", idx, ErrInvalidCommand, err)}
	}
	g := s.cur.Load()
	tx := g.db.Txn(true)
	defer tx.Abort()
	c := &catalogTxn{tx: tx, idx: idx}
	if err := c.setNow(req.Now); err != nil {
		return &CatalogResult{Err: err}
	}
	if err := c.register(&req); err != nil {
		return &CatalogResult{Err: err}
	}
	tx.Commit()
	s.names.fire(c.created)
	return &CatalogResult{Changes: c.changes}
}

// applyDeregister applies a DeregisterType command body. As in Consul's
// FSM a ServiceID takes precedence over a CheckID, and neither means the
// whole node. Removing something absent is not an error.
func (s *Store) applyDeregister(idx uint64, body []byte) *CatalogResult {
	var req structs.DeregisterRequest
	if err := decodeBody(body, &req); err != nil {
		return &CatalogResult{Err: fmt.Errorf("apply index %d: %w: decode deregister request: %v", idx, ErrInvalidCommand, err)}
	}
	if req.Node == "" {
		return &CatalogResult{Err: errors.New("Must provide node")}
	}
	g := s.cur.Load()
	tx := g.db.Txn(true)
	defer tx.Abort()
	c := &catalogTxn{tx: tx, idx: idx}
	if err := c.setNow(req.Now); err != nil {
		return &CatalogResult{Err: err}
	}
	var err error
	switch {
	case req.ServiceID != "":
		err = c.deleteService(req.Node, req.ServiceID)
	case req.CheckID != "":
		err = c.deleteCheck(req.Node, req.CheckID)
	default:
		err = c.deleteNode(req.Node)
	}
	if err != nil {
		return &CatalogResult{Err: err}
	}
	tx.Commit()
	return &CatalogResult{Changes: c.changes}
}
