package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kind is the type of a leaf key, which decides how its value is parsed.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindUint
	kindStrings
	kindDuration
	kindStringMap
)

// want names a kind in error messages ("want a number, got ...").
func (k kind) want() string {
	switch k {
	case kindBool:
		return "want true or false"
	case kindInt, kindUint:
		return "want a number"
	case kindStrings:
		return "want a list of strings"
	case kindDuration:
		return `want a duration like "30s"`
	case kindStringMap:
		return `want a block of string values like { rack = "r1" }`
	default:
		return "want a string"
	}
}

// keyNode is one key of the node config: a block (children set) or a leaf
// (index set, the reflect field path into Node).
type keyNode struct {
	path     string // dotted, "" for the root
	children map[string]*keyNode
	index    []int
	kind     kind
}

// leaf reports whether the key takes a value rather than a block.
func (k *keyNode) leaf() bool { return k.children == nil }

// names returns the child key names, sorted.
func (k *keyNode) names() []string {
	out := make([]string, 0, len(k.children))
	for n := range k.children {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// schema is the key tree of Node; leaves lists every leaf by dotted path;
// envNames maps CONSORT_* variable names to leaf paths.
var (
	schema   = buildSchema()
	leaves   = collectLeaves(schema, map[string]*keyNode{})
	envNames = buildEnvNames(leaves)
)

// ignoredTop are top-level blocks that hold service and check definitions;
// catalogd reads them from the same files, Load skips them.
var ignoredTop = map[string]bool{"service": true, "services": true, "check": true, "checks": true}

var durationType = reflect.TypeOf(time.Duration(0))

func buildSchema() *keyNode {
	root := &keyNode{children: map[string]*keyNode{}}
	addFields(root, reflect.TypeOf(Node{}), nil)
	return root
}

func addFields(parent *keyNode, t reflect.Type, index []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("hcl")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		name, _, _ = strings.Cut(name, ",")
		path := name
		if parent.path != "" {
			path = parent.path + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		k := &keyNode{path: path, index: idx}
		switch {
		case f.Type == durationType:
			k.kind = kindDuration
		case f.Type.Kind() == reflect.Struct:
			k.children = map[string]*keyNode{}
			addFields(k, f.Type, idx)
		case f.Type.Kind() == reflect.String:
			k.kind = kindString
		case f.Type.Kind() == reflect.Bool:
			k.kind = kindBool
		case f.Type.Kind() == reflect.Int:
			k.kind = kindInt
		case f.Type.Kind() == reflect.Uint64:
			k.kind = kindUint
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			k.kind = kindStrings
		case f.Type.Kind() == reflect.Map && f.Type.Key().Kind() == reflect.String && f.Type.Elem().Kind() == reflect.String:
			k.kind = kindStringMap
		default:
			panic(fmt.Sprintf("config: field %s has unsupported type %s", path, f.Type))
		}
		parent.children[name] = k
	}
}

func collectLeaves(k *keyNode, out map[string]*keyNode) map[string]*keyNode {
	for _, c := range k.children {
		if c.leaf() {
			out[c.path] = c
		} else {
			collectLeaves(c, out)
		}
	}
	return out
}

// EnvName returns the environment variable that overrides a dotted key
// path: "ports.http" -> "CONSORT_PORTS_HTTP".
func EnvName(path string) string {
	return "CONSORT_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func buildEnvNames(leaves map[string]*keyNode) map[string]string {
	out := make(map[string]string, len(leaves))
	for p := range leaves {
		e := EnvName(p)
		if prev, dup := out[e]; dup {
			panic(fmt.Sprintf("config: keys %q and %q share variable %s", prev, p, e))
		}
		out[e] = p
	}
	return out
}

// Keys returns every dotted key path the node config accepts, sorted.
func Keys() []string {
	out := make([]string, 0, len(leaves))
	for p := range leaves {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// setText parses s for a leaf and stores it into n. Used for environment
// variables and --set overrides, where every value arrives as text.
func setText(n *Node, k *keyNode, s string) error {
	v := reflect.ValueOf(n).Elem().FieldByIndex(k.index)
	switch k.kind {
	case kindString:
		v.SetString(s)
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%s: %s, got %q", k.path, k.kind.want(), s)
		}
		v.SetBool(b)
	case kindInt:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
		if err != nil {
			return fmt.Errorf("%s: %s, got %q", k.path, k.kind.want(), s)
		}
		v.SetInt(i)
	case kindUint:
		u, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: want a non-negative number, got %q", k.path, s)
		}
		v.SetUint(u)
	case kindDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%s: %s, got %q", k.path, k.kind.want(), s)
		}
		v.SetInt(int64(d))
	case kindStrings:
		var list []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list))
	case kindStringMap:
		// "key:value,key:value", merged into what files set.
		m := map[string]string{}
		for k2, v2 := range v.Interface().(map[string]string) {
			m[k2] = v2
		}
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			key, val, ok := strings.Cut(e, ":")
			if !ok || strings.TrimSpace(key) == "" {
				return fmt.Errorf("%s: want key:value pairs separated by commas, got %q", k.path, s)
			}
			m[strings.TrimSpace(key)] = strings.TrimSpace(val)
		}
		v.Set(reflect.ValueOf(m))
	}
	return nil
}

// suggest returns the candidate closest to name, or "" when none is close
// enough to be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), c)
		if d < 0 {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(name) <= 3 {
		limit = 1
	}
	if bestD >= 0 && bestD <= limit {
		return best
	}
	// "name" for "node_name", "http" for "ports.http".
	if len(name) >= 4 {
		for _, c := range candidates {
			if strings.HasSuffix(c, "_"+name) || strings.HasSuffix(c, "."+name) || strings.HasPrefix(c, name+"_") {
				return c
			}
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b; -1 when either is
// too long to be worth comparing.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return -1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
