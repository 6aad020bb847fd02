package catalogd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consort-io/consort/catalogd/catalogdtest"
	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/hashicorp/consul/api"
)

// recvUpdate reads one stream item, failing the test after a deadline.
func recvUpdate(t *testing.T, st *ipc.StreamReader[catalogapi.ChecksUpdate]) *catalogapi.ChecksUpdate {
	t.Helper()
	type res struct {
		u   *catalogapi.ChecksUpdate
		err error
	}
	ch := make(chan res, 1)
	go func() {
		u, err := st.Recv()
		ch <- res{u, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.u
	case <-time.After(10 * time.Second):
		t.Fatal("no check update within 10s")
	}
	return nil
}

func TestChecksSocket(t *testing.T) {
	n := startAgentNode(t, catalogdtest.Start(t))
	ag := n.api.Agent()
	if err := ag.ServiceRegister(ttlRegistration("web")); err != nil {
		t.Fatal(err)
	}
	if err := ag.PassTTL("web-ttl", "alive"); err != nil {
		t.Fatal(err)
	}
	// Maintenance checks are not the runner's business.
	if err := ag.EnableNodeMaintenance("x"); err != nil {
		t.Fatal(err)
	}

	cl := catalogapi.Dial(n.socket)
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := cl.WatchChecks(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// The full set first, with current status and output.
	u := recvUpdate(t, st)
	if !u.Full || len(u.Checks) != 1 {
		t.Fatalf("first item: %+v", u)
	}
	c := u.Checks[0]
	if c.CheckID != "web-ttl" || c.Status != "passing" || c.Output != "alive" || c.ServiceID != "web-1" ||
		c.ServiceName != "web" || c.Definition.TTL != int64(30*time.Second) {
		t.Fatalf("check definition: %+v", c)
	}

	// A new check is sent; status changes alone are not.
	if err := ag.CheckRegister(&api.AgentCheckRegistration{Name: "disk", AgentServiceCheck: api.AgentServiceCheck{
		TCP: "127.0.0.1:1", Interval: "5s"}}); err != nil {
		t.Fatal(err)
	}
	u = recvUpdate(t, st)
	if u.Full || len(u.Checks) != 1 || u.Checks[0].CheckID != "disk" || u.Checks[0].Status != "critical" || u.Checks[0].Definition.TCP != "127.0.0.1:1" {
		t.Fatalf("added check: %+v", u)
	}
	if err := ag.FailTTL("web-ttl", ""); err != nil {
		t.Fatal(err)
	}
	// A changed definition is sent with the status the check has.
	reg := ttlRegistration("web")
	reg.Check.TTL = "45s"
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	u = recvUpdate(t, st)
	if len(u.Checks) != 1 || u.Checks[0].CheckID != "web-ttl" || u.Checks[0].Status != "critical" || u.Checks[0].Definition.TTL != int64(45*time.Second) {
		t.Fatalf("changed check: %+v", u)
	}

	// Reports: status changes reach the agent and the catalog; unknown IDs
	// come back.
	resp, err := cl.ReportChecks(ctx, []catalogapi.CheckResult{
		{CheckID: "disk", Status: "passing", Output: "TCP connect 127.0.0.1:1: Success"},
		{CheckID: "gone", Status: "passing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Unknown) != 1 || resp.Unknown[0] != "gone" {
		t.Errorf("unknown: %v", resp.Unknown)
	}
	checks, _ := ag.Checks()
	if c := checks["disk"]; c.Status != "passing" || c.Output != "TCP connect 127.0.0.1:1: Success" {
		t.Errorf("agent check after report: %+v", c)
	}
	waitFor(t, "reported status in the catalog", func() bool {
		hc, _, _ := n.api.Health().State("passing", nil)
		for _, c := range hc {
			if c.CheckID == "disk" {
				return true
			}
		}
		return false
	})

	// A bad status refuses the whole report.
	_, err = cl.ReportChecks(ctx, []catalogapi.CheckResult{{CheckID: "disk", Status: "critical"}, {CheckID: "disk", Status: "down"}})
	if !errors.Is(err, ipc.ErrBadRequest) {
		t.Errorf("bad status: %v", err)
	}
	if checks, _ := ag.Checks(); checks["disk"].Status != "passing" {
		t.Errorf("refused report changed the check: %+v", checks["disk"])
	}

	// Deregister removes the service; the stream says its check is gone.
	if _, err := cl.ReportChecks(ctx, []catalogapi.CheckResult{{CheckID: "web-ttl", Status: "critical", Deregister: true}}); err != nil {
		t.Fatal(err)
	}
	u = recvUpdate(t, st)
	if len(u.Removed) != 1 || u.Removed[0] != "web-ttl" {
		t.Fatalf("removed: %+v", u)
	}
	if svcs, _ := ag.Services(); svcs["web-1"] != nil {
		t.Error("service not deregistered")
	}
	waitFor(t, "service gone from the catalog", func() bool {
		cs, _, _ := n.api.Catalog().Service("web", "", nil)
		return len(cs) == 0
	})

	// A runner that reconnects gets the full set again, statuses kept.
	st.Close()
	st2, err := cl.WatchChecks(ctx, "test-again")
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	u = recvUpdate(t, st2)
	if !u.Full || len(u.Checks) != 1 || u.Checks[0].CheckID != "disk" || u.Checks[0].Status != "passing" {
		t.Fatalf("full set on reconnect: %+v", u)
	}
}

func TestSendChecksChunks(t *testing.T) {
	defs := make([]catalogapi.CheckDefinition, 2*checksPerUpdate+1)
	var got []*catalogapi.ChecksUpdate
	send := func(u *catalogapi.ChecksUpdate) error { got = append(got, u); return nil }
	if err := sendChecks(send, true, defs, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	// A full set spans items: all Full, all but the last marked More.
	if len(got) != 3 || !got[0].Full || !got[1].Full || !got[2].Full || !got[0].More || !got[1].More || got[2].More ||
		len(got[2].Checks) != 1 || len(got[0].Removed) != 1 || got[1].Removed != nil {
		t.Errorf("chunks: %d items: %+v", len(got), got)
	}
	got = nil
	if err := sendChecks(send, false, defs, nil); err != nil || len(got) != 3 || got[0].Full || got[0].More {
		t.Errorf("update chunks: %+v %v", got, err)
	}
	got = nil
	if err := sendChecks(send, true, nil, nil); err != nil || len(got) != 1 || !got[0].Full || got[0].More {
		t.Errorf("empty full set: %+v %v", got, err)
	}
}
