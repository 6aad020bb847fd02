package state

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// applyKVS applies one KV operation in one write transaction and returns
// its result (bool or error). Only a change commits; a refused CAS, lock
// or unlock aborts.
func (s *Store) applyKVS(idx uint64, req *KVSRequest) any {
	e := &req.Entry
	if e.Key == "" && req.Op != KVDeleteTree {
		return fmt.Errorf("kv %s at index %d: %w: missing key", req.Op, idx, ErrInvalidCommand)
	}
	if len(e.Value) == 0 {
		// Consul does not tell an empty value from none: both read as null.
		e.Value = nil
	}

	tx := s.cur.Load().db.Txn(true)
	defer tx.Abort()
	c := &catalogTxn{tx: tx, idx: idx}

	var (
		ok  = true
		err error
	)
	switch req.Op {
	case KVSet:
		err = kvsSetTxn(tx, idx, e, false)
	case KVCAS:
		ok, err = kvsSetCASTxn(tx, idx, e)
	case KVDelete:
		err = c.kvDelete(e.Key)
	case KVDeleteCAS:
		ok, err = c.kvDeleteCAS(e.ModifyIndex, e.Key)
	case KVDeleteTree:
		err = c.kvDeleteTree(e.Key)
	case KVLock:
		// Consul checks lock-delay before the session, on the leader.
		var delayed bool
		if err = c.setNow(req.Now); err == nil {
			delayed, err = c.lockDelayed(e.Key)
		}
		if err == nil && delayed {
			return false
		}
		if err == nil {
			ok, err = c.kvLock(e)
		}
		if err != nil {
			// Consul's words, unwrapped: they reach the client as is.
			return err
		}
	case KVUnlock:
		if ok, err = c.kvUnlock(e); err != nil {
			return err
		}
	default:
		return fmt.Errorf("kv at index %d: %w: invalid kvs operation %q", idx, ErrInvalidCommand, req.Op)
	}
	if err != nil {
		return fmt.Errorf("kv %s %q at index %d: %w", req.Op, e.Key, idx, err)
	}
	if ok {
		tx.Commit()
		s.lockIndex, s.lockChanges = idx, c.changes
	}
	return ok
}

// kvsSetTxn inserts or updates entry at idx. It keeps an existing key's
// CreateIndex and, unless updateSession (lock, unlock, release), its
// Session (a new key gets no session); LockIndex, Flags and Value come from
// entry (Consul's kvsSetTxn). An update that changes nothing writes nothing, so
// ModifyIndex and the watchers stay put. The stored object is entry itself,
// which the caller must not touch afterwards.
func kvsSetTxn(tx *memdb.Txn, idx uint64, entry *structs.KVEntry, updateSession bool) error {
	raw, err := tx.First(tableKVs, indexID, entry.Key)
	if err != nil {
		return fmt.Errorf("kvs lookup: %w", err)
	}
	existing, _ := raw.(*structs.KVEntry)

	if existing != nil {
		entry.CreateIndex = existing.CreateIndex
	} else {
		entry.CreateIndex = idx
	}
	if !updateSession {
		if existing != nil {
			entry.Session = existing.Session
		} else {
			entry.Session = ""
		}
	}
	if existing != nil && kvEqual(existing, entry) {
		entry.ModifyIndex = existing.ModifyIndex
		return nil
	}
	entry.ModifyIndex = idx

	if err := tx.Insert(tableKVs, entry); err != nil {
		return fmt.Errorf("kvs insert: %w", err)
	}
	return setIndexTxn(tx, tableKVs, idx)
}

// kvEqual reports whether two entries hold the same data, indexes aside
// (Consul's DirEntry.Equal).
func kvEqual(a, b *structs.KVEntry) bool {
	return a.LockIndex == b.LockIndex &&
		a.Key == b.Key &&
		a.Flags == b.Flags &&
		bytes.Equal(a.Value, b.Value) &&
		a.Session == b.Session
}

// kvsSetCASTxn sets entry if the key's ModifyIndex equals
// entry.ModifyIndex, 0 meaning the key must not exist. It reports whether
// it did.
func kvsSetCASTxn(tx *memdb.Txn, idx uint64, entry *structs.KVEntry) (bool, error) {
	raw, err := tx.First(tableKVs, indexID, entry.Key)
	if err != nil {
		return false, fmt.Errorf("kvs lookup: %w", err)
	}
	existing, _ := raw.(*structs.KVEntry)
	switch {
	case entry.ModifyIndex == 0 && existing != nil:
		return false, nil
	case entry.ModifyIndex != 0 && existing == nil:
		return false, nil
	case existing != nil && entry.ModifyIndex != existing.ModifyIndex:
		return false, nil
	}
	if err := kvsSetTxn(tx, idx, entry, false); err != nil {
		return false, err
	}
	return true, nil
}

// kvsDeleteTxn deletes key if present, leaving a tombstone at idx.
func kvsDeleteTxn(tx *memdb.Txn, idx uint64, key string) error {
	raw, err := tx.First(tableKVs, indexID, key)
	if err != nil {
		return fmt.Errorf("kvs lookup: %w", err)
	}
	if raw == nil {
		return nil
	}
	if err := insertTombstoneTxn(tx, key, idx); err != nil {
		return err
	}
	if err := tx.Delete(tableKVs, raw); err != nil {
		return fmt.Errorf("kvs delete: %w", err)
	}
	return setIndexTxn(tx, tableKVs, idx)
}

// kvsDeleteCASTxn deletes key if its ModifyIndex equals cidx. An absent key
// counts as success (Consul answers true: there is nothing to delete).
func kvsDeleteCASTxn(tx *memdb.Txn, idx, cidx uint64, key string) (bool, error) {
	raw, err := tx.First(tableKVs, indexID, key)
	if err != nil {
		return false, fmt.Errorf("kvs lookup: %w", err)
	}
	existing, _ := raw.(*structs.KVEntry)
	if existing == nil {
		return true, nil
	}
	if existing.ModifyIndex != cidx {
		return false, nil
	}
	if err := kvsDeleteTxn(tx, idx, key); err != nil {
		return false, err
	}
	return true, nil
}

// kvsDeleteTreeTxn deletes every key under prefix. Like Consul it leaves a
// single tombstone, for the prefix itself, and none for the empty prefix:
// readers of the whole tree then see the tables' index.
func kvsDeleteTreeTxn(tx *memdb.Txn, idx uint64, prefix string) error {
	deleted, err := tx.DeletePrefix(tableKVs, indexIDPrefix, prefix)
	if err != nil {
		return fmt.Errorf("kvs delete prefix: %w", err)
	}
	if !deleted {
		return nil
	}
	if prefix != "" {
		if err := insertTombstoneTxn(tx, prefix, idx); err != nil {
			return err
		}
	}
	return setIndexTxn(tx, tableKVs, idx)
}

// insertTombstoneTxn records that key (or the tree under it) was deleted
// at idx, replacing an older tombstone for the same key.
func insertTombstoneTxn(tx *memdb.Txn, key string, idx uint64) error {
	if err := tx.Insert(tableTombstones, &tombstone{Key: key, Index: idx}); err != nil {
		return fmt.Errorf("tombstone insert: %w", err)
	}
	return setIndexTxn(tx, tableTombstones, idx)
}

// KVGet returns the entry for key, or nil when absent. The index is the
// entry's ModifyIndex; for an absent key it is the highest index of the kvs
// and tombstones tables (at least 1). ws (may be nil) gets the key's watch
// channel: for an existing key it fires only when that key changes; for an
// absent key, when a key is written near it in the tree, including the key
// itself. The entry is shared: do not modify it.
func (s *Store) KVGet(ws memdb.WatchSet, key string) (uint64, *structs.KVEntry, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()

	if key == "" {
		// memdb would answer the first key of the table for an empty one.
		return atLeastOne(maxIndexTxn(tx, tableKVs, tableTombstones)), nil, nil
	}
	watch, raw, err := tx.FirstWatch(tableKVs, indexID, key)
	if err != nil {
		return 0, nil, fmt.Errorf("kv get %q: %w", key, err)
	}
	ws.Add(watch)
	if e, ok := raw.(*structs.KVEntry); ok {
		return atLeastOne(e.ModifyIndex), e, nil
	}
	return atLeastOne(maxIndexTxn(tx, tableKVs, tableTombstones)), nil, nil
}

// KVList returns every entry whose key starts with prefix, in key order,
// and Consul's index for it: the highest ModifyIndex among them and among
// tombstones under prefix, or, when that is 0 or prefix is empty, the
// highest index of the kvs and tombstones tables; at least 1. ws (may be
// nil) fires on any write or delete under prefix. Entries are shared: do
// not modify them.
func (s *Store) KVList(ws memdb.WatchSet, prefix string) (uint64, []*structs.KVEntry, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()
	idx, entries, err := kvsListTxn(tx, ws, prefix)
	if err != nil {
		return 0, nil, fmt.Errorf("kv list %q: %w", prefix, err)
	}
	return idx, entries, nil
}

func kvsListTxn(tx *memdb.Txn, ws memdb.WatchSet, prefix string) (uint64, []*structs.KVEntry, error) {
	it, err := tx.Get(tableKVs, indexIDPrefix, prefix)
	if err != nil {
		return 0, nil, err
	}
	ws.Add(it.WatchCh())

	var (
		entries []*structs.KVEntry
		lindex  uint64
	)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*structs.KVEntry)
		entries = append(entries, e)
		if e.ModifyIndex > lindex {
			lindex = e.ModifyIndex
		}
	}

	tableIdx := maxIndexTxn(tx, tableKVs, tableTombstones)
	if prefix == "" {
		return atLeastOne(tableIdx), entries, nil
	}
	stones, err := tx.Get(tableTombstones, indexIDPrefix, prefix)
	if err != nil {
		return 0, nil, err
	}
	for raw := stones.Next(); raw != nil; raw = stones.Next() {
		if t := raw.(*tombstone); t.Index > lindex {
			lindex = t.Index
		}
	}
	if lindex == 0 {
		lindex = tableIdx
	}
	return atLeastOne(lindex), entries, nil
}

// KVKeys returns the keys starting with prefix, in order, with KVList's
// index and watch. With a separator, each key is cut after the first
// separator following the prefix and repeats are dropped (Consul's
// ?keys&separator= rollup: "a/b/c" under "a/" with "/" lists "a/b/").
func (s *Store) KVKeys(ws memdb.WatchSet, prefix, separator string) (uint64, []string, error) {
	tx := s.readTxn(ws)
	defer tx.Abort()
	idx, entries, err := kvsListTxn(tx, ws, prefix)
	if err != nil {
		return 0, nil, fmt.Errorf("kv keys %q: %w", prefix, err)
	}
	if len(entries) == 0 {
		return idx, nil, nil
	}
	keys := make([]string, 0, len(entries))
	for _, e := range entries {
		key := e.Key
		if separator != "" {
			if i := strings.Index(key[len(prefix):], separator); i >= 0 {
				key = key[:len(prefix)+i+len(separator)]
			}
		}
		// Entries come in key order, so all keys rolled up to the same
		// string are adjacent and already sorted.
		if n := len(keys); n > 0 && keys[n-1] == key {
			continue
		}
		keys = append(keys, key)
	}
	return idx, keys, nil
}
