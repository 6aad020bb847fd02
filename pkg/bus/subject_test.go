package bus

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSubjects(t *testing.T) {
	s := Subjects{}
	p := Subjects{Prefix: "prod.consort"}
	for _, tt := range []struct{ got, want string }{
		{s.RaftLeader(), "consort.raft.leader"},
		{s.KV(), "consort.kv"},
		{s.Member(MemberJoin), "consort.member.join"},
		{s.Event("deploy"), "consort.event.deploy"},
		{s.Event("deploy.v2"), "consort.event.deploy~2Ev2"},
		{s.CatalogService("web"), "consort.catalog.service.web"},
		{s.CatalogService("my_svc-2"), "consort.catalog.service.my_svc-2"},
		{s.CatalogService(""), "consort.catalog.service.~"},
		{s.CatalogNode("node 1"), "consort.catalog.node.node~201"},
		{s.Health("redis"), "consort.health.redis"},
		{s.Health("*"), "consort.health.~2A"},
		{s.All(), "consort.>"},
		{p.KV(), "prod.consort.kv"},
		{p.Health(">"), "prod.consort.health.~3E"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTokenEncoding(t *testing.T) {
	for _, tt := range []struct{ in, tok string }{
		{"", "~"},
		{"web", "web"},
		{"Web_API-2", "Web_API-2"},
		{"a.b", "a~2Eb"},
		{"*", "~2A"},
		{">", "~3E"},
		{"a b\tc", "a~20b~09c"},
		{"~", "~7E"},
		{"~2E", "~7E2E"},
		{"é", "~C3~A9"},
		{"\xff\x00", "~FF~00"},
	} {
		if got := EncodeToken(tt.in); got != tt.tok {
			t.Errorf("EncodeToken(%q) = %q, want %q", tt.in, got, tt.tok)
		}
		back, err := DecodeToken(tt.tok)
		if err != nil || back != tt.in {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", tt.tok, back, err, tt.in)
		}
	}
	for _, bad := range []string{
		"", "a.b", "a b", "*", ">", "~2e", "~41", "~~", "a~", "a~2", "~G0", "é", "~7e", "~2E~",
	} {
		if got, err := DecodeToken(bad); err == nil {
			t.Errorf("DecodeToken(%q) = %q, want error", bad, got)
		}
	}
}

func TestMatchSubject(t *testing.T) {
	for _, tt := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"a.*.c", "a.b.c", true},
		{"a.b.c", "a.b", false},
	} {
		if got := MatchSubject(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("MatchSubject(%q, %q) = %v", tt.pattern, tt.subject, got)
		}
	}
}

// checkToken fails unless tok is one valid NATS token of [A-Za-z0-9_-~].
func checkToken(t *testing.T, tok string) {
	t.Helper()
	if !ValidToken(tok) || strings.ContainsAny(tok, ".*> \t\r\n") || !utf8.ValidString(tok) {
		t.Fatalf("invalid token %q", tok)
	}
}

func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{"", "web", "a.b", "*", ">", "~", "~2E", "a b", "é", "\xff", "consort.kv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		checkToken(t, tok)
		back, err := DecodeToken(tok)
		if err != nil {
			t.Fatalf("DecodeToken(EncodeToken(%q)) error: %v", s, err)
		}
		if back != s {
			t.Fatalf("round trip %q -> %q -> %q", s, tok, back)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range []string{"", "~", "~~", "web", "a~2Eb", "~2e", "~41", "a~", "~C3~A9", "a.b", "~FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		s, err := DecodeToken(tok)
		if err != nil {
			return
		}
		checkToken(t, tok)
		if again := EncodeToken(s); again != tok {
			t.Fatalf("DecodeToken(%q) = %q, which encodes to %q", tok, s, again)
		}
	})
}
