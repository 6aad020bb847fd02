package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Table names, also the keys of the index table.
const (
	tableKVs        = "kvs"
	tableTombstones = "tombstones"
	tableIndex      = "index"
)

// Index names. memdb takes "<index>_prefix" for a prefix search.
const (
	indexID       = "id"
	indexIDPrefix = "id_prefix"
)

// tombstone records that a key, or every key under a prefix, was deleted
// at Index.
type tombstone struct {
	Key   string `codec:"key"`
	Index uint64 `codec:"index"`
}

// indexEntry is a row of the index table: the raft index of the latest
// change to the table named Key.
type indexEntry struct {
	Key   string `codec:"key"`
	Value uint64 `codec:"value"`
}

// schema returns the memdb schema of the store.
func schema() *memdb.DBSchema {
	db := kvSchema()
	for _, t := range catalogTables() {
		db.Tables[t.Name] = t
	}
	for _, t := range sessionTables() {
		db.Tables[t.Name] = t
	}
	return db
}

// kvSchema returns the KV and index tables.
func kvSchema() *memdb.DBSchema {
	return &memdb.DBSchema{
		Tables: map[string]*memdb.TableSchema{
			tableKVs: {
				Name: tableKVs,
				Indexes: map[string]*memdb.IndexSchema{
					indexID: {Name: indexID, Unique: true, Indexer: stringIndexer{kvKey}},
				},
			},
			tableTombstones: {
				Name: tableTombstones,
				Indexes: map[string]*memdb.IndexSchema{
					indexID: {Name: indexID, Unique: true, Indexer: stringIndexer{tombstoneKey}},
				},
			},
			tableIndex: {
				Name: tableIndex,
				Indexes: map[string]*memdb.IndexSchema{
					indexID: {Name: indexID, Unique: true, Indexer: stringIndexer{indexKey}},
				},
			},
		},
	}
}

func kvKey(obj any) (string, bool) {
	e, ok := obj.(*structs.KVEntry)
	if !ok {
		return "", false
	}
	return e.Key, true
}

func tombstoneKey(obj any) (string, bool) {
	t, ok := obj.(*tombstone)
	if !ok {
		return "", false
	}
	return t.Key, true
}

func indexKey(obj any) (string, bool) {
	e, ok := obj.(*indexEntry)
	if !ok {
		return "", false
	}
	return e.Key, true
}

// stringIndexer indexes a unique string field, read by a typed accessor
// instead of reflection, as the raw bytes of the string. No terminator is
// needed: the indexes are unique, so the radix key is the string itself,
// and a prefix search is the bytes of the prefix. An empty string counts as
// missing, so an object with an empty key cannot be inserted.
type stringIndexer struct {
	field func(obj any) (string, bool)
}

// FromObject implements memdb.SingleIndexer.
func (x stringIndexer) FromObject(obj any) (bool, []byte, error) {
	s, ok := x.field(obj)
	if !ok {
		return false, nil, fmt.Errorf("unexpected object type %T", obj)
	}
	if s == "" {
		return false, nil, nil
	}
	return true, []byte(s), nil
}

// FromArgs implements memdb.Indexer.
func (x stringIndexer) FromArgs(args ...any) ([]byte, error) {
	return stringArg(args)
}

// PrefixFromArgs implements memdb.PrefixIndexer.
func (x stringIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	return stringArg(args)
}

func stringArg(args []any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("need one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("argument must be a string, got %T", args[0])
	}
	return []byte(s), nil
}

// maxIndexTxn returns the highest index recorded for the given tables.
func maxIndexTxn(tx *memdb.Txn, tables ...string) uint64 {
	var max uint64
	for _, t := range tables {
		raw, err := tx.First(tableIndex, indexID, t)
		if err != nil || raw == nil {
			continue
		}
		if v := raw.(*indexEntry).Value; v > max {
			max = v
		}
	}
	return max
}

// setIndexTxn records idx as the latest change to table.
func setIndexTxn(tx *memdb.Txn, table string, idx uint64) error {
	if err := tx.Insert(tableIndex, &indexEntry{Key: table, Value: idx}); err != nil {
		return fmt.Errorf("update %s index: %w", table, err)
	}
	return nil
}
