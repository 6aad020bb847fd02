package state

import (
	"strconv"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// Dump renders the whole state as canonical text, one line per row in key
// order: the last applied index, the index table, KV entries, tombstones,
// nodes, services, checks, sessions, session check mappings, renew times
// and lock-delays. Two stores that applied the same commands, or one restored
// from the other's snapshot, dump identical text. Meant for tests and
// debugging; it walks every row.
func (s *Store) Dump() string {
	db, last := s.view()
	tx := db.Txn(false)
	defer tx.Abort()

	var b strings.Builder
	b.WriteString("last-index ")
	b.WriteString(strconv.FormatUint(last, 10))
	b.WriteByte('\n')

	it, err := tx.Get(tableIndex, indexID)
	if err != nil {
		panic("state: dump index table: " + err.Error()) // schema bug
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		e := obj.(*indexEntry)
		b.WriteString("index ")
		b.WriteString(e.Key)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(e.Value, 10))
		b.WriteByte('\n')
	}

	it, err = tx.Get(tableKVs, indexID)
	if err != nil {
		panic("state: dump kvs table: " + err.Error())
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		b.WriteString(FormatEntry(obj.(*structs.KVEntry)))
		b.WriteByte('\n')
	}

	it, err = tx.Get(tableTombstones, indexID)
	if err != nil {
		panic("state: dump tombstones table: " + err.Error())
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		t := obj.(*tombstone)
		b.WriteString("tombstone ")
		b.WriteString(strconv.Quote(t.Key))
		b.WriteString(" index=")
		b.WriteString(strconv.FormatUint(t.Index, 10))
		b.WriteByte('\n')
	}
	dumpCatalogTxn(tx, &b)
	dumpSessionsTxn(tx, &b)
	return b.String()
}

// FormatEntry renders one KV entry on one line as Dump does, key and value
// Go-quoted.
func FormatEntry(e *structs.KVEntry) string {
	var b strings.Builder
	b.WriteString("kv ")
	b.WriteString(strconv.Quote(e.Key))
	b.WriteString(" create=")
	b.WriteString(strconv.FormatUint(e.CreateIndex, 10))
	b.WriteString(" modify=")
	b.WriteString(strconv.FormatUint(e.ModifyIndex, 10))
	b.WriteString(" lock=")
	b.WriteString(strconv.FormatUint(e.LockIndex, 10))
	b.WriteString(" flags=")
	b.WriteString(strconv.FormatUint(e.Flags, 10))
	if e.Session != "" {
		b.WriteString(" session=")
		b.WriteString(strconv.Quote(e.Session))
	}
	b.WriteString(" value=")
	if e.Value == nil {
		b.WriteString("null")
	} else {
		b.WriteString(strconv.Quote(string(e.Value)))
	}
	return b.String()
}
