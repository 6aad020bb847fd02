package testcluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchDuration is how long each load step runs (CONSORT_BENCH_SECONDS).
func benchDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("CONSORT_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 5 * time.Second
}

// BenchmarkKVAgainstEtcd runs KV PUT and GET (default and consistent)
// with 1 and 64 closed-loop clients against a three-server consort
// cluster and a three-member etcd cluster on loopback in the same run, and
// prints ops/s, p50/p99 and the ratio consort/etcd (issue 3, point 6).
// Both are driven over HTTP/JSON: consort's /v1/kv and etcd's v3 gateway.
// It runs once whatever b.N is: go test -bench KVAgainstEtcd -benchtime 1x.
func BenchmarkKVAgainstEtcd(b *testing.B) {
	d := benchDuration()
	c := New(b, Options{Servers: 3, LogLevel: "warn"})
	c.WaitLeader(b)
	e := StartEtcd(b, 3)
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.HTTPAddr()
	}
	val := make([]byte, 128)
	const keys = 1000
	type step struct {
		name    string
		consort func(ctx context.Context, hc *testingClient, cl, seq int) error
		etcd    func(ctx context.Context, hc *testingClient, cl, seq int) error
	}
	steps := []step{
		{"PUT", func(ctx context.Context, h *testingClient, cl, seq int) error {
			return ConsortPut(ctx, h.c, addrs[cl%len(addrs)], fmt.Sprintf("bench/%d", (cl*7919+seq)%keys), val)
		}, func(ctx context.Context, h *testingClient, cl, seq int) error {
			return etcdPut(ctx, h.c, e.ClientURLs[cl%len(e.ClientURLs)], fmt.Sprintf("bench/%d", (cl*7919+seq)%keys), val)
		}},
		{"GET default", func(ctx context.Context, h *testingClient, cl, seq int) error {
			return ConsortGet(ctx, h.c, addrs[cl%len(addrs)], fmt.Sprintf("bench/%d", (cl+seq)%keys), "")
		}, func(ctx context.Context, h *testingClient, cl, seq int) error {
			return etcdGet(ctx, h.c, e.ClientURLs[cl%len(e.ClientURLs)], fmt.Sprintf("bench/%d", (cl+seq)%keys), false)
		}},
		{"GET consistent", func(ctx context.Context, h *testingClient, cl, seq int) error {
			return ConsortGet(ctx, h.c, addrs[cl%len(addrs)], fmt.Sprintf("bench/%d", (cl+seq)%keys), "consistent")
		}, func(ctx context.Context, h *testingClient, cl, seq int) error {
			return etcdGet(ctx, h.c, e.ClientURLs[cl%len(e.ClientURLs)], fmt.Sprintf("bench/%d", (cl+seq)%keys), false)
		}},
	}
	// Fill every key once so reads find values.
	hc := &testingClient{NewHTTPClient(64)}
	for i := 0; i < keys; i++ {
		ctx := context.Background()
		if err := ConsortPut(ctx, hc.c, addrs[0], fmt.Sprintf("bench/%d", i), val); err != nil {
			b.Fatal(err)
		}
		if err := etcdPut(ctx, hc.c, e.ClientURLs[0], fmt.Sprintf("bench/%d", i), val); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("\nKV on 3 servers, loopback, %v per step, 128-byte values, %d keys; etcd %s reads are linearizable (its default) in both GET rows\n", d, keys, "3.4")
	fmt.Printf("%-16s %3s  %-62s  %-62s  %s\n", "op", "cl", "consort", "etcd", "consort/etcd")
	for _, s := range steps {
		for _, clients := range []int{1, 64} {
			h := &testingClient{NewHTTPClient(clients)}
			cr := RunLoad(clients, d, func(ctx context.Context, cl, seq int) error { return s.consort(ctx, h, cl, seq) })
			er := RunLoad(clients, d, func(ctx context.Context, cl, seq int) error { return s.etcd(ctx, h, cl, seq) })
			ratio := cr.OpsPerSec() / er.OpsPerSec()
			fmt.Printf("%-16s %3d  %s  %s  %.2f\n", s.name, clients, cr, er, ratio)
			b.ReportMetric(cr.OpsPerSec(), fmt.Sprintf("consort-%s-%dcl-ops/s", short(s.name), clients))
			b.ReportMetric(ratio, fmt.Sprintf("ratio-%s-%dcl", short(s.name), clients))
		}
	}
}

type testingClient struct{ c *http.Client }

func short(s string) string {
	switch s {
	case "GET default":
		return "get"
	case "GET consistent":
		return "getc"
	}
	return "put"
}
