package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// registerBody is a /v1/catalog/register body: client cl's node, one of
// 50 service instances on it, and that instance's check, whose status
// flips with seq so that every write changes the catalog.
func registerBody(cl, seq int) []byte {
	inst := seq % 50
	status := "passing"
	if (seq/50)%2 == 1 {
		status = "warning"
	}
	return fmt.Appendf(nil, `{"Node":"bench-%d","Address":"10.9.%d.1","NodeMeta":{"bench":"yes"},`+
		`"Service":{"ID":"svc-%d","Service":"svc-%d","Port":%d,"Tags":["bench","v1"],"Meta":{"client":"%d"}},`+
		`"Check":{"CheckID":"chk-%d","Name":"svc-%d alive","ServiceID":"svc-%d","Status":"%s","Output":"seq %d"}}`,
		cl, cl%250, inst, inst, 8000+inst, cl, inst, inst, inst, status, seq)
}

// catalogRegister does PUT /v1/catalog/register on addr.
func catalogRegister(ctx context.Context, c *http.Client, addr string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/catalog/register", bytes.NewReader(body))
	return do(c, req)
}

// BenchmarkCatalogRegister measures PUT /v1/catalog/register against a
// three-server cluster, with 1 and 16 closed-loop clients spread over the
// servers (issue 4, point 8). Each write registers a node, a service
// instance and its check, and changes the check's status or output, so
// every write is a real catalog change with bus events. KV PUTs of a
// similar size by the same clients are measured alongside for scale. It
// runs once whatever b.N is: go test -bench CatalogRegister -benchtime 1x.
func BenchmarkCatalogRegister(b *testing.B) {
	d := benchDuration()
	c := New(b, Options{Servers: 3, LogLevel: "warn"})
	c.WaitLeader(b)
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.HTTPAddr()
	}
	fmt.Printf("\nPUT /v1/catalog/register on 3 servers, loopback, %v per step; node + service + check per write, every write a change\n", d)
	fmt.Printf("%-20s %3s  %s\n", "op", "cl", "consort")
	for _, clients := range []int{1, 16} {
		hc := NewHTTPClient(clients)
		r := RunLoad(clients, d, func(ctx context.Context, cl, seq int) error {
			return catalogRegister(ctx, hc, addrs[cl%len(addrs)], registerBody(cl, seq))
		})
		fmt.Printf("%-20s %3d  %s\n", "catalog register", clients, r)
		b.ReportMetric(r.OpsPerSec(), fmt.Sprintf("register-%dcl-ops/s", clients))
		b.ReportMetric(float64(r.P99)/float64(time.Millisecond), fmt.Sprintf("register-%dcl-p99-ms", clients))
		if r.Ops == 0 {
			b.Fatalf("no register succeeded (%d errors)", r.Errors)
		}
		// The same clients doing KV PUTs of a similar size, for scale.
		val := make([]byte, 400)
		kv := RunLoad(clients, d, func(ctx context.Context, cl, seq int) error {
			return ConsortPut(ctx, hc, addrs[cl%len(addrs)], fmt.Sprintf("bench/%d/%d", cl, seq%50), val)
		})
		fmt.Printf("%-20s %3d  %s\n", "kv put (reference)", clients, kv)
		b.ReportMetric(r.OpsPerSec()/kv.OpsPerSec(), fmt.Sprintf("register/kv-%dcl", clients))
	}
}

// fanoutWatchers is how many blocking queries BenchmarkHealthFanout holds.
const fanoutWatchers = 1000

// BenchmarkHealthFanout holds 1,000 blocking ?stale queries on
// /v1/health/service/web, spread over the three servers of a cluster,
// changes one web check's status through /v1/catalog/register on the
// leader, and measures how long after the write each watcher has its
// answer: p50, p99 and max over five such rounds (issue 4, point 8). The
// clock starts when the write is sent, so the figures include the raft
// commit and the followers' apply. It runs once whatever b.N is.
func BenchmarkHealthFanout(b *testing.B) {
	const rounds = 5
	c := New(b, Options{Servers: 3, LogLevel: "warn"})
	leader := c.WaitLeader(b)
	ctl := NewHTTPClient(8)
	web := func(i int, status string) []byte {
		return fmt.Appendf(nil, `{"Node":"web-%d","Address":"10.8.0.%d","Service":{"ID":"web-%d","Service":"web","Port":80},`+
			`"Check":{"CheckID":"web-%d","Name":"web alive","ServiceID":"web-%d","Status":"%s"}}`, i, i, i, i, i, status)
	}
	for i := 1; i <= 3; i++ {
		if err := catalogRegister(context.Background(), ctl, leader.HTTPAddr(), web(i, "passing")); err != nil {
			b.Fatal(err)
		}
	}
	tr := &http.Transport{MaxIdleConns: fanoutWatchers, MaxIdleConnsPerHost: fanoutWatchers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}

	var all []time.Duration
	early, failed := 0, 0
	fmt.Printf("\nhealth/service/web fan-out: %d blocking ?stale watchers over 3 servers, one check status change per round\n", fanoutWatchers)
	for round := range rounds {
		idx, err := sameIndex(ctl, c.Nodes)
		if err != nil {
			b.Fatal(err)
		}
		var written atomic.Int32
		var start atomic.Int64 // unix nanos of the write; 0 before it
		lat := make([]time.Duration, fanoutWatchers)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for w := range fanoutWatchers {
			addr := c.Nodes[w%len(c.Nodes)].HTTPAddr()
			wg.Go(func() {
				trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { written.Add(1) }}
				ctx := httptrace.WithClientTrace(context.Background(), trace)
				u := "http://" + addr + "/v1/health/service/web?stale&wait=60s&index=" + strconv.FormatUint(idx, 10)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				resp, err := hc.Do(req)
				done := time.Now()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				defer mu.Unlock()
				s := start.Load()
				switch {
				case err != nil || resp.StatusCode != http.StatusOK:
					failed++
				case s == 0 || resp.Header.Get("X-Consul-Index") == strconv.FormatUint(idx, 10):
					early++ // returned before the change, or timed out
				default:
					lat[w] = done.Sub(time.Unix(0, s))
				}
			})
		}
		// Every request on the wire, then a moment for the servers to park
		// them: a watcher not yet parked at the write answers at once, which
		// only makes the figures look better, so wait generously.
		deadline := time.Now().Add(60 * time.Second)
		for written.Load() < fanoutWatchers && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		status := []string{"critical", "passing"}[round%2]
		start.Store(time.Now().UnixNano())
		if err := catalogRegister(context.Background(), ctl, leader.HTTPAddr(), web(1, status)); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		var got []time.Duration
		for _, l := range lat {
			if l > 0 {
				got = append(got, l)
			}
		}
		slices.Sort(got)
		if len(got) > 0 {
			fmt.Printf("  round %d: %4d returned  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n",
				round+1, len(got), ms(got[len(got)/2]), ms(got[len(got)*99/100]), ms(got[len(got)-1]))
		}
		all = append(all, got...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatalf("no watcher saw the change (%d early, %d failed)", early, failed)
	}
	p50, p99, mx := all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	fmt.Printf("%-20s %5d  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d samples, %d early or timed out, %d failed)\n",
		"all rounds", fanoutWatchers, ms(p50), ms(p99), ms(mx), len(all), early, failed)
	b.ReportMetric(ms(p50), "fanout-p50-ms")
	b.ReportMetric(ms(p99), "fanout-p99-ms")
	b.ReportMetric(ms(mx), "fanout-max-ms")
}

// sameIndex waits until every node answers /v1/health/service/web?stale
// with the same X-Consul-Index, and returns it.
func sameIndex(c *http.Client, nodes []*Node) (uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var idx []uint64
		for _, n := range nodes {
			resp, err := c.Get("http://" + n.HTTPAddr() + "/v1/health/service/web?stale")
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			i, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
			idx = append(idx, i)
		}
		if slices.Min(idx) == slices.Max(idx) && idx[0] > 0 {
			return idx[0], nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("servers disagree on web's index: %v", idx)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
