package state

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// dumpCatalogTxn appends the catalog tables to a Dump: nodes, services and
// checks, one line each, in key order.
func dumpCatalogTxn(tx *memdb.Txn, b *strings.Builder) {
	for _, table := range []string{tableNodes, tableServices, tableChecks} {
		it, err := tx.Get(table, indexID)
		if err != nil {
			panic("state: dump " + table + " table: " + err.Error()) // schema bug
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			switch v := obj.(type) {
			case *structs.Node:
				b.WriteString(FormatNode(v))
			case *serviceEntry:
				b.WriteString(FormatService(v.Node, v.Service))
			case *structs.HealthCheck:
				b.WriteString(FormatCheck(v))
			}
			b.WriteByte('\n')
		}
	}
}

// FormatNode renders a node on one line as Dump does; empty fields are
// left out, maps are in key order.
func FormatNode(n *structs.Node) string {
	var b strings.Builder
	b.WriteString("node ")
	b.WriteString(strconv.Quote(n.Node))
	field(&b, "id", n.ID)
	field(&b, "address", n.Address)
	field(&b, "dc", n.Datacenter)
	mapField(&b, "tagged", n.TaggedAddresses)
	mapField(&b, "meta", n.Meta)
	indexes(&b, n.CreateIndex, n.ModifyIndex)
	return b.String()
}

// FormatService renders a service instance on node on one line as Dump
// does.
func FormatService(node string, s *structs.NodeService) string {
	var b strings.Builder
	b.WriteString("service ")
	b.WriteString(strconv.Quote(node))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(s.ID))
	field(&b, "name", s.Service)
	field(&b, "kind", s.Kind)
	if len(s.Tags) > 0 {
		b.WriteString(" tags=")
		b.WriteString(quoteList(s.Tags))
	}
	field(&b, "address", s.Address)
	if s.Port != 0 {
		b.WriteString(" port=")
		b.WriteString(strconv.Itoa(s.Port))
	}
	if len(s.TaggedAddresses) > 0 {
		b.WriteString(" tagged={")
		for i, k := range sortedKeys(s.TaggedAddresses) {
			if i > 0 {
				b.WriteByte(' ')
			}
			a := s.TaggedAddresses[k]
			fmt.Fprintf(&b, "%s=%s:%d", strconv.Quote(k), strconv.Quote(a.Address), a.Port)
		}
		b.WriteByte('}')
	}
	mapField(&b, "meta", s.Meta)
	if s.Weights != nil {
		fmt.Fprintf(&b, " weights=%d/%d", s.Weights.Passing, s.Weights.Warning)
	}
	if s.EnableTagOverride {
		b.WriteString(" enable-tag-override")
	}
	indexes(&b, s.CreateIndex, s.ModifyIndex)
	return b.String()
}

// FormatCheck renders a check on one line as Dump does.
func FormatCheck(c *structs.HealthCheck) string {
	var b strings.Builder
	b.WriteString("check ")
	b.WriteString(strconv.Quote(c.Node))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(c.CheckID))
	b.WriteString(" status=")
	b.WriteString(c.Status)
	field(&b, "name", c.Name)
	field(&b, "service", c.ServiceID)
	field(&b, "service-name", c.ServiceName)
	if len(c.ServiceTags) > 0 {
		b.WriteString(" service-tags=")
		b.WriteString(quoteList(c.ServiceTags))
	}
	field(&b, "type", c.Type)
	field(&b, "notes", c.Notes)
	field(&b, "output", c.Output)
	if !reflect.ValueOf(c.Definition).IsZero() {
		b.WriteString(" def={")
		b.WriteString(formatDefinition(&c.Definition))
		b.WriteByte('}')
	}
	indexes(&b, c.CreateIndex, c.ModifyIndex)
	return b.String()
}

// formatDefinition lists the set fields of a check definition as
// Name:value (strings quoted; fmt prints maps in key order).
func formatDefinition(d *structs.CheckType) string {
	v := reflect.ValueOf(d).Elem()
	var parts []string
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.IsZero() {
			continue
		}
		name := v.Type().Field(i).Name
		if f.Kind() == reflect.String {
			parts = append(parts, name+":"+strconv.Quote(f.String()))
		} else {
			parts = append(parts, fmt.Sprintf("%s:%v", name, f.Interface()))
		}
	}
	return strings.Join(parts, " ")
}

func field(b *strings.Builder, name, v string) {
	if v == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(strconv.Quote(v))
}

func mapField(b *strings.Builder, name string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("={")
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func indexes(b *strings.Builder, create, modify uint64) {
	b.WriteString(" create=")
	b.WriteString(strconv.FormatUint(create, 10))
	b.WriteString(" modify=")
	b.WriteString(strconv.FormatUint(modify, 10))
}
