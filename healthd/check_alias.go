package healthd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// Alias checks mirror the health of another service instance (AliasService,
// a service ID) or node (AliasNode; this node when empty): critical if any
// of the aliased checks is critical, else warning if any is warning, else
// passing. Consul's agent reads its local state or a server's RPC; healthd
// reads catalogd's HTTP API (Config.HTTPAddr) with stale blocking queries
// on /v1/health/node/<node>, one watcher goroutine per alias check. The
// watchers mostly sit in a blocking query, so they are not counted
// against MaxRunning. ACL tokens and HTTPS are not supported yet.

// maxAliasBody bounds one answer of catalogd's HTTP API.
const maxAliasBody = 32 << 20

// aliasClient is the HTTP client alias watchers share.
type aliasClient struct {
	tr   *http.Transport
	hc   *http.Client
	wait time.Duration
}

func newAliasClient(wait time.Duration) *aliasClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	return &aliasClient{tr: tr, hc: &http.Client{Transport: tr}, wait: wait}
}

func (a *aliasClient) close() { a.tr.CloseIdleConnections() }

// aliasCheck is the part of catalogd's HealthCheck JSON alias checks read.
type aliasCheck struct {
	Node      string
	CheckID   string
	Name      string
	Status    string
	Output    string
	ServiceID string
}

// get fetches path from catalogd's HTTP API into v and returns the
// X-Consul-Index.
func (a *aliasClient) get(ctx context.Context, addr, path string, q url.Values, v any) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, a.wait+15*time.Second)
	defer cancel()
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAliasBody))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", path, err)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return idx, nil
}

// startAliasLocked starts c's watcher.
func (d *Daemon) startAliasLocked(c *checkState) {
	if d.c.HTTPAddr == "" {
		d.setStatusLocked(c, structs.HealthCritical, "alias checks read catalogd's HTTP API, which is disabled on this node (ports.http = -1)", d.c.Clock.Now())
		return
	}
	parent := d.runCtx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	c.stopAlias = cancel
	d.runs.Add(1)
	go func() {
		defer d.runs.Done()
		defer cancel()
		d.watchAlias(ctx, c)
	}()
}

// watchAlias follows the aliased node's checks until ctx ends.
func (d *Daemon) watchAlias(ctx context.Context, c *checkState) {
	node := c.def.AliasNode
	if node == "" {
		node = d.c.Node
	}
	path := "/v1/health/node/" + url.PathEscape(node)
	var index uint64
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		q := url.Values{"stale": {""}}
		if index > 0 {
			q.Set("index", strconv.FormatUint(index, 10))
			q.Set("wait", d.c.AliasWait.String())
		}
		var checks []aliasCheck
		got, err := d.alias.get(ctx, d.c.HTTPAddr, path, q, &checks)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			// One failure may be catalogd restarting; two are news.
			if failures > 1 {
				d.recordAlias(c, structs.HealthCritical, fmt.Sprintf("Failure checking aliased node or service: %s", err))
			}
			wait := time.Second
			if failures > 3 {
				wait = min(time.Second<<min(failures-3, 6), time.Minute)
			}
			if !sleepCtx(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		status, output := d.aliasStatus(ctx, c, node, checks)
		d.recordAlias(c, status, output)
		quick := time.Since(start) < 50*time.Millisecond && got == index
		switch {
		case got < index || got == 0:
			index = 1 // the index went back (a restore): start over
		default:
			index = got
		}
		// A server that does not block would make this a hot loop.
		if quick && !sleepCtx(ctx, time.Second) {
			return
		}
	}
}

// aliasStatus computes the alias's status as Consul's processChecks.
func (d *Daemon) aliasStatus(ctx context.Context, c *checkState, node string, checks []aliasCheck) (string, string) {
	sid := c.def.AliasService
	health, msg := structs.HealthPassing, "No checks found."
	found := false
	for _, chk := range checks {
		if !strings.EqualFold(chk.Node, node) {
			continue
		}
		if chk.CheckID == c.id && strings.EqualFold(node, d.c.Node) {
			continue // never alias ourselves
		}
		match := chk.ServiceID == sid
		if chk.ServiceID != "" && !match {
			continue
		}
		if match {
			found = true
		}
		if chk.Status == structs.HealthCritical || chk.Status == structs.HealthWarning {
			health = chk.Status
			msg = fmt.Sprintf("Aliased check %q failing: %s", chk.Name, chk.Output)
			if chk.Status == structs.HealthCritical {
				break
			}
		} else if health == structs.HealthPassing {
			msg = "All checks passing."
		}
	}
	if !found && sid != "" && !d.serviceExists(ctx, node, sid) {
		return structs.HealthCritical, fmt.Sprintf("Service %s could not be found on node %s", sid, node)
	}
	return health, msg
}

// serviceExists asks catalogd whether node has service id. When it cannot
// tell, it assumes so, as Consul does.
func (d *Daemon) serviceExists(ctx context.Context, node, id string) bool {
	var out *struct {
		Services map[string]json.RawMessage
	}
	_, err := d.alias.get(ctx, d.c.HTTPAddr, "/v1/catalog/node/"+url.PathEscape(node), url.Values{"stale": {""}}, &out)
	if err != nil {
		return true
	}
	if out == nil {
		return false
	}
	_, ok := out.Services[id]
	return ok
}

// recordAlias records an alias watcher's result. Alias checks take no
// thresholds, as in Consul.
func (d *Daemon) recordAlias(c *checkState, status, output string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.removed {
		return
	}
	now := d.c.Clock.Now()
	c.lastRun = now
	d.setStatusLocked(c, status, output, now)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
