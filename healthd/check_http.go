package healthd

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// userAgent is the User-Agent of HTTP checks, Consul's.
const userAgent = "Consul Health Check"

// maxBodyRead bounds how much of a response body an HTTP check reads; the
// output keeps only the last OutputMaxSize bytes of it anyway.
const maxBodyRead = 16 << 20

// httpCheck is an HTTP check: 2xx is passing, 429 warning, anything else
// or no answer critical. The output is Consul's: "HTTP GET <url>: 200 OK
// Output: <the last 4 KiB of the body>", or the request's error.
type httpCheck struct {
	url    string
	method string
	header http.Header
	body   string
	client *http.Client
	max    int
}

func newHTTPCheck(t *structs.CheckType, timeout time.Duration, max int) (*httpCheck, error) {
	u, err := url.Parse(t.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http %q: %w", t.HTTP, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http %q: the URL must start with http:// or https://", t.HTTP)
	}
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	// Keep-alives off, as Consul: a connection kept between runs would
	// hide a listener that stopped accepting.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: t.TLSSkipVerify, ServerName: t.TLSServerName},
		TLSHandshakeTimeout: timeout,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   true,
	}
	return &httpCheck{
		url:    t.HTTP,
		method: method,
		header: http.Header(t.Header).Clone(),
		body:   t.Body,
		client: &http.Client{Timeout: timeout, Transport: tr},
		max:    max,
	}, nil
}

func (h *httpCheck) run(ctx context.Context) (string, string) {
	req, err := http.NewRequestWithContext(ctx, h.method, h.url, strings.NewReader(h.body))
	if err != nil {
		return structs.HealthCritical, err.Error()
	}
	req.Header = h.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return structs.HealthCritical, err.Error()
	}
	defer resp.Body.Close()
	out := newTailBuffer(h.max)
	io.Copy(out, io.LimitReader(resp.Body, maxBodyRead)) // a body cut short still has a status
	result := fmt.Sprintf("HTTP %s %s: %s Output: %s", h.method, h.url, resp.Status, out.String())
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return structs.HealthPassing, result
	case resp.StatusCode == http.StatusTooManyRequests:
		return structs.HealthWarning, result
	default:
		return structs.HealthCritical, result
	}
}
