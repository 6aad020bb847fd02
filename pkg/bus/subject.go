package bus

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "consort"

// Member event kinds, the last token of Subjects.Member.
const (
	MemberJoin   = "join"
	MemberLeave  = "leave"
	MemberFailed = "failed"
	MemberUpdate = "update"
	MemberReap   = "reap"
)

// Subjects builds event subjects under a prefix (config nats.subject_prefix;
// DefaultPrefix when empty). Names from users (services, nodes, events)
// pass through EncodeToken, so each is exactly one token. The zero value
// is usable.
type Subjects struct {
	Prefix string
}

func (s Subjects) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// RaftLeader is "<prefix>.raft.leader", published by raftd.
func (s Subjects) RaftLeader() string { return s.p() + ".raft.leader" }

// KV is "<prefix>.kv", published by catalogd after KV writes.
func (s Subjects) KV() string { return s.p() + ".kv" }

// Member is "<prefix>.member.<kind>", kind one of MemberJoin etc.
func (s Subjects) Member(kind string) string { return s.p() + ".member." + EncodeToken(kind) }

// Event is "<prefix>.event.<name>" for a serf user event.
func (s Subjects) Event(name string) string { return s.p() + ".event." + EncodeToken(name) }

// CatalogService is "<prefix>.catalog.service.<name>".
func (s Subjects) CatalogService(name string) string {
	return s.p() + ".catalog.service." + EncodeToken(name)
}

// CatalogNode is "<prefix>.catalog.node.<name>".
func (s Subjects) CatalogNode(name string) string {
	return s.p() + ".catalog.node." + EncodeToken(name)
}

// Health is "<prefix>.health.<service>". Node-level checks (not tied to
// a service) are published under the empty service name ("~") and also
// under every service name on their node; see the Health payload.
func (s Subjects) Health(service string) string { return s.p() + ".health." + EncodeToken(service) }

// All is "<prefix>.>", every event.
func (s Subjects) All() string { return s.p() + ".>" }

// Escape is the byte that starts an escape in an encoded token.
const Escape = '~'

// emptyToken stands for the empty name; no other encoding is a lone "~".
const emptyToken = "~"

const upperHex = "0123456789ABCDEF"

// plain reports whether c is kept as is by EncodeToken.
func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// EncodeToken turns any string into one NATS subject token made only of
// [A-Za-z0-9_-~]. Bytes in [A-Za-z0-9_-] are kept; every other byte
// (including '~', '.', '*', '>', space and each byte of a multi-byte or
// invalid UTF-8 sequence) becomes '~' and two upper-case hex digits. The
// empty string becomes "~". DecodeToken reverses it.
func EncodeToken(s string) string {
	if s == "" {
		return emptyToken
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(Escape)
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xf])
	}
	return b.String()
}

// ErrBadToken is returned by DecodeToken for text EncodeToken never makes.
var ErrBadToken = errors.New("bad subject token")

// DecodeToken reverses EncodeToken. It accepts only the exact output of
// EncodeToken (upper-case hex, no escaped plain bytes), so every token
// that decodes re-encodes to itself.
func DecodeToken(tok string) (string, error) {
	if tok == emptyToken {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty", ErrBadToken)
	}
	if strings.IndexByte(tok, Escape) < 0 {
		for i := 0; i < len(tok); i++ {
			if !plain(tok[i]) {
				return "", fmt.Errorf("%w: byte %#x at %d", ErrBadToken, tok[i], i)
			}
		}
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plain(c) {
			out = append(out, c)
			continue
		}
		if c != Escape {
			return "", fmt.Errorf("%w: byte %#x at %d", ErrBadToken, c, i)
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: short escape at %d", ErrBadToken, i)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad escape at %d", ErrBadToken, i)
		}
		v := hi<<4 | lo
		if plain(v) {
			return "", fmt.Errorf("%w: needless escape at %d", ErrBadToken, i)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

// unhex reads one upper-case hex digit.
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ValidToken reports whether tok could be a token made by EncodeToken:
// non-empty and only [A-Za-z0-9_-~]. It does not check escapes.
func ValidToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if !plain(tok[i]) && tok[i] != Escape {
			return false
		}
	}
	return true
}

// MatchSubject reports whether subject matches a NATS subscription
// pattern, with "*" for one token and a final ">" for one or more.
func MatchSubject(pattern, subject string) bool {
	pt := strings.Split(pattern, ".")
	st := strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" && i == len(pt)-1 {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		if p != "*" && p != st[i] {
			return false
		}
	}
	return len(pt) == len(st)
}
