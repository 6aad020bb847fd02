package healthd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// grpcCheck calls grpc.health.v1.Health/Check on "host:port[/service]"
// over a fresh HTTP/2 connection (h2c with prior knowledge, or TLS with
// GRPCUseTLS). SERVING is passing ("gRPC check <target>: success"); any
// other status, or a failed call, is critical with grpc-go's wording.
type grpcCheck struct {
	target  string
	addr    string
	service string
	scheme  string
	tr      *http.Transport
	timeout time.Duration
}

func newGRPCCheck(t *structs.CheckType, timeout time.Duration) *grpcCheck {
	addr, service, _ := strings.Cut(t.GRPC, "/")
	var p http.Protocols
	scheme := "http"
	if t.GRPCUseTLS {
		scheme = "https"
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: t.TLSSkipVerify, ServerName: t.TLSServerName},
		TLSHandshakeTimeout: timeout,
		Protocols:           &p,
	}
	return &grpcCheck{target: t.GRPC, addr: addr, service: service, scheme: scheme, tr: tr, timeout: timeout}
}

func (g *grpcCheck) run(ctx context.Context) (string, string) {
	s, err := g.call(ctx)
	if err != nil {
		return structs.HealthCritical, err.Error()
	}
	if s != servingSERVING {
		return structs.HealthCritical, fmt.Sprintf("gRPC %s serving status: %s", g.target, servingStatusName(s))
	}
	return structs.HealthPassing, fmt.Sprintf("gRPC check %s: success", g.target)
}

// call makes one Check call on a new connection and closes it.
func (g *grpcCheck) call(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	cc, err := g.tr.NewClientConn(ctx, g.scheme, g.addr)
	if err != nil {
		if ctx.Err() != nil {
			return 0, &rpcError{code: grpcDeadlineExceeded, desc: "context deadline exceeded"}
		}
		return 0, &rpcError{code: grpcUnavailable, desc: fmt.Sprintf("connection error: desc = %q", "transport: Error while dialing: "+err.Error())}
	}
	defer cc.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.scheme+"://"+g.addr+healthCheckPath, bytes.NewReader(encodeHealthRequest(g.service)))
	if err != nil {
		return 0, &rpcError{code: grpcInternal, desc: err.Error()}
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", max(g.timeout.Milliseconds(), 1)))
	resp, err := cc.RoundTrip(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, &rpcError{code: grpcDeadlineExceeded, desc: "context deadline exceeded"}
		}
		return 0, &rpcError{code: grpcUnavailable, desc: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGRPCMessage+5))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, &rpcError{code: grpcDeadlineExceeded, desc: "context deadline exceeded"}
		}
		return 0, &rpcError{code: grpcUnavailable, desc: err.Error()}
	}
	return decodeHealthAnswer(resp.StatusCode, resp.Header, resp.Trailer, body)
}
