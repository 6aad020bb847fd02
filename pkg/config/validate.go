package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
)

// Validate reports every problem with n, joined. It never changes n.
// Load calls it; a program building a Node by hand should too.
func (n Node) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkNodeName(n.NodeName); err != nil {
		bad("node_name: %w", err)
	}
	if n.NodeID != "" && !ValidNodeID(n.NodeID) {
		bad("node_id: want a UUID like 3f2a9c1e-8d4b-4f7a-9e21-5c6d7e8f9a0b, got %q", n.NodeID)
	}
	if !validDatacenter(n.Datacenter) {
		bad("datacenter: want lower-case letters, digits, '_' or '-', got %q", n.Datacenter)
	}

	switch {
	case n.BootstrapExpect < 0:
		bad("bootstrap_expect: want 0 or more, got %d", n.BootstrapExpect)
	case n.Bootstrap && n.BootstrapExpect > 0:
		bad("bootstrap and bootstrap_expect are exclusive: set one")
	}
	if !n.Server {
		if n.Bootstrap {
			bad("bootstrap: server-only option on a client (server = false)")
		}
		if n.BootstrapExpect > 0 {
			bad("bootstrap_expect: server-only option on a client (server = false)")
		}
	}
	for i, j := range n.RetryJoin {
		if strings.TrimSpace(j) == "" {
			bad("retry_join[%d]: empty address", i)
		}
	}

	checkAddr := func(key, s string, allowEmpty, allowUnspecified bool) {
		if s == "" {
			if !allowEmpty {
				bad("%s: want an IP address, got nothing", key)
			}
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			bad("%s: want an IP address, got %q", key, s)
			return
		}
		if a.IsUnspecified() && !allowUnspecified {
			bad("%s: %s cannot be advertised; give this node's address", key, s)
		}
	}
	checkAddr("bind_addr", n.BindAddr, false, true)
	checkAddr("advertise_addr", n.AdvertiseAddr, true, false)
	checkAddr("client_addr", n.ClientAddr, false, true)

	if n.DataDir == "" {
		bad("data_dir: must be set")
	}
	if n.RunDir == "" {
		bad("run_dir: must be set")
	}
	if _, err := parseLevel(n.LogLevel); err != nil {
		bad("log_level: %w", err)
	}

	errs = append(errs, n.Ports.validate(n.Server))

	if err := checkNATSURL(n.NATS.URL); err != nil {
		bad("nats.url: %w", err)
	}
	if !validSubjectPrefix(n.NATS.SubjectPrefix) {
		bad("nats.subject_prefix: want dot-separated tokens without spaces, '*' or '>', got %q", n.NATS.SubjectPrefix)
	}

	if n.Raft.SnapshotThreshold == 0 {
		bad("raft.snapshot_threshold: want 1 or more")
	}
	if n.Raft.SnapshotInterval <= 0 {
		bad("raft.snapshot_interval: want a positive duration, got %s", n.Raft.SnapshotInterval)
	}
	if n.Raft.Multiplier < 1 || n.Raft.Multiplier > 10 {
		bad("raft.raft_multiplier: want 1-10, got %d", n.Raft.Multiplier)
	}
	if n.Limits.KVMaxValueSize < 1 {
		bad("limits.kv_max_value_size: want 1 or more, got %d", n.Limits.KVMaxValueSize)
	}
	return errors.Join(errs...)
}

// validate checks each port is 1-65535 or -1 (off), that the ports a
// server needs are on, and that no two listeners share a number.
func (p Ports) validate(server bool) error {
	var errs []error
	ports := []struct {
		key      string
		v        int
		required bool // may not be -1
	}{
		{"ports.raft", p.Raft, server},
		{"ports.serf_lan", p.SerfLAN, true},
		{"ports.serf_wan", p.SerfWAN, false},
		{"ports.server", p.Server, server},
		{"ports.http", p.HTTP, false},
		{"ports.dns", p.DNS, false},
	}
	seen := map[int]string{}
	for _, e := range ports {
		switch {
		case e.v == -1 && e.required:
			errs = append(errs, fmt.Errorf("%s: cannot be disabled on this node", e.key))
		case e.v == -1:
		case e.v < 1 || e.v > 65535:
			errs = append(errs, fmt.Errorf("%s: want 1-65535, or -1 to disable, got %d", e.key, e.v))
		default:
			if prev, dup := seen[e.v]; dup {
				errs = append(errs, fmt.Errorf("%s: port %d already used by %s", e.key, e.v, prev))
			}
			seen[e.v] = e.key
		}
	}
	return errors.Join(errs...)
}

// checkNodeName allows what a hostname holds: letters, digits, '-', '_'
// and '.', at most 128 bytes, starting with a letter or digit.
func checkNodeName(s string) error {
	if s == "" {
		return errors.New("must be set")
	}
	if len(s) > 128 {
		return fmt.Errorf("at most 128 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || (i > 0 && (c == '-' || c == '_' || c == '.')) {
			continue
		}
		return fmt.Errorf("want letters, digits, '-', '_' or '.', starting with a letter or digit, got %q", s)
	}
	return nil
}

// validDatacenter matches Consul's rule: ^[a-z0-9_-]+$.
func validDatacenter(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkNATSURL accepts what nats.go accepts: comma-separated server URLs,
// each nats://, tls://, ws:// or wss:// (or bare host:port).
func checkNATSURL(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must be set")
	}
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		pu, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("bad URL %q", u)
		}
		switch pu.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("unsupported scheme %q in %q", pu.Scheme, u)
		}
		if pu.Hostname() == "" {
			return fmt.Errorf("no host in %q", u)
		}
	}
	return nil
}

// validSubjectPrefix: one or more non-empty NATS tokens joined by dots.
func validSubjectPrefix(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

// LevelTrace is below slog.LevelDebug; log_level "trace" selects it.
const LevelTrace = slog.LevelDebug - 4

// parseLevel reads a log_level: trace, debug, info, warn(ing), err(or),
// any case.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("want trace, debug, info, warn or error, got %q", s)
}
