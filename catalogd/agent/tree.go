package agent

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/token"
)

// kind is the type of a tree node.
type kind uint8

const (
	kindNull kind = iota
	kindObject
	kindList
	kindString
	kindNumber
	kindBool
)

func (k kind) String() string {
	return [...]string{"null", "a block", "a list", "a string", "a number", "a bool"}[k]
}

// tree is a parsed document, the same shape whichever syntax it came
// from: HCL and JSON files (through the hcl parser) and HTTP bodies
// (through encoding/json) decode into it, and one decoder turns it into
// definitions. Objects keep their keys in order and may repeat a key
// (HCL's repeated blocks).
type tree struct {
	kind kind
	line int      // 1-based; 0 when unknown
	keys []string // object keys, as written
	vals []*tree  // object values (parallel to keys) or list elements
	text string   // string value, or a number's text
	b    bool
}

// maxDepth bounds nesting, so a hostile document cannot exhaust the stack.
const maxDepth = 64

// parseFile parses an HCL document with hashicorp/hcl, or a JSON one
// (starting with "{") with encoding/json. name is used only in messages.
// The hcl library panics on a few malformed inputs; that becomes an
// error.
func parseFile(name string, src []byte) (t *tree, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("%s: malformed input (%v)", name, r)
		}
	}()
	if s := bytes.TrimSpace(src); len(s) > 0 && s[0] == '{' {
		// JSON goes through encoding/json, as Consul reads JSON config:
		// strict syntax, and a line for every value.
		t, err := parseJSON(src)
		var le *lineError
		switch {
		case errors.As(err, &le):
			return nil, fmt.Errorf("%s:%d: %w", name, le.line, le.err)
		case err != nil:
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	}
	f, err := hcl.ParseBytes(src)
	if err != nil {
		return nil, parseError(name, src, err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, fmt.Errorf("%s: not an object", name)
	}
	return fromHCLList(list, 0)
}

// parseError turns a parser error into "file:line:col: message".
func parseError(name string, src []byte, err error) error {
	var pe *hclparser.PosError
	if errors.As(err, &pe) && pe.Pos.Line > 0 {
		return fmt.Errorf("%s:%d:%d: %w", name, pe.Pos.Line, pe.Pos.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// fromHCLList converts an object list. An item with several keys
// (`a "b" { }`, or what the hcl JSON parser flattens nested objects into)
// becomes nested one-key objects.
func fromHCLList(l *ast.ObjectList, depth int) (*tree, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	obj := &tree{kind: kindObject}
	if l == nil {
		return obj, nil
	}
	for _, item := range l.Items {
		line := item.Pos().Line
		if obj.line == 0 {
			obj.line = line
		}
		if len(item.Keys) == 0 {
			return nil, fmt.Errorf("line %d: item without a key", line)
		}
		keys := make([]string, len(item.Keys))
		for i, k := range item.Keys {
			s, err := tokenString(k.Token)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad key %s: %v", line, clip(k.Token.Text), err)
			}
			keys[i] = s
		}
		v, err := fromHCL(item.Val, line, depth+1)
		if err != nil {
			return nil, err
		}
		for i := len(keys) - 1; i > 0; i-- {
			v = &tree{kind: kindObject, line: line, keys: []string{keys[i]}, vals: []*tree{v}}
		}
		obj.keys = append(obj.keys, keys[0])
		obj.vals = append(obj.vals, v)
	}
	return obj, nil
}

func fromHCL(n ast.Node, line, depth int) (*tree, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	switch n := n.(type) {
	case nil:
		return &tree{kind: kindNull, line: line}, nil
	case *ast.ObjectType:
		t, err := fromHCLList(n.List, depth+1)
		if err != nil {
			return nil, err
		}
		t.line = orLine(n.Lbrace.Line, line)
		return t, nil
	case *ast.ListType:
		t := &tree{kind: kindList, line: orLine(n.Lbrack.Line, line)}
		for _, e := range n.List {
			v, err := fromHCL(e, t.line, depth+1)
			if err != nil {
				return nil, err
			}
			t.vals = append(t.vals, v)
		}
		return t, nil
	case *ast.LiteralType:
		tok := n.Token
		t := &tree{line: orLine(tok.Pos.Line, line)}
		switch tok.Type {
		case token.BOOL:
			t.kind, t.b = kindBool, tok.Text == "true"
		case token.NUMBER, token.FLOAT:
			t.kind, t.text = kindNumber, tok.Text
		case token.STRING, token.HEREDOC, token.IDENT:
			s, err := tokenString(tok)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad string %s: %v", t.line, clip(tok.Text), err)
			}
			t.kind, t.text = kindString, s
			if tok.JSON && tok.Text == "" {
				t.kind = kindNull // the hcl JSON parser's null
			}
		default:
			return nil, fmt.Errorf("line %d: unexpected %s", t.line, clip(tok.Text))
		}
		return t, nil
	}
	return nil, fmt.Errorf("line %d: unexpected %T", line, n)
}

func orLine(l, def int) int {
	if l > 0 {
		return l
	}
	return def
}

// tokenString returns a string token's value; the hcl library panics on
// malformed escapes, which becomes an error here.
func tokenString(tok token.Token) (s string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	switch v := tok.Value().(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("not a string")
}

func clip(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40] + "…")
	}
	return strconv.Quote(s)
}

// normKey folds a field name so that Consul's spellings all match:
// "EnableTagOverride", "enable_tag_override" and "enabletagoverride".
func normKey(k string) string {
	return strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(k, "_", ""), "-", ""))
}
