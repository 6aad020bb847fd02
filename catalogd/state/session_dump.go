package state

import (
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// dumpSessionsTxn appends the session tables to a Dump, one line a row in
// key order.
func dumpSessionsTxn(tx *memdb.Txn, b *strings.Builder) {
	for _, table := range []string{tableSessions, tableSessionChecks, tableSessionRenew, tableLockDelays} {
		it, err := tx.Get(table, indexID)
		if err != nil {
			panic("state: dump " + table + " table: " + err.Error()) // schema bug
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			switch v := obj.(type) {
			case *structs.Session:
				b.WriteString(FormatSession(v))
			case *sessionCheck:
				b.WriteString("session-check ")
				b.WriteString(strconv.Quote(v.Node))
				b.WriteByte(' ')
				b.WriteString(strconv.Quote(v.CheckID))
				b.WriteByte(' ')
				b.WriteString(strconv.Quote(v.Session))
			case *sessionRenew:
				b.WriteString("session-renew ")
				b.WriteString(strconv.Quote(v.ID))
				b.WriteString(" at=")
				b.WriteString(strconv.FormatInt(v.At, 10))
			case *lockDelay:
				b.WriteString("lock-delay ")
				b.WriteString(strconv.Quote(v.Key))
				b.WriteString(" until=")
				b.WriteString(strconv.FormatInt(v.Until, 10))
			}
			b.WriteByte('\n')
		}
	}
}

// FormatSession renders a session on one line as Dump does; empty fields
// are left out.
func FormatSession(s *structs.Session) string {
	var b strings.Builder
	b.WriteString("session ")
	b.WriteString(strconv.Quote(s.ID))
	field(&b, "name", s.Name)
	field(&b, "node", s.Node)
	if len(s.NodeChecks) > 0 {
		b.WriteString(" node-checks=")
		b.WriteString(quoteList(s.NodeChecks))
	}
	if len(s.ServiceChecks) > 0 {
		ids := make([]string, len(s.ServiceChecks))
		for i, sc := range s.ServiceChecks {
			ids[i] = sc.ID
			if sc.Namespace != "" {
				ids[i] += "@" + sc.Namespace
			}
		}
		b.WriteString(" service-checks=")
		b.WriteString(quoteList(ids))
	}
	if s.LockDelay != 0 {
		b.WriteString(" lock-delay=")
		b.WriteString(strconv.FormatInt(s.LockDelay, 10))
	}
	field(&b, "behavior", s.Behavior)
	field(&b, "ttl", s.TTL)
	indexes(&b, s.CreateIndex, s.ModifyIndex)
	return b.String()
}
