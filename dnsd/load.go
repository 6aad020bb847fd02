package dnsd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds one answer read from catalogd.
const maxBody = 64 << 20

// loader reads the catalog from catalogd's HTTP API with ?stale, so it
// works on any server without a leader. A catalogd socket method taking
// its place is a later step (issue 7).
type loader struct {
	base     string // http://host:port
	client   *http.Client
	parallel int
}

func newLoader(c Config) *loader {
	return &loader{
		base:     "http://" + c.CatalogHTTP,
		client:   &http.Client{Timeout: c.RequestTimeout},
		parallel: c.LoadParallel,
	}
}

// get decodes one stale GET into out and returns X-Consul-Index.
func (l *loader) get(ctx context.Context, path string, out any) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", path, err)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("get %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return 0, fmt.Errorf("get %s: decode: %w", path, err)
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return idx, nil
}

// service loads one service's instances with their checks. A service
// that no longer exists loads as no instances.
func (l *loader) service(ctx context.Context, name string) (*service, uint64, error) {
	var entries []*entryJSON
	idx, err := l.get(ctx, "/v1/health/service/"+url.PathEscape(name)+"?stale", &entries)
	if err != nil {
		return nil, 0, err
	}
	return buildService(name, entries), idx, nil
}

// nodes loads the node table.
func (l *loader) nodes(ctx context.Context) (map[string]*node, uint64, error) {
	var list []*nodeJSON
	idx, err := l.get(ctx, "/v1/catalog/nodes?stale", &list)
	if err != nil {
		return nil, 0, err
	}
	return buildNodes(list), idx, nil
}

// full loads a whole new view: the service names, then each service's
// instances (at most parallel requests at once), then the nodes. Any
// failure fails the load, so a view is never half replaced.
func (l *loader) full(ctx context.Context, now time.Time) (*view, error) {
	var names map[string][]string
	idx, err := l.get(ctx, "/v1/catalog/services?stale", &names)
	if err != nil {
		return nil, err
	}
	v := emptyView()
	v.index = idx
	var (
		mu       sync.Mutex // guards v.services, v.index, firstErr
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, l.parallel)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, i, err := l.service(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			if len(s.instances) > 0 {
				v.services[strings.ToLower(name)] = s
			}
			v.index = max(v.index, i)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	nodes, i, err := l.nodes(ctx)
	if err != nil {
		return nil, err
	}
	v.nodes = nodes
	v.index = max(v.index, i)
	v.loaded = now
	return v, nil
}
