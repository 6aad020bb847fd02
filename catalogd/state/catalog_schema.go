package state

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Catalog tables.
const (
	tableNodes    = "nodes"
	tableServices = "services"
	tableChecks   = "checks"
)

// Catalog index names (memdb indexes, not rows of the index table).
const (
	indexUUID        = "uuid"         // nodes by node ID
	indexMeta        = "meta"         // nodes by one meta pair
	indexServiceName = "service"      // services, checks by service name
	indexKind        = "kind"         // services by kind
	indexStatus      = "status"       // checks by status
	indexNodeService = "node_service" // checks by node and service ID ("" for node checks)
	indexUUIDPrefix  = "uuid_prefix"
)

// Rows of the index table beyond the per-table ones, as Consul names them
// (lower-cased, as Consul's index table is case-insensitive).
const (
	indexServiceExtinction = "service_last_extinction"
	indexNodeExtinction    = "node_last_extinction"
)

// serviceIndexKey names the index-table row holding the raft index of the
// latest change to any instance of the service (or its checks or nodes).
func serviceIndexKey(name string) string { return "service." + lower(name) }

// nodeIndexKey names the row holding the latest change to a node or the
// services on it.
func nodeIndexKey(name string) string { return "node." + lower(name) }

// serviceEntry is a row of the services table: one service instance and
// the name of the node it was registered on (as the request spelled it).
type serviceEntry struct {
	Node    string               `codec:"node"`
	Service *structs.NodeService `codec:"service"`
}

// catalogTables returns the schemas of the catalog tables. Keys are built
// by typed accessors, not reflection. Node names, service IDs and names and
// check IDs compare case-insensitively, as in Consul; statuses and meta do
// not. Every string component of a compound key ends in a NUL, and Apply
// refuses identifiers holding one, so keys cannot collide.
func catalogTables() []*memdb.TableSchema {
	return []*memdb.TableSchema{
		{
			Name: tableNodes,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:   {Name: indexID, Unique: true, Indexer: keyIndexer{obj: nodeKey, args: oneArg}},
				indexUUID: {Name: indexUUID, Unique: true, AllowMissing: true, Indexer: keyIndexer{obj: nodeUUIDKey, args: oneArg, prefix: oneArgPrefix}},
				indexMeta: {Name: indexMeta, AllowMissing: true, Indexer: metaIndexer{}},
			},
		},
		{
			Name: tableServices,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:          {Name: indexID, Unique: true, Indexer: keyIndexer{obj: serviceKey, args: pairArgs, prefix: oneArgTerminated}},
				indexServiceName: {Name: indexServiceName, AllowMissing: true, Indexer: keyIndexer{obj: serviceNameKey, args: oneArgTerminated}},
				indexKind:        {Name: indexKind, Indexer: keyIndexer{obj: serviceKindKey, args: oneArgTerminated}},
			},
		},
		{
			Name: tableChecks,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:          {Name: indexID, Unique: true, Indexer: keyIndexer{obj: checkKey, args: pairArgs, prefix: oneArgTerminated}},
				indexStatus:      {Name: indexStatus, Indexer: keyIndexer{obj: checkStatusKey, args: exactArgTerminated}},
				indexServiceName: {Name: indexServiceName, AllowMissing: true, Indexer: keyIndexer{obj: checkServiceNameKey, args: oneArgTerminated}},
				indexNodeService: {Name: indexNodeService, Indexer: keyIndexer{obj: checkNodeServiceKey, args: pairArgsTerminated}},
			},
		},
	}
}

// lower folds s as the indexes do; it allocates only when s has upper-case
// letters.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return strings.ToLower(s)
		}
	}
	return s
}

// appendLower appends s folded and, if term, a NUL terminator.
func appendLower(b []byte, s string, term bool) []byte {
	b = append(b, lower(s)...)
	if term {
		b = append(b, 0)
	}
	return b
}

// keyIndexer is a memdb single indexer whose keys come from typed
// functions: obj builds an object's key (false when it has none), args an
// exact lookup key, prefix (optional) a prefix lookup key.
type keyIndexer struct {
	obj    func(obj any) ([]byte, bool, error)
	args   func(args []any) ([]byte, error)
	prefix func(args []any) ([]byte, error)
}

// FromObject implements memdb.SingleIndexer.
func (x keyIndexer) FromObject(obj any) (bool, []byte, error) {
	k, ok, err := x.obj(obj)
	return ok, k, err
}

// FromArgs implements memdb.Indexer.
func (x keyIndexer) FromArgs(args ...any) ([]byte, error) { return x.args(args) }

// PrefixFromArgs implements memdb.PrefixIndexer.
func (x keyIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	if x.prefix == nil {
		return nil, fmt.Errorf("index does not support prefix lookups")
	}
	return x.prefix(args)
}

func stringArgs(args []any, n int) ([]string, error) {
	if len(args) != n {
		return nil, fmt.Errorf("need %d arguments, got %d", n, len(args))
	}
	out := make([]string, n)
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("argument %d must be a string, got %T", i, a)
		}
		out[i] = s
	}
	return out, nil
}

// oneArg: a folded string, no terminator (unique single-string keys).
func oneArg(args []any) ([]byte, error) {
	a, err := stringArgs(args, 1)
	if err != nil {
		return nil, err
	}
	return appendLower(nil, a[0], false), nil
}

// oneArgPrefix is oneArg for prefix lookups.
func oneArgPrefix(args []any) ([]byte, error) { return oneArg(args) }

// oneArgTerminated: a folded string and its terminator (non-unique keys,
// and the node part of a compound key).
func oneArgTerminated(args []any) ([]byte, error) {
	a, err := stringArgs(args, 1)
	if err != nil {
		return nil, err
	}
	return appendLower(nil, a[0], true), nil
}

// exactArgTerminated: a string as is (case-sensitive) and its terminator.
func exactArgTerminated(args []any) ([]byte, error) {
	a, err := stringArgs(args, 1)
	if err != nil {
		return nil, err
	}
	return append([]byte(a[0]), 0), nil
}

// pairArgs: two folded strings, the first terminated (node, then ID).
func pairArgs(args []any) ([]byte, error) {
	a, err := stringArgs(args, 2)
	if err != nil {
		return nil, err
	}
	return appendLower(appendLower(nil, a[0], true), a[1], false), nil
}

// pairArgsTerminated: two folded strings, both terminated.
func pairArgsTerminated(args []any) ([]byte, error) {
	a, err := stringArgs(args, 2)
	if err != nil {
		return nil, err
	}
	return appendLower(appendLower(nil, a[0], true), a[1], true), nil
}

func asNode(obj any) (*structs.Node, error) {
	n, ok := obj.(*structs.Node)
	if !ok || n == nil {
		return nil, fmt.Errorf("unexpected object type %T", obj)
	}
	return n, nil
}

func asService(obj any) (*serviceEntry, error) {
	e, ok := obj.(*serviceEntry)
	if !ok || e == nil || e.Service == nil {
		return nil, fmt.Errorf("unexpected object type %T", obj)
	}
	return e, nil
}

func asCheck(obj any) (*structs.HealthCheck, error) {
	c, ok := obj.(*structs.HealthCheck)
	if !ok || c == nil {
		return nil, fmt.Errorf("unexpected object type %T", obj)
	}
	return c, nil
}

func nodeKey(obj any) ([]byte, bool, error) {
	n, err := asNode(obj)
	if err != nil || n.Node == "" {
		return nil, false, err
	}
	return appendLower(nil, n.Node, false), true, nil
}

func nodeUUIDKey(obj any) ([]byte, bool, error) {
	n, err := asNode(obj)
	if err != nil || n.ID == "" {
		return nil, false, err
	}
	return appendLower(nil, n.ID, false), true, nil
}

func serviceKey(obj any) ([]byte, bool, error) {
	e, err := asService(obj)
	if err != nil || e.Node == "" || e.Service.ID == "" {
		return nil, false, err
	}
	return appendLower(appendLower(nil, e.Node, true), e.Service.ID, false), true, nil
}

func serviceNameKey(obj any) ([]byte, bool, error) {
	e, err := asService(obj)
	if err != nil || e.Service.Service == "" {
		return nil, false, err
	}
	return appendLower(nil, e.Service.Service, true), true, nil
}

func serviceKindKey(obj any) ([]byte, bool, error) {
	e, err := asService(obj)
	if err != nil {
		return nil, false, err
	}
	return appendLower(nil, e.Service.Kind, true), true, nil
}

func checkKey(obj any) ([]byte, bool, error) {
	c, err := asCheck(obj)
	if err != nil || c.Node == "" || c.CheckID == "" {
		return nil, false, err
	}
	return appendLower(appendLower(nil, c.Node, true), c.CheckID, false), true, nil
}

func checkStatusKey(obj any) ([]byte, bool, error) {
	c, err := asCheck(obj)
	if err != nil {
		return nil, false, err
	}
	return append([]byte(c.Status), 0), true, nil
}

func checkServiceNameKey(obj any) ([]byte, bool, error) {
	c, err := asCheck(obj)
	if err != nil || c.ServiceName == "" {
		return nil, false, err
	}
	return appendLower(nil, c.ServiceName, true), true, nil
}

func checkNodeServiceKey(obj any) ([]byte, bool, error) {
	c, err := asCheck(obj)
	if err != nil {
		return nil, false, err
	}
	return appendLower(appendLower(nil, c.Node, true), c.ServiceID, true), true, nil
}

// metaIndexer indexes a node under each of its meta pairs, "key\0value\0",
// case-sensitive as in Consul, in sorted order. Lookups take key and value.
type metaIndexer struct{}

// FromObject implements memdb.MultiIndexer.
func (metaIndexer) FromObject(obj any) (bool, [][]byte, error) {
	n, err := asNode(obj)
	if err != nil || len(n.Meta) == 0 {
		return false, nil, err
	}
	keys := sortedKeys(n.Meta)
	vals := make([][]byte, 0, len(keys))
	for _, k := range keys {
		vals = append(vals, metaKey(k, n.Meta[k]))
	}
	return true, vals, nil
}

// FromArgs implements memdb.Indexer.
func (metaIndexer) FromArgs(args ...any) ([]byte, error) {
	a, err := stringArgs(args, 2)
	if err != nil {
		return nil, err
	}
	return metaKey(a[0], a[1]), nil
}

func metaKey(k, v string) []byte {
	b := make([]byte, 0, len(k)+len(v)+2)
	b = append(b, k...)
	b = append(b, 0)
	b = append(b, v...)
	return append(b, 0)
}

// sortedKeys returns m's keys in order, so nothing depends on map order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
