package raftd

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/raftapi"
)

func TestConfigFromNode(t *testing.T) {
	n := config.Defaults()
	n.NodeID = "id-1"
	n.Server = true
	n.BootstrapExpect = 3
	n.RetryJoin = []string{"10.0.0.2", "10.0.0.3:9300"}
	n.AdvertiseAddr = "10.0.0.1"
	n.DataDir = "/data"
	n.RunDir = "/run/c"
	n.Raft.Multiplier = 2
	c := ConfigFromNode(n)
	want := map[string][2]any{
		"id":        {c.ID, "id-1"},
		"bind":      {c.Bind, "0.0.0.0:8300"},
		"advertise": {c.Advertise, "10.0.0.1:8300"},
		"data":      {c.DataDir, "/data/raftd"},
		"socket":    {c.SocketPath, "/run/c/raftd.sock"},
		"catalog":   {c.CatalogSocket, "/run/c/catalogd.sock"},
		"peers":     {strings.Join(c.Peers, ","), "10.0.0.2:8300,10.0.0.3:9300"},
		"expect":    {c.BootstrapExpect, 3},
		"subjects":  {c.Subjects, "consort"},
		"mult":      {c.Multiplier, 2},
		"threshold": {c.SnapshotThreshold, uint64(8192)},
	}
	for k, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s: got %v, want %v", k, v[0], v[1])
		}
	}
	full := c.withDefaults()
	if full.HeartbeatTimeout != 2*time.Second || full.LeaderLeaseTimeout != time.Second {
		t.Errorf("multiplier 2 timing: %v %v", full.HeartbeatTimeout, full.LeaderLeaseTimeout)
	}
	if err := full.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.ID = "x"
	ok = ok.withDefaults()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "id is required"},
		{"bad bind", func(c *Config) { c.Bind = "nope" }, "bind"},
		{"disabled port", func(c *Config) { c.Bind = "0.0.0.0:-1" }, "port must be"},
		{"both bootstraps", func(c *Config) { c.Bootstrap, c.BootstrapExpect = true, 3 }, "mutually exclusive"},
		{"multiplier", func(c *Config) { c.Multiplier = 11 }, "raft_multiplier"},
		{"bad peer", func(c *Config) { c.Peers = []string{"10.0.0.1"} }, "peer"},
		{"lease", func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }, "lease"},
		{"two problems", func(c *Config) { c.ID, c.SocketPath = "", "" }, "socket path"},
	} {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestAdvertiseAddr(t *testing.T) {
	l := tcpAddr("127.0.0.1:4000")
	for _, tc := range []struct{ adv, listen, want string }{
		{"", "127.0.0.1:4000", "127.0.0.1:4000"},
		{"10.1.1.1", "127.0.0.1:4000", "10.1.1.1:4000"},
		{"10.1.1.1:9", "127.0.0.1:4000", "10.1.1.1:9"},
		{"[::1]:7", "127.0.0.1:4000", "[::1]:7"},
	} {
		got, err := advertiseAddr(tc.adv, tcpAddr(tc.listen))
		if err != nil || got != tc.want {
			t.Errorf("advertise %q listen %q: %q %v, want %q", tc.adv, tc.listen, got, err, tc.want)
		}
	}
	if _, err := advertiseAddr("0.0.0.0", l); err == nil {
		t.Error("unspecified advertise accepted")
	}
}

// The raft port routes by first byte: RPCPreamble serves Status (and not
// Feed), an unknown byte is closed.
func TestRaftPortMux(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "n1", listen(t, ""))
	cfg.Bootstrap = true
	n := start(t, cfg)
	waitLeader(t, n)

	ic := ipc.NewClient(n.addr, ipc.TCPDialer(n.addr, []byte{RPCPreamble}))
	defer ic.Close()
	rc := raftapi.NewClient(ic)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := rc.Status(ctx)
	if err != nil || s.ID != "n1" || s.Address != n.addr {
		t.Fatalf("status over the raft port: %+v %v", s, err)
	}
	if idx, err := rc.Apply(ctx, []byte("remote")); err != nil || idx == 0 {
		t.Fatalf("apply on the leader's raft port: %d %v", idx, err)
	}
	st, err := rc.Feed(ctx, 0)
	if err == nil {
		_, err = st.Recv()
		st.Close()
	}
	if !errors.Is(err, ipc.ErrUnknownMethod) {
		t.Fatalf("feed over the raft port: %v, want unknown method", err)
	}

	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x7f, 1, 2, 3})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed by the server: EOF, or a reset since our bytes went unread.
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("unknown preamble: read %v, want the connection closed", err)
	}
}

// A forwarded call is retried only when it never left: a failed dial. A
// connection that breaks after the request went out is outcome unknown.
func TestNotSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	closed := listen(t, "")
	addr := closed.Addr().String()
	closed.Close()
	_, err := dialRaftd(addr).Apply(ctx, []byte("x"))
	if !notSent(err) {
		t.Fatalf("dial refused: %v, want not sent", err)
	}

	// A server that reads the request and hangs up.
	ln := listen(t, "")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}()
	_, err = dialRaftd(ln.Addr().String()).Apply(ctx, []byte("x"))
	if err == nil || notSent(err) || !errors.Is(err, ipc.ErrUnavailable) {
		t.Fatalf("connection lost after sending: %v, want unavailable and not retryable", err)
	}
}
