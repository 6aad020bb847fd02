package catalogd

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/consort-io/consort/catalogd/state"
)

// txnSeeds are /v1/txn bodies for the fuzz corpus and the decoder tests.
var txnSeeds = []string{
	`[]`,
	`null`,
	`[{"KV":{"Verb":"set","Key":"a","Value":"aGVsbG8=","Flags":3}}]`,
	`[{"KV":{"Verb":"cas","Key":"a","Value":null,"Index":7}},{"KV":{"Verb":"get","Key":"a"}}]`,
	`[{"KV":{"Verb":"lock","Key":"l","Session":"0e4b7ab1-0d64-6d1f-c2c8-1b0f5e5f9a55"}}]`,
	`[{"KV":{"Verb":"check-index","Key":"a","Index":1}},{"KV":{"Verb":"delete-tree","Key":"p/"}}]`,
	`[{"kv":{"verb":"get-tree","key":"p/"}},{"KV":{"Verb":"check-not-exists","Key":"x"}}]`,
	`[{"KV":{"Verb":"frobnicate","Key":"a"}}]`,
	`[{"KV":{"Verb":"set","Key":"a","Value":"not base64!"}}]`,
	`[{"KV":{"Verb":"set","Key":"a","Value":12}}]`,
	`[{}]`,
	`[null]`,
	`[{"KV":{"Verb":"get","Key":"a"},"Node":{"Verb":"get","Node":{"Node":"n"}}}]`,
	`[{"Node":{"Verb":"set","Node":{"ID":"a0c2a1f2-0a4c-4b4b-9d2a-6d1c2b3a4e5f","Node":"n1","Address":"10.0.0.1","Meta":{"k":"v"}}}}]`,
	`[{"Node":{"Verb":"delete-cas","Node":{"Node":"n1","ModifyIndex":4}}}]`,
	`[{"Service":{"Verb":"set","Node":"n1","Service":{"ID":"web1","Service":"web","Port":80,"Tags":["a"],"Weights":{"Passing":0,"Warning":0}}}}]`,
	`[{"Service":{"Verb":"cas","Node":"n1","Service":{"ID":"web1","Service":"web","Weights":{"Passing":3,"Warning":1},"ModifyIndex":9}}}]`,
	`[{"Check":{"Verb":"set","Check":{"Node":"n1","CheckID":"c1","Name":"c","Status":"passing","Definition":{"HTTP":"http://x","Interval":"10s","TimeoutDuration":1000000000}}}}]`,
	`[{"Check":{"Verb":"get","Check":{"Node":"n1","CheckID":"c1"}}}]`,
	`[{"Check":{"Verb":"set","Check":{"Definition":{"Interval":"ten seconds"}}}}]`,
	`{"KV":{"Verb":"get","Key":"a"}}`,
	`[{"KV":{"Verb":"get","Key":"a"}}] trailing`,
	`[{"KV":{"Verb":"set","Key":"a","Flags":-1}}]`,
	`[`,
	``,
}

// checkTxnDecode checks what decodeTxn makes of body: a refusal is an
// httpError with 400 or 413 and a message; an accepted body has at most
// MaxTxnOps operations, each with exactly one part, no value above
// maxValue, node operations with a datacenter, and encodes as a command
// that decodes back to the same operations.
func checkTxnDecode(t *testing.T, body []byte, maxValue int) ([]state.TxnOp, error) {
	t.Helper()
	ops, err := decodeTxn(body, "dc1", maxValue)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			t.Fatalf("%q: error %v is not an httpError", body, err)
		}
		if (he.code != http.StatusBadRequest && he.code != http.StatusRequestEntityTooLarge) || he.msg == "" {
			t.Fatalf("%q: answered %d %q", body, he.code, he.msg)
		}
		return nil, err
	}
	if len(ops) > state.MaxTxnOps {
		t.Fatalf("%q: %d operations accepted", body, len(ops))
	}
	for i, op := range ops {
		n := 0
		if op.KV != nil {
			n++
			if len(op.KV.Entry.Value) > maxValue {
				t.Fatalf("%q: op %d: value of %d bytes accepted", body, i, len(op.KV.Entry.Value))
			}
		}
		for _, v := range []*state.TxnVerb{verbOf(op.Node), verbOf(op.Service), verbOf(op.Check)} {
			if v != nil {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%q: op %d has %d parts", body, i, n)
		}
		if op.Node != nil && op.Node.Node.Datacenter == "" {
			t.Fatalf("%q: op %d: node without a datacenter", body, i)
		}
	}
	data, err := state.Encode(state.TxnType, &state.TxnRequest{Ops: ops})
	if err != nil {
		t.Fatalf("%q: encode: %v", body, err)
	}
	typ, dec, err := state.DecodeCommand(data)
	if err != nil || typ != state.TxnType {
		t.Fatalf("%q: decode command: type %d, %v", body, typ, err)
	}
	got, ok := dec.(*state.TxnRequest)
	if !ok || len(got.Ops) != len(ops) {
		t.Fatalf("%q: decoded %T with a different number of operations", body, dec)
	}
	return ops, nil
}

// verbOf returns the verb of a node, service or check operation, nil for
// nil.
func verbOf[T *state.TxnNodeOp | *state.TxnServiceOp | *state.TxnCheckOp](op T) *state.TxnVerb {
	switch o := any(op).(type) {
	case *state.TxnNodeOp:
		if o != nil {
			return &o.Verb
		}
	case *state.TxnServiceOp:
		if o != nil {
			return &o.Verb
		}
	case *state.TxnCheckOp:
		if o != nil {
			return &o.Verb
		}
	}
	return nil
}

// FuzzTxnRequest: no /v1/txn body makes the decoder panic or accept
// something malformed (see checkTxnDecode).
func FuzzTxnRequest(f *testing.F) {
	for _, s := range txnSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkTxnDecode(t, body, 64)
	})
}

func TestDecodeTxnSeeds(t *testing.T) {
	for _, s := range txnSeeds {
		checkTxnDecode(t, []byte(s), 512<<10)
	}
}

func TestDecodeTxn(t *testing.T) {
	ok := func(body string) []state.TxnOp {
		t.Helper()
		ops, err := checkTxnDecode(t, []byte(body), 512<<10)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return ops
	}
	refused := func(body string, code int, want string) {
		t.Helper()
		_, err := checkTxnDecode(t, []byte(body), 16)
		var he *httpError
		if !errors.As(err, &he) || he.code != code || !strings.Contains(he.msg, want) {
			t.Errorf("%s: got %v, want %d with %q", body, err, code, want)
		}
	}

	ops := ok(`[{"KV":{"Verb":"set","Key":"a","Value":"aGVsbG8=","Flags":3}},{"KV":{"Verb":"get","Key":"a"}}]`)
	want := []state.TxnOp{
		{KV: &state.TxnKVOp{Verb: state.KVSet}},
		{KV: &state.TxnKVOp{Verb: state.KVGet}},
	}
	want[0].KV.Entry.Key, want[0].KV.Entry.Value, want[0].KV.Entry.Flags = "a", []byte("hello"), 3
	want[1].KV.Entry.Key = "a"
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("ops %+v, want %+v", ops, want)
	}

	if ops := ok(`[{"KV":{"Verb":"check-index","Key":"a","Index":4}},{"Node":{"Verb":"get","Node":{"Node":"n"}}}]`); ops[0].KV.Entry.ModifyIndex != 4 || ops[1].Node.Node.Datacenter != "dc1" {
		t.Errorf("ops %+v: index or default datacenter lost", ops)
	}
	if ops := ok(`[{"Service":{"Verb":"set","Node":"n","Service":{"ID":"s","Service":"s","Weights":{"Passing":0,"Warning":0}}}}]`); ops[0].Service.Service.Weights != nil {
		t.Errorf("zero weights kept: %+v", ops[0].Service.Service.Weights)
	}
	ops = ok(`[{"Check":{"Verb":"cas","Check":{"Node":"n","CheckID":"c","Definition":{"Interval":"10s"},"ModifyIndex":8}}}]`)
	if c := ops[0].Check.Check; c.ModifyIndex != 8 || c.Definition.Interval != 10e9 || c.CheckID != "c" {
		t.Errorf("check %+v", c)
	}
	// Unknown verbs are the state machine's to refuse, in Consul's words.
	ops = ok(`[{"KV":{"Verb":"nope","Key":"a"}},{"Check":{"Verb":"poke"}}]`)
	if ops[0].KV.Verb != "nope" || ops[1].Check.Verb != "poke" {
		t.Errorf("verbs not passed on: %+v %+v", ops[0].KV, ops[1].Check)
	}

	many := make([]string, state.MaxTxnOps+1)
	for i := range many {
		many[i] = `{"KV":{"Verb":"get","Key":"k"}}`
	}
	ok("[" + strings.Join(many[:state.MaxTxnOps], ",") + "]")
	refused("["+strings.Join(many, ",")+"]", http.StatusRequestEntityTooLarge, "Transaction contains too many operations (129 > 128)")
	refused(`[{"KV":{"Verb":"set","Key":"big","Value":"`+strings.Repeat("QUJD", 8)+`"}}]`, http.StatusRequestEntityTooLarge, `Value for key "big" is too large (24 > 16 bytes)`)
	refused(`{"KV":{}}`, http.StatusBadRequest, "Failed to parse body")
	refused(`[{"KV":{"Verb":"set","Value":"%%%"}}]`, http.StatusBadRequest, "Failed to parse body")
	refused(`[{}]`, http.StatusBadRequest, "operation 0 must have exactly one of KV, Node, Service or Check")
	refused(`[{"KV":{"Verb":"get"},"Check":{"Verb":"get"}}]`, http.StatusBadRequest, "it has 2")
}
