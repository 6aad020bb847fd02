package testcluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// LoadResult summarises one closed-loop load run.
type LoadResult struct {
	Ops      int
	Errors   int
	Duration time.Duration
	P50, P99 time.Duration
}

// OpsPerSec is the completed operations per second.
func (r LoadResult) OpsPerSec() float64 { return float64(r.Ops) / r.Duration.Seconds() }

// String renders ops/s and latency percentiles.
func (r LoadResult) String() string {
	return fmt.Sprintf("%8.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  (%d ops, %d errors)",
		r.OpsPerSec(), ms(r.P50), ms(r.P99), r.Ops, r.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// RunLoad runs clients goroutines in a closed loop for d, each calling op
// with its client number and a sequence number, and measures latency.
func RunLoad(clients int, d time.Duration, op func(ctx context.Context, client, seq int) error) LoadResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			e := 0
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				if err := op(ctx, c, seq); err != nil {
					if ctx.Err() == nil {
						e++
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += e
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	r := LoadResult{Ops: len(lat), Errors: errs, Duration: el}
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[len(lat)*99/100]
	}
	return r
}

// NewHTTPClient returns a client with enough idle connections for load.
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns}, Timeout: 30 * time.Second}
}

// ConsortPut does PUT /v1/kv/key on the HTTP address.
func ConsortPut(ctx context.Context, c *http.Client, addr, key string, val []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/kv/"+key, bytes.NewReader(val))
	return do(c, req)
}

// ConsortGet does GET /v1/kv/key with the given consistency query ("",
// "consistent" or "stale").
func ConsortGet(ctx context.Context, c *http.Client, addr, key, mode string) error {
	u := "http://" + addr + "/v1/kv/" + key
	if mode != "" {
		u += "?" + mode
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	return do(c, req)
}

func etcdPut(ctx context.Context, c *http.Client, url, key string, val []byte) error {
	body, _ := json.Marshal(map[string]string{"key": b64(key), "value": base64.StdEncoding.EncodeToString(val)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v3/kv/put", bytes.NewReader(body))
	return do(c, req)
}

// etcdGet reads a key through etcd's JSON gateway; serializable false is
// etcd's default linearizable read.
func etcdGet(ctx context.Context, c *http.Client, url, key string, serializable bool) error {
	body, _ := json.Marshal(map[string]any{"key": b64(key), "serializable": serializable})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v3/kv/range", bytes.NewReader(body))
	return do(c, req)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func do(c *http.Client, req *http.Request) error {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}
