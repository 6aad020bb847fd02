package testcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/raftapi"
	"github.com/hashicorp/consul/api"
)

// TestKillDaemonDuringWrites kills -9 one daemon of the node taking writes
// in the middle of a stream of writes, restarts it, and checks that every
// acknowledged write is there and that the node's state equals the
// never-killed replicas' (issue 3, point 3).
func TestKillDaemonDuringWrites(t *testing.T) {
	for _, daemon := range []string{"catalogd", "raftd"} {
		t.Run(daemon, func(t *testing.T) {
			c := New(t, Options{Servers: 3})
			leader := c.WaitLeader(t)
			target := followers(c, leader)[0]
			w := startWriter(t, target.APIClient(t), "w")
			w.waitAcked(t, 50)
			if err := target.Kill(daemon); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // let writes fail against the dead daemon
			if err := target.Start(daemon); err != nil {
				t.Fatal(err)
			}
			w.waitAcked(t, 50)
			acked := w.finish()
			s := waitSameState(t, c.Nodes, 60*time.Second)
			requireAcked(t, s, acked)
			t.Logf("%d writes acknowledged, %d keys on every replica", len(acked), len(s.Pairs))
		})
	}
}

// TestKillLeaderServer kills -9 every daemon of the leader during writes:
// a new leader is elected and serves writes, and when the old leader
// comes back all replicas agree and no acknowledged write is lost
// (issue 3, point 3).
func TestKillLeaderServer(t *testing.T) {
	c := New(t, Options{Servers: 3})
	leader := c.WaitLeader(t)
	target := followers(c, leader)[0]
	w := startWriter(t, target.APIClient(t), "w")
	w.waitAcked(t, 50)
	if err := leader.KillAll(); err != nil {
		t.Fatal(err)
	}
	newLeader := c.WaitLeader(t)
	if newLeader == leader {
		t.Fatal("killed node still leads")
	}
	w.waitAcked(t, 50)
	if err := leader.StartAll(); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 20)
	acked := w.finish()
	s := waitSameState(t, c.Nodes, 60*time.Second)
	requireAcked(t, s, acked)
}

// TestSnapshotRebuild writes enough to force several raft snapshots and
// log truncation, then restarts catalogd with an empty memory: it rebuilds
// from snapshot plus log tail to the replicas' state (issue 3, point 4).
func TestSnapshotRebuild(t *testing.T) {
	c := New(t, Options{Servers: 3, SnapshotThreshold: 64, TrailingLogs: 16, SnapshotInterval: time.Second})
	leader := c.WaitLeader(t)
	target := followers(c, leader)[0]
	kv := leader.APIClient(t).KV()
	for i := 0; i < 600; i++ {
		key := "s/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String()
		if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(key)}, nil); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			kv.Delete("s/"+string(rune('a'+i%26)), nil)
		}
	}
	// Raft snapshotted and truncated its log on the target.
	rc := raftapi.Dial(target.SocketPath("raftd"))
	defer rc.Close()
	waitFor(t, 60*time.Second, "log truncated after snapshots", func() error {
		st, err := rc.Status(context.Background())
		if err != nil {
			return err
		}
		snaps, _ := filepath.Glob(filepath.Join(target.DataDir, "raftd", "snapshots", "*"))
		if st.SnapshotIndex == 0 || st.FirstIndex <= 1 || len(snaps) == 0 {
			return errorf("snapshot index %d, first log index %d, %d snapshot dirs", st.SnapshotIndex, st.FirstIndex, len(snaps))
		}
		return nil
	})
	want := waitSameState(t, c.Nodes, 30*time.Second)
	before, _ := os.ReadFile(target.LogPath("catalogd"))
	if err := target.Kill("catalogd"); err != nil {
		t.Fatal(err)
	}
	if err := target.Start("catalogd"); err != nil {
		t.Fatal(err)
	}
	got := waitSameState(t, c.Nodes, 30*time.Second)
	if len(got.Pairs) != len(want.Pairs) {
		t.Fatalf("after rebuild %d keys, before %d", len(got.Pairs), len(want.Pairs))
	}
	// The restarted catalogd began from a raft snapshot: the log no longer
	// holds entry 1, so it could not have replayed from the start.
	logb, err := os.ReadFile(target.LogPath("catalogd"))
	if err != nil {
		t.Fatal(err)
	}
	if len(logb) < len(before) || !strings.Contains(string(logb[len(before):]), "restored raft snapshot") {
		t.Fatalf("restarted catalogd did not restore a raft snapshot; its log:\n%s", logb)
	}
}
