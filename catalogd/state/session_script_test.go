package state

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// Script commands for sessions, locks and transactions:
//
//	session-create ID node=N [checks=A,B] [service-checks=X,Y] [delay=NS]
//	               [behavior=B] [ttl=S] [name=S] [now=NS] [at=N]
//	                        checks= with no value means no node checks
//	session-destroy ID [reason=R] [now=NS] [at=N]
//	session-renew ID [now=NS] [at=N]
//	lock KEY [VALUE] session=S [flags=N] [now=NS] [at=N]
//	unlock KEY [VALUE] session=S [flags=N] [at=N]
//	session ID | sessions | node-sessions NODE | renewed ID
//	lock-delay KEY now=NS
//	txn [at=N] JSON         a TxnRequest, Go field names ([]byte values
//	                        in base64)
//	txn-read JSON           the same through TxnRead
//
// Every KV command prints its lock changes (LockChanges) under its result.
func (r *scriptRunner) sessionRun(cmd string, args []string, opts map[string]string) (bool, error) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	num := func(name string) (int64, error) {
		v, ok := opts[name]
		if !ok {
			return 0, nil
		}
		return strconv.ParseInt(v, 10, 64)
	}
	now, err := num("now")
	if err != nil {
		return true, err
	}
	switch cmd {
	case "session-create":
		sess := structs.Session{ID: arg(0), Node: opts["node"], Behavior: opts["behavior"], TTL: opts["ttl"], Name: opts["name"]}
		if v, ok := opts["checks"]; !ok {
			sess.NodeChecks = []string{structs.SerfCheckID}
		} else if v != "" {
			sess.NodeChecks = strings.Split(v, ",")
		}
		if v := opts["service-checks"]; v != "" {
			for _, id := range strings.Split(v, ",") {
				sess.ServiceChecks = append(sess.ServiceChecks, structs.ServiceCheck{ID: id})
			}
		}
		if sess.LockDelay, err = num("delay"); err != nil {
			return true, err
		}
		return true, r.applyReq(SessionType, &SessionRequest{Op: SessionCreate, Session: sess, Now: now}, opts)
	case "session-destroy", "session-renew":
		op := SessionDestroy
		if cmd == "session-renew" {
			op = SessionRenew
		}
		return true, r.applyReq(SessionType, &SessionRequest{Op: op, Session: structs.Session{ID: arg(0)}, Now: now, Reason: opts["reason"]}, opts)
	case "lock", "unlock":
		op := KVLock
		if cmd == "unlock" {
			op = KVUnlock
		}
		e := structs.KVEntry{Key: arg(0), Session: opts["session"]}
		if len(args) > 1 {
			e.Value = []byte(args[1])
		}
		flags, err := num("flags")
		if err != nil {
			return true, err
		}
		e.Flags = uint64(flags)
		return true, r.applyReq(KVSType, &KVSRequest{Op: op, Entry: e, Now: now}, opts)
	case "session":
		idx, sess, err := r.s.SessionGet(nil, arg(0))
		if err != nil {
			return true, err
		}
		fmt.Fprintf(&r.out, "index=%d\n", idx)
		if sess == nil {
			r.out.WriteString("nil\n")
		} else {
			fmt.Fprintf(&r.out, "%s\n", FormatSession(sess))
		}
	case "sessions", "node-sessions":
		var (
			idx      uint64
			sessions []*structs.Session
		)
		if cmd == "sessions" {
			idx, sessions, err = r.s.SessionList(nil)
		} else {
			idx, sessions, err = r.s.NodeSessions(nil, arg(0))
		}
		if err != nil {
			return true, err
		}
		fmt.Fprintf(&r.out, "index=%d sessions=%d\n", idx, len(sessions))
		for _, sess := range sessions {
			fmt.Fprintf(&r.out, "%s\n", FormatSession(sess))
		}
	case "renewed":
		at, ok := r.s.SessionRenewedAt(arg(0))
		fmt.Fprintf(&r.out, "renewed=%d %v\n", at, ok)
	case "lock-delay":
		fmt.Fprintf(&r.out, "until=%d\n", r.s.KVLockDelay(arg(0), now))
	default:
		return false, nil
	}
	return true, nil
}

// applyReq encodes and applies one command.
func (r *scriptRunner) applyReq(t MessageType, req any, opts map[string]string) error {
	data, err := Encode(t, req)
	if err != nil {
		return err
	}
	return r.apply(data, opts)
}

// txn applies ("txn") or reads ("txn-read") a transaction from
// "[at=N] JSON".
func (r *scriptRunner) txn(cmd, rest string) error {
	opts := map[string]string{}
	if at, ok := strings.CutPrefix(rest, "at="); ok {
		n, tail, _ := strings.Cut(at, " ")
		opts["at"], rest = n, tail
	}
	var req TxnRequest
	dec := json.NewDecoder(strings.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("txn json: %w", err)
	}
	if cmd == "txn-read" {
		fmt.Fprintf(&r.out, "read-only=%v\n", req.ReadOnly())
		r.printTxn("read", r.s.TxnRead(&req))
		return nil
	}
	return r.applyReq(TxnType, &req, opts)
}

// printResult prints session and transaction results; false for other
// types.
func (r *scriptRunner) printResult(idx uint64, res any) bool {
	switch v := res.(type) {
	case *SessionResult:
		if v == nil {
			r.t.Fatalf("apply at %d: nil *SessionResult", idx)
		}
		if v.Err != nil {
			fmt.Fprintf(&r.out, "@%d = error: %v\n", idx, v.Err)
			return true
		}
		fmt.Fprintf(&r.out, "@%d = ok index=%d\n", idx, v.Index)
		for _, c := range v.Changes {
			fmt.Fprintf(&r.out, "  %s\n", formatChange(c))
		}
		return true
	case *TxnResult:
		if v == nil {
			r.t.Fatalf("apply at %d: nil *TxnResult", idx)
		}
		r.printTxn("@"+strconv.FormatUint(idx, 10), v)
		return true
	}
	return false
}

func (r *scriptRunner) printTxn(label string, v *TxnResult) {
	switch {
	case v.Err != nil:
		fmt.Fprintf(&r.out, "%s = error: %v\n", label, v.Err)
		return
	case len(v.Errors) > 0:
		fmt.Fprintf(&r.out, "%s = rolled back index=%d\n", label, v.Index)
		for _, e := range v.Errors {
			fmt.Fprintf(&r.out, "  error op=%d %s\n", e.OpIndex, e.What)
		}
		return
	}
	fmt.Fprintf(&r.out, "%s = ok index=%d results=%d\n", label, v.Index, len(v.Results))
	for _, it := range v.Results {
		switch {
		case it.KV != nil:
			fmt.Fprintf(&r.out, "  %s\n", FormatEntry(it.KV))
		case it.Node != nil:
			fmt.Fprintf(&r.out, "  %s\n", FormatNode(it.Node))
		case it.Service != nil:
			fmt.Fprintf(&r.out, "  %s\n", FormatService("", it.Service))
		case it.Check != nil:
			fmt.Fprintf(&r.out, "  %s\n", FormatCheck(it.Check))
		default:
			r.out.WriteString("  empty result\n")
		}
	}
	for _, c := range v.Changes {
		fmt.Fprintf(&r.out, "  %s\n", formatChange(c))
	}
}

// formatSessionChange renders a session, lock or KV change.
func formatSessionChange(c Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", c.Kind, c.Op)
	if c.Key != "" || c.Kind != ChangeSession {
		fmt.Fprintf(&b, " key=%q", c.Key)
	}
	if c.Session != "" {
		fmt.Fprintf(&b, " session=%q", c.Session)
	}
	if c.Node != "" {
		fmt.Fprintf(&b, " node=%q", c.Node)
	}
	if c.Kind == ChangeLock {
		fmt.Fprintf(&b, " lock-index=%d", c.LockIndex)
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", c.Reason)
	}
	return b.String()
}
