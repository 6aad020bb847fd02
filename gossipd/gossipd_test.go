package gossipd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
	"github.com/consort-io/consort/pkg/gossipapi"
)

// TestCluster runs three gossipds on loopback through a life: retry_join,
// members over the socket, a user event, a kill seen as failed, a restart
// rejoining from the snapshot, a graceful leave, and a force-leave.
func TestCluster(t *testing.T) {
	aPort := freePort(t)
	aAddr := fmt.Sprintf("127.0.0.1:%d", aPort)

	// b and c start first and retry until a is up.
	bc := testConfig(t, "b", t.TempDir(), 0)
	bc.Server, bc.WANPort = true, 0
	bc.RetryJoin = []string{aAddr}
	b := start(t, bc)
	cDir := t.TempDir()
	cc := testConfig(t, "c", cDir, 0)
	cc.RetryJoin = []string{aAddr}
	c := start(t, cc)
	ac := testConfig(t, "a", t.TempDir(), aPort)
	ac.Server, ac.WANPort, ac.BootstrapExpect, ac.ServerPort = true, 0, 2, 18300
	a := start(t, ac)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch, err := a.client.WatchMembers(ctx, gossipapi.PoolLAN)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	first, err := watch.Recv()
	if err != nil || !first.Full || first.Self != "a" {
		t.Fatalf("first watch item = %+v, %v; want a full list", first, err)
	}

	for _, n := range []*node{a, b, c} {
		waitFor(t, n.name+" sees three alive", 10*time.Second, func() bool {
			return n.status(t, "", "a") == "alive" && n.status(t, "", "b") == "alive" && n.status(t, "", "c") == "alive"
		})
	}
	r, err := a.client.Members(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]map[string]string{}
	for _, m := range r.Members {
		tags[m.Name] = m.Tags
	}
	if got := tags["a"]; got["role"] != "consul" || got["dc"] != "dc1" || got["id"] != "id-a" ||
		got["port"] != "18300" || got["expect"] != "2" || got["vsn"] != "2" || got["build"] != DefaultBuild ||
		got["wan_join_port"] == "" {
		t.Errorf("a's tags = %v", got)
	}
	if got := tags["c"]; got["role"] != "node" || got["port"] != "" || got["id"] != "id-c" {
		t.Errorf("c's tags = %v", got)
	}
	a.rec.Expect(t, 5*time.Second, memberEvent(bus.MemberJoin, "c"))
	if _, err := c.client.Members(ctx, gossipapi.PoolWAN); !errors.Is(err, gossipapi.ErrNoWAN) {
		t.Errorf("client's WAN members: err = %v, want ErrNoWAN", err)
	}

	// The WAN pool: b joins a's through the socket.
	if n, err := b.client.Join(ctx, []string{a.d.WANAddr()}, true); err != nil || n != 1 {
		t.Fatalf("WAN join = %d, %v", n, err)
	}
	waitFor(t, "a sees b in the WAN pool", 5*time.Second, func() bool { return a.status(t, "wan", "b.dc1") == "alive" })

	// A user event from b reaches a and c, and is published there.
	if err := b.client.UserEvent(ctx, "deploy", []byte("v2"), false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, c} {
		e := n.rec.Expect(t, 5*time.Second, bustest.Subject(bus.Subjects{}.Event("deploy")))
		var ue bus.UserEvent
		if err := e.Decode(&ue); err != nil || ue.Kind != bus.KindEvent || ue.Name != "deploy" ||
			string(ue.Payload) != "v2" || ue.LTime == 0 || ue.Observer != n.name {
			t.Errorf("%s: user event = %+v, %v", n.name, ue, err)
		}
	}
	if err := b.client.UserEvent(ctx, "big", make([]byte, 600), false); !errors.Is(err, gossipapi.ErrEventTooLarge) {
		t.Errorf("large user event: err = %v, want ErrEventTooLarge", err)
	}

	// Kill c: the others see it failed.
	cPort := c.lanPort(t)
	c.stop(t)
	waitFor(t, "a sees c failed", 10*time.Second, func() bool { return a.status(t, "", "c") == "failed" })
	e := a.rec.Expect(t, 5*time.Second, memberEvent(bus.MemberFailed, "c"))
	var m bus.Member
	if err := e.Decode(&m); err != nil || m.Kind != bus.KindMember || m.Status != "failed" || m.Pool != "lan" ||
		m.Datacenter != "dc1" || m.Observer != "a" || m.Address != "127.0.0.1" || m.Port != cPort || m.Tags["role"] != "node" {
		t.Errorf("member.failed payload = %+v, %v", m, err)
	}
	if e.Subject != "consort.member.failed" {
		t.Errorf("subject = %q", e.Subject)
	}

	// Restart c with its data dir and no retry_join: the snapshot rejoins.
	mark := a.rec.Len()
	cc2 := testConfig(t, "c", cDir, cPort)
	c = start(t, cc2)
	waitFor(t, "a sees c alive again", 10*time.Second, func() bool { return a.status(t, "", "c") == "alive" })
	if _, _, err := a.rec.WaitAfter(ctx, mark, memberEvent(bus.MemberJoin, "c")); err != nil {
		t.Error(err)
	}

	// Graceful leave.
	if err := c.client.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a sees c left", 10*time.Second, func() bool { return a.status(t, "", "c") == "left" })
	a.rec.Expect(t, 5*time.Second, memberEvent(bus.MemberLeave, "c"))
	if _, err := c.client.Members(ctx, ""); !errors.Is(err, gossipapi.ErrLeft) {
		t.Errorf("members after leave: err = %v, want ErrLeft", err)
	}

	// The watch saw the failure and the leave, in order.
	sawFailed := false
	for {
		it, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if len(it.Members) == 1 && it.Members[0].Name == "c" {
			if it.Change == gossipapi.ChangeFailed {
				sawFailed = true
			}
			if it.Change == gossipapi.ChangeLeave {
				break
			}
		}
	}
	if !sawFailed {
		t.Error("watch: no failed change for c before its leave")
	}

	// Kill b and force it out with prune: a forgets it.
	b.stop(t)
	waitFor(t, "a sees b failed", 10*time.Second, func() bool { return a.status(t, "", "b") == "failed" })
	if err := a.client.ForceLeave(ctx, "nope", false, false); !errors.Is(err, gossipapi.ErrNoNode) {
		t.Errorf("force-leave of an unknown node: err = %v, want ErrNoNode", err)
	}
	if err := a.client.ForceLeave(ctx, "b", true, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a forgets b", 5*time.Second, func() bool { return a.status(t, "", "b") == "" })
	a.rec.Expect(t, 5*time.Second, memberEvent(bus.MemberReap, "b"))
}
