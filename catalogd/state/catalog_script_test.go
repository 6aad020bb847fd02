package state

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// register applies a RegisterType command from "[at=N] JSON".
func (r *scriptRunner) register(rest string) error {
	opts := map[string]string{}
	if at, ok := strings.CutPrefix(rest, "at="); ok {
		n, tail, _ := strings.Cut(at, " ")
		opts["at"], rest = n, tail
	}
	var req structs.RegisterRequest
	dec := json.NewDecoder(strings.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("register json: %w", err)
	}
	data, err := Encode(RegisterType, &req)
	if err != nil {
		return err
	}
	return r.apply(data, opts)
}

// catalogRead runs one catalog read command and prints its result.
func (r *scriptRunner) catalogRead(cmd, name string, opts map[string]string) error {
	meta, err := parseMeta(opts["meta"])
	if err != nil {
		return err
	}
	var tags []string
	if t := opts["tag"]; t != "" {
		tags = strings.Split(t, ",")
	}
	out := &r.out
	switch cmd {
	case "nodes":
		idx, nodes, err := r.s.Nodes(nil, meta)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d nodes=%d\n", idx, len(nodes))
		for _, n := range nodes {
			fmt.Fprintf(out, "%s\n", FormatNode(n))
		}
	case "node":
		idx, n, err := r.s.GetNode(nil, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d\n", idx)
		if n == nil {
			out.WriteString("nil\n")
		} else {
			fmt.Fprintf(out, "%s\n", FormatNode(n))
		}
	case "node-services":
		idx, n, svcs, err := r.s.NodeServices(nil, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d services=%d\n", idx, len(svcs))
		if n == nil {
			out.WriteString("nil\n")
			break
		}
		fmt.Fprintf(out, "%s\n", FormatNode(n))
		for _, svc := range svcs {
			fmt.Fprintf(out, "%s\n", FormatService(n.Node, svc))
		}
	case "node-checks":
		idx, checks, err := r.s.NodeChecks(nil, name)
		if err != nil {
			return err
		}
		printChecks(out, idx, checks)
	case "services":
		idx, svcs, err := r.s.Services(nil, meta)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d services=%d\n", idx, len(svcs))
		for _, name := range sortedKeys(svcs) {
			fmt.Fprintf(out, "%s %q\n", name, svcs[name])
		}
	case "service":
		idx, sns, err := r.s.ServiceNodes(nil, name, tags, meta)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d instances=%d\n", idx, len(sns))
		for _, sn := range sns {
			fmt.Fprintf(out, "%s node-address=%q\n", FormatService(sn.Node.Node, sn.Service), sn.Node.Address)
		}
	case "health":
		idx, csns, err := r.s.CheckServiceNodes(nil, name, tags, meta)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "index=%d instances=%d\n", idx, len(csns))
		for _, csn := range csns {
			fmt.Fprintf(out, "%s\n", FormatService(csn.Node.Node, csn.Service))
			for _, c := range csn.Checks {
				fmt.Fprintf(out, "  %s\n", FormatCheck(c))
			}
		}
	case "service-checks":
		idx, checks, err := r.s.ServiceChecks(nil, name, meta)
		if err != nil {
			return err
		}
		printChecks(out, idx, checks)
	case "checks":
		idx, checks, err := r.s.ChecksInState(nil, name, meta)
		if err != nil {
			return err
		}
		printChecks(out, idx, checks)
	}
	return nil
}

func printChecks(out interface{ Write([]byte) (int, error) }, idx uint64, checks []*structs.HealthCheck) {
	fmt.Fprintf(out, "index=%d checks=%d\n", idx, len(checks))
	for _, c := range checks {
		fmt.Fprintf(out, "%s\n", FormatCheck(c))
	}
}

// parseMeta reads "k:v,k2:v2".
func parseMeta(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("bad meta pair %q", pair)
		}
		m[k] = v
	}
	return m, nil
}

// formatChange renders a Change on one line for transcripts.
func formatChange(c Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", c.Kind, c.Op, c.Node)
	switch c.Kind {
	case ChangeSession, ChangeLock, ChangeKV:
		return formatSessionChange(c)
	case ChangeService:
		fmt.Fprintf(&b, " %q name=%q", c.ServiceID, c.ServiceName)
	case ChangeCheck:
		fmt.Fprintf(&b, " %q", c.CheckID)
		if c.ServiceID != "" || c.ServiceName != "" {
			fmt.Fprintf(&b, " service=%q name=%q", c.ServiceID, c.ServiceName)
		}
		fmt.Fprintf(&b, " %q->%q", c.OldStatus, c.NewStatus)
		if c.Output != "" {
			fmt.Fprintf(&b, " output=%q", c.Output)
		}
	}
	return b.String()
}
