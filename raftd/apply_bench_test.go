package raftd

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/raftapi"
)

// BenchmarkApply measures raftd alone: three in-process servers on real
// disk (t.TempDir) with production raft timing, closed-loop clients
// calling Apply over each server's Unix socket, as catalogd does. Every
// server runs a feed consumer like catalogd's, and "fed" runs wait until
// the calling server's feed delivered the index Apply returned, which is
// when catalogd would answer the writer. The target says where the
// clients call: the leader, the followers, or all three servers in turn
// (as the HTTP benchmark spreads its clients).
//
//	go test -run '^$' -bench Apply -benchtime 2000x ./raftd
func BenchmarkApply(b *testing.B) {
	data := make([]byte, 200) // a 128-byte KV set, encoded
	c := startBenchCluster(b)
	for _, target := range []string{"leader", "follower", "all"} {
		for _, clients := range []int{1, 64} {
			for _, fed := range []bool{false, true} {
				name := fmt.Sprintf("%s/clients=%d/fed=%v", target, clients, fed)
				b.Run(name, func(b *testing.B) {
					c.run(b, target, clients, fed, data)
				})
			}
		}
	}
}

// benchCluster is three raftd servers, each with a feed consumer.
type benchCluster struct {
	leader    *node
	followers []*node
	all       []*node
	fed       map[*node]*benchFeed
}

func startBenchCluster(b *testing.B) *benchCluster {
	lns := [3]net.Listener{}
	var addrs []string
	for i := range lns {
		lns[i] = listen(b, "")
		addrs = append(addrs, lns[i].Addr().String())
	}
	var nodes []*node
	for i := range 3 {
		cfg := testConfig(b, b.TempDir(), fmt.Sprintf("s%d", i+1), lns[i])
		// Production timing: followers learn commits from the leader's
		// appends and heartbeats, so the heartbeat matters here.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 0, 0, 0
		cfg.Log = nil
		cfg.BootstrapExpect = 3
		cfg.Peers = addrs
		nodes = append(nodes, start(b, cfg))
	}
	c := &benchCluster{all: nodes, fed: map[*node]*benchFeed{}}
	c.leader = waitLeader(b, nodes...)
	for _, n := range nodes {
		if n != c.leader {
			c.followers = append(c.followers, n)
		}
		c.fed[n] = startBenchFeed(b, n.client)
	}
	return c
}

func (c *benchCluster) run(b *testing.B, target string, clients int, fed bool, data []byte) {
	var targets []*node
	switch target {
	case "leader":
		targets = []*node{c.leader}
	case "follower":
		targets = c.followers
	default:
		targets = c.all
	}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		wg      sync.WaitGroup
		errOnce sync.Once
		failed  error
	)
	b.ResetTimer()
	start := time.Now()
	for cl := range clients {
		n := targets[cl%len(targets)]
		wg.Go(func() {
			var local []time.Duration
			ctx := context.Background()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				idx, err := n.client.Apply(ctx, data)
				if err == nil && fed {
					err = c.fed[n].wait(ctx, idx)
				}
				if err != nil {
					errOnce.Do(func() { failed = err })
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "ops/s")
		b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	}
}

// benchFeed follows one server's feed as catalogd does and wakes waiters
// when the fed index moves.
type benchFeed struct {
	mu    sync.Mutex // guards index and wake
	index uint64
	wake  chan struct{}
}

func startBenchFeed(b *testing.B, c *raftapi.Client) *benchFeed {
	f := &benchFeed{wake: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Feed(ctx, 0)
	if err != nil {
		b.Fatalf("feed: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			it, err := st.Recv()
			if err != nil {
				return
			}
			if it.Kind != raftapi.FeedEntries || len(it.Entries) == 0 {
				continue
			}
			f.mu.Lock()
			f.index = it.Entries[len(it.Entries)-1].Index
			close(f.wake)
			f.wake = make(chan struct{})
			f.mu.Unlock()
		}
	}()
	b.Cleanup(func() { cancel(); st.Close(); <-done })
	return f
}

func (f *benchFeed) wait(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		cur, ch := f.index, f.wake
		f.mu.Unlock()
		if cur >= index {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("feed stuck at %d, waiting for %d", cur, index)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
