package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// lineError is a syntax error at a line.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// jsonReader turns a JSON document into a tree, with the line of every
// value for messages.
type jsonReader struct {
	dec      *json.Decoder
	src      []byte
	newlines []int // offsets of '\n' in src, ascending
}

// parseJSON parses a JSON document (a definition file or an HTTP request
// body) into a tree.
func parseJSON(src []byte) (*tree, error) {
	r := &jsonReader{dec: json.NewDecoder(bytes.NewReader(src)), src: src}
	r.dec.UseNumber()
	for i, c := range src {
		if c == '\n' {
			r.newlines = append(r.newlines, i)
		}
	}
	t, err := r.value(0)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &lineError{r.lineAt(int(se.Offset)), se}
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("unexpected end of JSON input")
		}
		return nil, err
	}
	if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &lineError{r.tokenLine(), errors.New("data after the JSON value")}
	}
	return t, nil
}

// lineAt is the 1-based line of byte offset off.
func (r *jsonReader) lineAt(off int) int {
	return sort.SearchInts(r.newlines, off) + 1
}

// tokenLine is the line of the next token: the decoder's offset points
// past the previous token, before the whitespace and separators it skips.
func (r *jsonReader) tokenLine() int {
	off := int(r.dec.InputOffset())
	for off < len(r.src) {
		switch r.src[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return r.lineAt(off)
}

func (r *jsonReader) value(depth int) (*tree, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	line := r.tokenLine()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			t := &tree{kind: kindObject, line: line}
			for r.dec.More() {
				kt, err := r.dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("line %d: object key is not a string", line)
				}
				val, err := r.value(depth + 1)
				if err != nil {
					return nil, err
				}
				t.keys = append(t.keys, k)
				t.vals = append(t.vals, val)
			}
			if _, err := r.dec.Token(); err != nil { // '}'
				return nil, err
			}
			return t, nil
		case '[':
			t := &tree{kind: kindList, line: line}
			for r.dec.More() {
				val, err := r.value(depth + 1)
				if err != nil {
					return nil, err
				}
				t.vals = append(t.vals, val)
			}
			if _, err := r.dec.Token(); err != nil { // ']'
				return nil, err
			}
			return t, nil
		}
		return nil, fmt.Errorf("line %d: unexpected %q", line, v)
	case string:
		return &tree{kind: kindString, line: line, text: v}, nil
	case json.Number:
		return &tree{kind: kindNumber, line: line, text: v.String()}, nil
	case bool:
		return &tree{kind: kindBool, line: line, b: v}, nil
	case nil:
		return &tree{kind: kindNull, line: line}, nil
	}
	return nil, fmt.Errorf("line %d: unexpected token %v", line, tok)
}
