package state

import (
	"github.com/consort-io/consort/pkg/structs"
)

// MaxTxnOps is the most operations one transaction may hold (Consul 1.22's
// limit). Apply refuses more; the HTTP layer answers 413 before that.
const MaxTxnOps = 128

// KV verbs only transactions have (Consul's api.KVOp values).
const (
	KVGet            KVOp = "get"
	KVGetOrEmpty     KVOp = "get-or-empty"
	KVGetTree        KVOp = "get-tree"
	KVCheckSession   KVOp = "check-session"
	KVCheckIndex     KVOp = "check-index"
	KVCheckNotExists KVOp = "check-not-exists"
)

// TxnVerb names a node, service or check operation in a transaction
// (Consul's api.NodeOp, ServiceOp and CheckOp values).
type TxnVerb string

// Node, service and check verbs.
const (
	TxnGet       TxnVerb = "get"
	TxnSet       TxnVerb = "set"
	TxnCAS       TxnVerb = "cas"
	TxnDelete    TxnVerb = "delete"
	TxnDeleteCAS TxnVerb = "delete-cas"
)

// TxnRequest is the body of a TxnType command, and the argument of
// TxnRead for read-only transactions.
type TxnRequest struct {
	Ops []TxnOp `codec:"ops"`
	// Now is the writer's clock in unix nanoseconds, for lock-delay checks
	// of lock operations.
	Now int64 `codec:"now"`
}

// TxnOp is one operation: exactly one of its fields is set.
type TxnOp struct {
	KV      *TxnKVOp      `codec:"kv,omitempty"`
	Node    *TxnNodeOp    `codec:"node,omitempty"`
	Service *TxnServiceOp `codec:"service,omitempty"`
	Check   *TxnCheckOp   `codec:"check,omitempty"`
}

// TxnKVOp is a KV operation. Entry.ModifyIndex is the expected index of
// cas, delete-cas and check-index; Entry.Session names the session of
// lock, unlock and check-session; Entry.Key is the prefix of get-tree and
// delete-tree.
type TxnKVOp struct {
	Verb  KVOp            `codec:"verb"`
	Entry structs.KVEntry `codec:"entry"`
}

// TxnNodeOp is a node operation; Node.ModifyIndex is the expected index
// of cas and delete-cas.
type TxnNodeOp struct {
	Verb TxnVerb      `codec:"verb"`
	Node structs.Node `codec:"node"`
}

// TxnServiceOp is a service operation on Node; Service.ModifyIndex is the
// expected index of cas and delete-cas.
type TxnServiceOp struct {
	Verb    TxnVerb             `codec:"verb"`
	Node    string              `codec:"node"`
	Service structs.NodeService `codec:"service"`
}

// TxnCheckOp is a check operation; Check.ModifyIndex is the expected index
// of cas and delete-cas.
type TxnCheckOp struct {
	Verb  TxnVerb             `codec:"verb"`
	Check structs.HealthCheck `codec:"check"`
}

// TxnResult is what Apply returns for a TxnType command (never nil for
// one) and what TxnRead returns. Either Errors is empty and Results holds
// one item per operation that yields one, in order (as Consul: writes and
// gets yield one, checks and deletes none), or Errors is set, nothing
// changed and Results is empty.
type TxnResult struct {
	// Err is a command that could not be decoded; nothing changed.
	Err error
	// Index is the raft index the transaction applied at, or for TxnRead
	// the index of the state it read.
	Index   uint64
	Results []TxnResultItem
	Errors  []TxnError
	// Changes lists what a committed transaction changed, in order, for
	// bus events: KV sets and deletes (Kind ChangeKV), locks, catalog
	// changes and session invalidations they caused.
	Changes []Change
}

// TxnResultItem is the result of one operation: exactly one field is set.
// Objects are copies owned by the caller.
type TxnResultItem struct {
	KV      *structs.KVEntry
	Node    *structs.Node
	Service *structs.NodeService
	Check   *structs.HealthCheck
}

// TxnError names the failed operation by its position (from 0) and says
// why, in Consul's words.
type TxnError struct {
	OpIndex int
	What    string
}

// Error implements error.
func (e TxnError) Error() string { return "op " + itoa(e.OpIndex) + ": " + e.What }
