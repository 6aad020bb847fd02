package catalogd

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/go-bexpr"
	"github.com/hashicorp/go-bexpr/grammar"
)

// Filter expressions (?filter=) are go-bexpr expressions evaluated on the
// records an endpoint answers with, the same structs its JSON is made
// from, so selectors are the JSON field names (Consul's selector names):
// ServiceName, ServiceMeta.env, Node.Meta.rack, Checks.Status, ...
//
// Consul evaluates filters with go-bexpr v0.1.2, whose semantics differ
// from the go-bexpr this module uses (v0.1.17) in two ways that users of
// Consul's documented selectors meet, so compileFilter bridges them:
//
//   - Selectors are checked against the record type when the filter is
//     created: an unknown selector, or an operator the selected field does
//     not support ("ServiceTags == x"), or a value that does not convert
//     to the field's type, is a 400, not an empty answer.
//   - A selector through a list of records, such as Checks.Status on
//     /v1/health/service, matches when any element matches (Consul's
//     implied "any"). compileFilter rewrites such a match into go-bexpr's
//     "any Checks as c { c.Status == ... }" before go-bexpr sees it.
//
// JSON-pointer selectors and explicit any/all expressions are newer
// go-bexpr syntax that Consul does not accept; they are refused with 400.

// maxFilterParseSteps bounds the work of parsing one filter (go-bexpr's
// "max expressions" counts parser steps): about 0.1 s of CPU at most, and
// far more than a filter of a few hundred conditions needs.
const maxFilterParseSteps = 500_000

// filterMaxLen bounds a filter's length in bytes.
const filterMaxLen = 8 << 10

// filter is a compiled ?filter expression. It is not safe for concurrent
// use (go-bexpr caches compiled regular expressions in it): each request
// compiles its own.
type filter struct {
	eval *bexpr.Evaluator
	expr string
}

// compileFilter parses expr and checks it against the record type t
// (the struct each element of the endpoint's answer is). An empty expr
// is no filter: nil, nil. Errors are 400s with Consul's words.
func compileFilter(expr string, t reflect.Type) (*filter, error) {
	if expr == "" {
		return nil, nil
	}
	if len(expr) > filterMaxLen {
		return nil, filterError(fmt.Errorf("expression is %d bytes long, more than %d", len(expr), filterMaxLen))
	}
	ast, err := grammar.Parse("", []byte(expr), grammar.MaxExpressions(maxFilterParseSteps))
	if err != nil {
		return nil, filterError(err)
	}
	e, ok := ast.(grammar.Expression)
	if !ok {
		return nil, filterError(fmt.Errorf("unexpected parse result %T", ast))
	}
	rw := &rewriter{}
	out, err := rw.expr(e, t)
	if err != nil {
		return nil, filterError(err)
	}
	var b strings.Builder
	render(&b, out)
	ev, err := bexpr.CreateEvaluator(b.String(), bexpr.WithMaxExpressions(maxFilterParseSteps))
	if err != nil {
		// The rewrite produced something go-bexpr does not parse: a bug
		// here, but still the filter's fault as far as the client knows.
		return nil, filterError(fmt.Errorf("rewritten as %q: %v", b.String(), err))
	}
	return &filter{eval: ev, expr: expr}, nil
}

// filterError is Consul's answer to a filter it cannot use.
func filterError(err error) error {
	return badRequest("Failed to create boolean expression evaluator: %v", err)
}

// match reports whether the record v passes; a nil filter passes all.
func (f *filter) match(v any) (bool, error) {
	if f == nil {
		return true, nil
	}
	ok, err := f.eval.Evaluate(v)
	if err != nil {
		return false, badRequest("Failed to evaluate filter %q: %v", f.expr, err)
	}
	return ok, nil
}

// rewriter checks selectors and rewrites matches through lists into
// go-bexpr "any" expressions, naming each list element with a fresh
// variable.
type rewriter struct{ vars int }

func (rw *rewriter) expr(e grammar.Expression, t reflect.Type) (grammar.Expression, error) {
	switch n := e.(type) {
	case *grammar.UnaryExpression:
		in, err := rw.expr(n.Operand, t)
		if err != nil {
			return nil, err
		}
		return &grammar.UnaryExpression{Operator: n.Operator, Operand: in}, nil
	case *grammar.BinaryExpression:
		l, err := rw.expr(n.Left, t)
		if err != nil {
			return nil, err
		}
		r, err := rw.expr(n.Right, t)
		if err != nil {
			return nil, err
		}
		return &grammar.BinaryExpression{Left: l, Operator: n.Operator, Right: r}, nil
	case *grammar.MatchExpression:
		if n.Selector.Type != grammar.SelectorTypeBexpr {
			return nil, fmt.Errorf("JSON pointer selectors are not supported; write the selector as Field.Sub")
		}
		return rw.walk(n, t, nil, n.Selector.Path, n.Selector.String())
	case *grammar.CollectionExpression:
		return nil, fmt.Errorf("%s expressions are not supported; a selector through a list (Checks.Status) already matches when any element does", strings.ToLower(string(n.Op)))
	}
	return nil, fmt.Errorf("unsupported expression %T", e)
}

// walk resolves the selector parts rest from type t, done being the parts
// already resolved (relative to the innermost list variable), and returns
// the match to evaluate.
func (rw *rewriter) walk(m *grammar.MatchExpression, t reflect.Type, done, rest []string, sel string) (grammar.Expression, error) {
	for len(rest) > 0 {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		part := rest[0]
		switch t.Kind() {
		case reflect.Struct:
			f, ok := selectField(t, part)
			if !ok {
				return nil, fmt.Errorf("Selector %q is not valid", sel)
			}
			t = f.Type
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return nil, fmt.Errorf("Selector %q is not valid", sel)
			}
			t = t.Elem()
		case reflect.Slice, reflect.Array:
			// Consul's implied "any": the rest of the selector applies to
			// each element.
			v := fmt.Sprintf("consortElem%d", rw.vars)
			rw.vars++
			inner, err := rw.walk(m, t.Elem(), []string{v}, rest, sel)
			if err != nil {
				return nil, err
			}
			return &grammar.CollectionExpression{
				Op:          grammar.CollectionOpAny,
				Selector:    grammar.Selector{Type: grammar.SelectorTypeBexpr, Path: done},
				Inner:       inner,
				NameBinding: grammar.CollectionNameBinding{Mode: grammar.CollectionBindDefault, Default: v},
			}, nil
		default:
			return nil, fmt.Errorf("Selector %q is not valid: %s has no fields", sel, strings.Join(done, "."))
		}
		done = append(append([]string(nil), done...), part)
		rest = rest[1:]
	}
	if err := checkOperator(m, t, sel); err != nil {
		return nil, err
	}
	return &grammar.MatchExpression{
		Selector: grammar.Selector{Type: grammar.SelectorTypeBexpr, Path: done},
		Operator: m.Operator,
		Value:    m.Value,
	}, nil
}

// selectField finds the struct field a selector part names: the field's
// bexpr tag name, or its Go name (which is also its JSON name here).
// Fields tagged bexpr:"-" are not selectable, as in Consul.
func selectField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		tag := f.Tag.Get("bexpr")
		if i := strings.IndexByte(tag, ','); i >= 0 {
			tag = tag[:i]
		}
		switch {
		case tag == "-":
			continue
		case tag != "" && tag == name, tag == "" && f.Name == name:
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// checkOperator refuses what Consul's bexpr refuses when the filter is
// created: operators the selected field's type does not support and
// values that do not convert to it.
func checkOperator(m *grammar.MatchExpression, t reflect.Type, sel string) error {
	nillable := t.Kind() == reflect.Pointer || t.Kind() == reflect.Map || t.Kind() == reflect.Slice
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	k := t.Kind()
	bad := func() error {
		return fmt.Errorf("Invalid match operator %q for selector %q of type %s", m.Operator, sel, k)
	}
	switch m.Operator {
	case grammar.MatchEqual, grammar.MatchNotEqual:
		if !primitive(k) {
			return bad()
		}
		return convertValue(m, k, sel)
	case grammar.MatchMatches, grammar.MatchNotMatches:
		if k != reflect.String {
			return bad()
		}
		if _, err := regexp.Compile(m.Value.Raw); err != nil {
			return fmt.Errorf("Invalid regular expression %q for selector %q: %v", m.Value.Raw, sel, err)
		}
		return nil
	case grammar.MatchIn, grammar.MatchNotIn, grammar.MatchContains, grammar.MatchNotContains:
		switch k {
		case reflect.String:
			return nil
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return bad()
			}
			return nil
		case reflect.Slice, reflect.Array:
			ek := t.Elem().Kind()
			if !primitive(ek) {
				return bad()
			}
			return convertValue(m, ek, sel)
		}
		return bad()
	case grammar.MatchIsEmpty, grammar.MatchIsNotEmpty:
		switch k {
		case reflect.String, reflect.Map, reflect.Slice, reflect.Array:
			return nil
		}
		return bad()
	case grammar.MatchIsNil, grammar.MatchIsNotNil:
		if !nillable {
			return bad()
		}
		return nil
	}
	return bad()
}

func primitive(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// convertValue checks that the match value converts to kind k the way
// go-bexpr will convert it.
func convertValue(m *grammar.MatchExpression, k reflect.Kind, sel string) error {
	if m.Value == nil {
		return fmt.Errorf("selector %q needs a value", sel)
	}
	var err error
	switch k {
	case reflect.Bool:
		_, err = bexpr.CoerceBool(m.Value.Raw)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err = bexpr.CoerceInt64(m.Value.Raw)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		_, err = bexpr.CoerceUint64(m.Value.Raw)
	case reflect.Float32:
		_, err = bexpr.CoerceFloat32(m.Value.Raw)
	case reflect.Float64:
		_, err = bexpr.CoerceFloat64(m.Value.Raw)
	}
	if err != nil {
		return fmt.Errorf("Failed to convert value %q for selector %q to type %s", m.Value.Raw, sel, k)
	}
	return nil
}

// render writes e in go-bexpr syntax. Parentheses go only where the
// grammar needs them: deep nesting makes go-bexpr's parser backtrack
// exponentially, and "a or b or c" is right-nested (Or(a, Or(b, c))) as
// the parser builds it, so it is written without any.
func render(b *strings.Builder, e grammar.Expression) {
	switch n := e.(type) {
	case *grammar.UnaryExpression:
		b.WriteString("not ")
		renderOperand(b, n.Operand, isBinary(n.Operand, grammar.BinaryOpOr) || isBinary(n.Operand, grammar.BinaryOpAnd))
	case *grammar.BinaryExpression:
		if n.Operator == grammar.BinaryOpOr {
			renderOperand(b, n.Left, isBinary(n.Left, grammar.BinaryOpOr))
			b.WriteString(" or ")
			renderOperand(b, n.Right, false)
			return
		}
		renderOperand(b, n.Left, isBinary(n.Left, grammar.BinaryOpOr) || isBinary(n.Left, grammar.BinaryOpAnd))
		b.WriteString(" and ")
		renderOperand(b, n.Right, isBinary(n.Right, grammar.BinaryOpOr))
	case *grammar.CollectionExpression:
		b.WriteString("any ")
		renderSelector(b, n.Selector.Path)
		b.WriteString(" as " + n.NameBinding.Default + " { ")
		render(b, n.Inner)
		b.WriteString(" }")
	case *grammar.MatchExpression:
		sel := func() { renderSelector(b, n.Selector.Path) }
		val := func() {
			if n.Value != nil {
				b.WriteString(quoteValue(n.Value.Raw))
			}
		}
		switch n.Operator {
		case grammar.MatchIn, grammar.MatchNotIn:
			val()
			b.WriteString(map[bool]string{true: " in ", false: " not in "}[n.Operator == grammar.MatchIn])
			sel()
		default:
			sel()
			b.WriteString(" " + operatorWords[n.Operator])
			if n.Value != nil {
				b.WriteString(" ")
				val()
			}
		}
	}
}

// renderOperand writes an operand of and, or or not, in parentheses when
// paren is set or when it is an any-expression, which the grammar only
// accepts alone or in parentheses.
func renderOperand(b *strings.Builder, e grammar.Expression, paren bool) {
	if _, ok := e.(*grammar.CollectionExpression); ok {
		paren = true
	}
	if paren {
		b.WriteString("(")
	}
	render(b, e)
	if paren {
		b.WriteString(")")
	}
}

func isBinary(e grammar.Expression, op grammar.BinaryOperator) bool {
	bin, ok := e.(*grammar.BinaryExpression)
	return ok && bin.Operator == op
}

// operatorWords spell the operators written after the selector.
var operatorWords = map[grammar.MatchOperator]string{
	grammar.MatchEqual:       "==",
	grammar.MatchNotEqual:    "!=",
	grammar.MatchIsEmpty:     "is empty",
	grammar.MatchIsNotEmpty:  "is not empty",
	grammar.MatchMatches:     "matches",
	grammar.MatchNotMatches:  "not matches",
	grammar.MatchIsNil:       "is nil",
	grammar.MatchIsNotNil:    "is not nil",
	grammar.MatchContains:    "contains",
	grammar.MatchNotContains: "not contains",
}

// identifier matches a selector part that may follow a dot.
var identifier = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)

func renderSelector(b *strings.Builder, path []string) {
	for i, p := range path {
		switch {
		case i == 0:
			b.WriteString(p) // parsed as an identifier, or a variable of ours
		case identifier.MatchString(p):
			b.WriteString("." + p)
		default:
			b.WriteString("[" + quoteValue(p) + "]")
		}
	}
}

// quoteValue writes s as a double-quoted go-bexpr string. go-bexpr reads
// everything up to the next '"' and unquotes it as Go does, so a quote
// inside is written \x22.
func quoteValue(s string) string {
	q := strconv.Quote(s)
	return `"` + strings.ReplaceAll(q[1:len(q)-1], `\"`, `\x22`) + `"`
}
