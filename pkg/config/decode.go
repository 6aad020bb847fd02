package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/token"
)

// decodeFile applies one HCL or JSON document to n. name is used only in
// messages. Every problem is reported, joined; keys that decoded cleanly
// are applied even when others fail.
func decodeFile(name string, src []byte, n *Node) error {
	f, err := parseHCL(src)
	if err != nil {
		return parseError(name, src, err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return fmt.Errorf("%s: not an object", name)
	}
	d := decoder{file: name, n: n}
	d.list(list, schema)
	return errors.Join(d.errs...)
}

// parseHCL parses src as HCL, or JSON when it starts with "{". The hcl
// library panics on a few malformed inputs; that becomes an error here.
func parseHCL(src []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("malformed input (%v)", r)
		}
	}()
	return hcl.ParseBytes(src)
}

// parseError turns a parser error into "file:line:col: message".
func parseError(name string, src []byte, err error) error {
	var pe *hclparser.PosError
	if errors.As(err, &pe) && pe.Pos.Line > 0 {
		return fmt.Errorf("%s:%d:%d: %w", name, pe.Pos.Line, pe.Pos.Column, pe.Err)
	}
	if isJSON(src) {
		// The hcl JSON parser keeps no positions in most errors; the
		// standard library finds the offset of a syntax error.
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(src, &v); errors.As(jerr, &se) {
			line, col := lineCol(src, int(se.Offset))
			return fmt.Errorf("%s:%d:%d: %w", name, line, col, se)
		}
	}
	// The hcl JSON scanner reports "line:col: message".
	if msg := err.Error(); posPrefix.MatchString(msg) {
		return fmt.Errorf("%s:%w", name, err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

var posPrefix = regexp.MustCompile(`^[0-9]+:[0-9]+: `)

func isJSON(src []byte) bool {
	for len(src) > 0 {
		r, w := utf8.DecodeRune(src)
		if !unicode.IsSpace(r) {
			return r == '{'
		}
		src = src[w:]
	}
	return false
}

func lineCol(src []byte, off int) (line, col int) {
	off = min(max(off, 0), len(src))
	before := src[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// decoder walks one file's AST against the key schema.
type decoder struct {
	file string
	n    *Node
	errs []error
}

func (d *decoder) errorf(line int, format string, args ...any) {
	where := d.file
	if line > 0 {
		where = fmt.Sprintf("%s:%d", d.file, line)
	}
	d.errs = append(d.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

// list applies the items of an object list to the keys of block.
func (d *decoder) list(l *ast.ObjectList, block *keyNode) {
	if l == nil {
		return
	}
	for _, item := range l.Items {
		d.item(item, block)
	}
}

func (d *decoder) item(item *ast.ObjectItem, block *keyNode) {
	line := itemLine(item)
	var segs []string
	for _, k := range item.Keys {
		s, err := stringValue(k.Token)
		if err != nil {
			d.errorf(line, "bad key %s: %v", clip(k.Token.Text), err)
			return
		}
		// "ports.http = 1" in a file means the same as a ports block.
		segs = append(segs, strings.Split(s, ".")...)
	}
	if len(segs) == 0 {
		d.errorf(line, "item without a key")
		return
	}
	if block == schema && ignoredTop[segs[0]] {
		return
	}
	written := strings.Join(segs, ".")
	if block.path != "" {
		written = block.path + "." + written
	}
	cur := block
	for _, s := range segs {
		if cur.leaf() {
			d.errorf(line, "unknown key %q (%s takes a value, not a block)", written, cur.path)
			return
		}
		next := cur.children[s]
		if next == nil {
			msg := fmt.Sprintf("unknown key %q", written)
			if sug := suggest(s, cur.names()); sug != "" {
				if cur.path != "" {
					sug = cur.path + "." + sug
				}
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			d.errorf(line, "%s", msg)
			return
		}
		cur = next
	}
	d.value(item.Val, cur, line)
}

// value applies v to key k: a block recurses, a leaf is converted and set.
func (d *decoder) value(v ast.Node, k *keyNode, line int) {
	if v == nil {
		d.errorf(line, "%s: missing value", k.path)
		return
	}
	if !k.leaf() {
		switch v := v.(type) {
		case *ast.ObjectType:
			d.list(v.List, k)
		case *ast.ListType:
			for _, e := range v.List {
				o, ok := e.(*ast.ObjectType)
				if !ok {
					d.errorf(nodeLine(e, line), "%s: want a block, got %s", k.path, describe(e))
					continue
				}
				d.list(o.List, k)
			}
		default:
			d.errorf(line, "%s: want a block, got %s", k.path, describe(v))
		}
		return
	}
	field := reflect.ValueOf(d.n).Elem().FieldByIndex(k.index)
	if k.kind == kindStringMap {
		d.stringMap(v, k, field, line)
		return
	}
	if k.kind == kindStrings {
		var out []string
		switch v := v.(type) {
		case *ast.ListType:
			for _, e := range v.List {
				s, ok := d.stringLiteral(e, k, nodeLine(e, line))
				if !ok {
					return
				}
				out = append(out, s)
			}
		default:
			s, ok := d.stringLiteral(v, k, line)
			if !ok {
				return
			}
			out = []string{s}
		}
		field.Set(reflect.ValueOf(out))
		return
	}
	lit, ok := v.(*ast.LiteralType)
	if !ok {
		d.errorf(line, "%s: %s, got %s", k.path, k.kind.want(), describe(v))
		return
	}
	line = nodeLine(lit, line)
	tok := lit.Token
	bad := func() { d.errorf(line, "%s: %s, got %s", k.path, k.kind.want(), describe(lit)) }
	switch k.kind {
	case kindString:
		s, err := stringValue(tok)
		if err != nil || !isTextual(tok) {
			bad()
			return
		}
		field.SetString(s)
	case kindBool:
		var b bool
		var err error
		switch {
		case tok.Type == token.BOOL:
			b = tok.Text == "true"
		case isTextual(tok):
			var s string
			if s, err = stringValue(tok); err == nil {
				b, err = strconv.ParseBool(s)
			}
		default:
			err = errors.New("not a bool")
		}
		if err != nil {
			bad()
			return
		}
		field.SetBool(b)
	case kindInt, kindUint:
		text, base, ok := numberText(tok)
		if !ok {
			bad()
			return
		}
		if k.kind == kindInt {
			i, err := strconv.ParseInt(text, base, strconv.IntSize)
			if err != nil {
				bad()
				return
			}
			field.SetInt(i)
		} else {
			u, err := strconv.ParseUint(text, base, 64)
			if err != nil {
				d.errorf(line, "%s: want a non-negative number, got %s", k.path, describe(lit))
				return
			}
			field.SetUint(u)
		}
	case kindDuration:
		s, err := stringValue(tok)
		if err != nil || !isTextual(tok) {
			bad()
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			bad()
			return
		}
		field.SetInt(int64(dur))
	}
}

// stringLiteral reads one string element of a list key.
// stringMap merges a block of string values (node_meta { rack = "r1" })
// into a map field: later files add to and override earlier ones.
func (d *decoder) stringMap(v ast.Node, k *keyNode, field reflect.Value, line int) {
	var items []*ast.ObjectItem
	switch v := v.(type) {
	case *ast.ObjectType:
		items = v.List.Items
	case *ast.ListType:
		for _, e := range v.List {
			o, ok := e.(*ast.ObjectType)
			if !ok {
				d.errorf(nodeLine(e, line), "%s: %s, got %s", k.path, k.kind.want(), describe(e))
				return
			}
			items = append(items, o.List.Items...)
		}
	default:
		d.errorf(line, "%s: %s, got %s", k.path, k.kind.want(), describe(v))
		return
	}
	m := map[string]string{}
	if !field.IsNil() {
		for k2, v2 := range field.Interface().(map[string]string) {
			m[k2] = v2
		}
	}
	for _, it := range items {
		il := itemLine(it)
		if len(it.Keys) != 1 {
			d.errorf(il, "%s: want one key per value", k.path)
			return
		}
		key, err := stringValue(it.Keys[0].Token)
		if err != nil || key == "" {
			d.errorf(il, "%s: bad key %s", k.path, clip(it.Keys[0].Token.Text))
			return
		}
		s, ok := d.stringLiteral(it.Val, k, il)
		if !ok {
			return
		}
		m[key] = s
	}
	field.Set(reflect.ValueOf(m))
}

func (d *decoder) stringLiteral(v ast.Node, k *keyNode, line int) (string, bool) {
	lit, ok := v.(*ast.LiteralType)
	if ok && isTextual(lit.Token) {
		if s, err := stringValue(lit.Token); err == nil {
			return s, true
		}
	}
	d.errorf(line, "%s: %s, got %s", k.path, k.kind.want(), describe(v))
	return "", false
}

// isTextual reports whether a token holds a string (JSON null included,
// which the hcl JSON parser turns into an empty STRING).
func isTextual(t token.Token) bool {
	return t.Type == token.STRING || t.Type == token.HEREDOC || t.Type == token.IDENT
}

// numberText returns the text of an integer given as a number (HCL
// syntax: 0x and leading-zero octal allowed) or as a string holding a
// decimal one, with the base to parse it in.
func numberText(t token.Token) (string, int, bool) {
	switch t.Type {
	case token.NUMBER:
		return t.Text, 0, true
	case token.STRING:
		s, err := stringValue(t)
		if err != nil {
			return "", 0, false
		}
		return strings.TrimSpace(s), 10, true
	}
	return "", 0, false
}

// stringValue is token.Value for keys and strings, with its panics on
// malformed text turned into errors.
func stringValue(t token.Token) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("%v", r)
		}
	}()
	switch t.Type {
	case token.STRING, token.HEREDOC, token.IDENT:
		v, ok := t.Value().(string)
		if !ok {
			return "", errors.New("not a string")
		}
		return v, nil
	}
	return "", fmt.Errorf("not a string: %s", t.Type)
}

// describe renders a value for "got ..." in messages.
func describe(v ast.Node) string {
	switch v := v.(type) {
	case *ast.ObjectType:
		return "a block"
	case *ast.ListType:
		return "a list"
	case *ast.LiteralType:
		switch {
		case v.Token.Type == token.HEREDOC:
			return "a heredoc"
		case v.Token.Type == token.STRING && v.Token.Text == "":
			return "null"
		}
		return clip(v.Token.Text)
	}
	return "nothing"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// itemLine is the line of an item: its first key in HCL; in JSON, where
// the parser keeps no key positions, its colon.
func itemLine(item *ast.ObjectItem) int {
	if len(item.Keys) > 0 && item.Keys[0].Token.Pos.Line > 0 {
		return item.Keys[0].Token.Pos.Line
	}
	return item.Assign.Line
}

// nodeLine is n's own line when the parser kept it, else def.
func nodeLine(n ast.Node, def int) int {
	if l, ok := n.(*ast.LiteralType); ok && l.Token.Pos.Line > 0 {
		return l.Token.Pos.Line
	}
	return def
}
