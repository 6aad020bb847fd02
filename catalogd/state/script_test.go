package state

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt scripts")

// wantMarker separates a script's commands from its expected transcript.
const wantMarker = "-- want --"

// TestScripts runs every testdata/*.txt script. A script is a list of
// commands, one a line ('#' starts a comment line):
//
//	set KEY [VALUE] [flags=N] [lock=N] [session=S] [at=N]
//	cas KEY [VALUE] index=N [flags=N] [at=N]
//	delete KEY [at=N]
//	delete-cas KEY index=N [at=N]
//	delete-tree PREFIX [at=N]
//	op OP KEY [at=N]        any operation name, to test unknown ones
//	raw HEX [at=N]          apply these bytes as a command
//	get KEY | list PREFIX | keys PREFIX [SEPARATOR]
//	register [at=N] JSON    a structs.RegisterRequest, Go field names
//	deregister NODE [service=ID] [check=ID] [at=N]
//	nodes [meta=K:V,...]    | node NAME | node-services NAME | node-checks NAME
//	services [meta=K:V,...] | service NAME [tag=A,B] [meta=K:V,...]
//	health NAME [tag=A,B] [meta=K:V,...]     CheckServiceNodes
//	service-checks NAME [meta=K:V,...] | checks STATE [meta=K:V,...]
//	snapshot                snapshot, restore into a new store, continue there
//	dump
//
// Session, lock and transaction commands are listed in
// session_script_test.go.
//
// Writes apply at LastIndex+1 unless at= says otherwise. Strings may be
// Go-quoted. After the commands, a "-- want --" line and the transcript the
// script must produce; -update rewrites it. Every script is also replayed
// on a second store and through a snapshot, which must dump the same.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScriptFile(t, file)
		})
	}
}

func runScriptFile(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	script, want, found := strings.Cut(text, wantMarker+"\n")
	if !found {
		want = ""
	}

	r := &scriptRunner{t: t, s: New()}
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fmt.Fprintf(&r.out, "> %s\n", line)
		if err := r.run(line); err != nil {
			t.Fatalf("%s:%d: %s: %v", file, i+1, line, err)
		}
	}
	got := r.out.String()

	// The same commands on a fresh store, and a snapshot of the end state,
	// must give the same state.
	replica := New()
	for _, c := range r.applied {
		replica.Apply(c.index, c.data)
	}
	if a, b := r.s.Dump(), replica.Dump(); a != b {
		t.Errorf("replica differs:\n%s\nvs\n%s", a, b)
	}
	checkSnapshotRoundTrip(t, r.s)

	if *update {
		if err := os.WriteFile(file, []byte(script+wantMarker+"\n"+got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("%s: transcript differs (rerun with -update to accept)\n--- got\n%s--- want\n%s", file, got, want)
	}
}

type appliedCommand struct {
	index uint64
	data  []byte
}

type scriptRunner struct {
	t       *testing.T
	s       *Store
	out     bytes.Buffer
	applied []appliedCommand
}

func (r *scriptRunner) run(line string) error {
	if rest, ok := strings.CutPrefix(line, "register "); ok {
		return r.register(strings.TrimSpace(rest))
	}
	if cmd, rest, ok := strings.Cut(line, " "); ok && (cmd == "txn" || cmd == "txn-read") {
		return r.txn(cmd, strings.TrimSpace(rest))
	}
	words, err := splitWords(line)
	if err != nil {
		return err
	}
	var args []string
	opts := map[string]string{}
	for _, w := range words[1:] {
		if k, v, ok := strings.Cut(w, "="); ok && isOptName(k) {
			opts[k] = v
			continue
		}
		args = append(args, w)
	}
	num := func(name string) (uint64, error) {
		v, ok := opts[name]
		if !ok {
			return 0, nil
		}
		return strconv.ParseUint(v, 10, 64)
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}

	switch cmd := words[0]; cmd {
	case "set", "cas", "delete", "delete-cas", "delete-tree", "op":
		op := KVOp(cmd)
		if cmd == "op" {
			op, args = KVOp(arg(0)), args[min(1, len(args)):]
		}
		e := structs.KVEntry{Key: arg(0), Session: opts["session"]}
		if len(args) > 1 {
			e.Value = []byte(args[1])
		}
		var err error
		if e.Flags, err = num("flags"); err != nil {
			return err
		}
		if e.LockIndex, err = num("lock"); err != nil {
			return err
		}
		if e.ModifyIndex, err = num("index"); err != nil {
			return err
		}
		data, err := Encode(KVSType, &KVSRequest{Op: op, Entry: e})
		if err != nil {
			return err
		}
		return r.apply(data, opts)
	case "raw":
		data, err := hex.DecodeString(arg(0))
		if err != nil {
			return err
		}
		return r.apply(data, opts)
	case "get":
		idx, e, err := r.s.KVGet(nil, arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(&r.out, "index=%d\n", idx)
		if e == nil {
			r.out.WriteString("nil\n")
		} else {
			fmt.Fprintf(&r.out, "%s\n", FormatEntry(e))
		}
	case "list":
		idx, es, err := r.s.KVList(nil, arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(&r.out, "index=%d entries=%d\n", idx, len(es))
		for _, e := range es {
			fmt.Fprintf(&r.out, "%s\n", FormatEntry(e))
		}
	case "keys":
		idx, keys, err := r.s.KVKeys(nil, arg(0), arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintf(&r.out, "index=%d keys=%q\n", idx, keys)
	case "deregister":
		now, err := num("now")
		if err != nil {
			return err
		}
		data, err := Encode(DeregisterType, &structs.DeregisterRequest{Node: arg(0), ServiceID: opts["service"], CheckID: opts["check"], Now: int64(now)})
		if err != nil {
			return err
		}
		return r.apply(data, opts)
	case "nodes", "node", "node-services", "node-checks", "services", "service", "health", "service-checks", "checks":
		return r.catalogRead(cmd, arg(0), opts)
	case "snapshot":
		var buf bytes.Buffer
		before := r.s.Dump()
		idx, err := r.s.Snapshot(&buf)
		if err != nil {
			return err
		}
		restored := New()
		ridx, err := restored.Restore(&buf)
		if err != nil {
			return err
		}
		if after := restored.Dump(); after != before {
			return fmt.Errorf("restored state differs:\n%s\nvs\n%s", after, before)
		}
		fmt.Fprintf(&r.out, "snapshot index=%d restored index=%d\n", idx, ridx)
		r.s = restored
	case "dump":
		r.out.WriteString(r.s.Dump())
	default:
		if ok, err := r.sessionRun(cmd, args, opts); ok {
			return err
		}
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

func isOptName(k string) bool {
	switch k {
	case "flags", "lock", "session", "index", "at", "service", "check", "tag", "meta",
		"now", "reason", "node", "checks", "service-checks", "delay", "behavior", "ttl", "name":
		return true
	}
	return false
}

func (r *scriptRunner) apply(data []byte, opts map[string]string) error {
	idx := r.s.LastIndex() + 1
	if v, ok := opts["at"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return err
		}
		idx = n
	}
	res := r.s.Apply(idx, data)
	r.applied = append(r.applied, appliedCommand{idx, data})
	if r.printResult(idx, res) {
		return nil
	}
	cr, ok := res.(*CatalogResult)
	switch {
	case !ok:
		fmt.Fprintf(&r.out, "@%d = %v\n", idx, res)
		for _, c := range r.s.LockChanges(idx) {
			fmt.Fprintf(&r.out, "  %s\n", formatChange(c))
		}
	case cr == nil:
		r.t.Fatalf("apply at %d: nil *CatalogResult", idx)
	case cr.Err != nil:
		fmt.Fprintf(&r.out, "@%d = error: %v\n", idx, cr.Err)
	default:
		fmt.Fprintf(&r.out, "@%d = ok\n", idx)
		for _, c := range cr.Changes {
			fmt.Fprintf(&r.out, "  %s\n", formatChange(c))
		}
	}
	return nil
}

// splitWords splits a line on spaces; a Go-quoted part (a whole word or
// the value after name=) may contain spaces and escapes.
func splitWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
	)
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
			i++
		case c == '"':
			q, err := strconv.QuotedPrefix(line[i:])
			if err != nil {
				return nil, fmt.Errorf("bad quoted string at column %d: %w", i+1, err)
			}
			s, _ := strconv.Unquote(q)
			cur.WriteString(s)
			in = true
			i += len(q)
		default:
			cur.WriteByte(c)
			in = true
			i++
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// checkSnapshotRoundTrip restores s's snapshot into a new store and
// compares dumps.
func checkSnapshotRoundTrip(t *testing.T, s *Store) {
	t.Helper()
	var buf bytes.Buffer
	idx, err := s.Snapshot(&buf)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	r := New()
	ridx, err := r.Restore(&buf)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if ridx != idx || r.LastIndex() != idx {
		t.Errorf("restore index %d, last %d, want %d", ridx, r.LastIndex(), idx)
	}
	if a, b := s.Dump(), r.Dump(); a != b {
		t.Errorf("restored dump differs:\n%s\nvs\n%s", b, a)
	}
	if !reflect.DeepEqual(catalogObjects(t, s), catalogObjects(t, r)) {
		t.Errorf("restored catalog records differ")
	}
}
