package healthd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// runOnce runs a runner with a generous outer context.
func runOnce(t *testing.T, r runner) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.run(ctx)
}

func mustHTTP(t *testing.T, ct structs.CheckType, timeout time.Duration) *httpCheck {
	t.Helper()
	c, err := newHTTPCheck(&ct, timeout, DefaultOutputMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHTTPCheckStatuses(t *testing.T) {
	code := 200
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := code
		mu.Unlock()
		w.WriteHeader(c)
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	url := srv.URL + "/health"
	for _, tc := range []struct {
		code   int
		status string
		output string
	}{
		{200, structs.HealthPassing, "HTTP GET " + url + ": 200 OK Output: hello"},
		{204, structs.HealthPassing, "HTTP GET " + url + ": 204 No Content Output: "},
		{429, structs.HealthWarning, "HTTP GET " + url + ": 429 Too Many Requests Output: hello"},
		{503, structs.HealthCritical, "HTTP GET " + url + ": 503 Service Unavailable Output: hello"},
		{301, structs.HealthCritical, "HTTP GET " + url + ": 301 Moved Permanently Output: hello"},
	} {
		mu.Lock()
		code = tc.code
		mu.Unlock()
		st, out := runOnce(t, mustHTTP(t, structs.CheckType{HTTP: url}, time.Second))
		if st != tc.status || out != tc.output {
			t.Errorf("code %d: got %s %q, want %s %q", tc.code, st, out, tc.status, tc.output)
		}
	}
}

func TestHTTPCheckRequest(t *testing.T) {
	type seen struct {
		method, body, host, ua, accept, custom string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, string(b), r.Host, r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Custom")}
	}))
	defer srv.Close()
	st, out := runOnce(t, mustHTTP(t, structs.CheckType{
		HTTP:   srv.URL,
		Method: "PUT",
		Body:   `{"ping":1}`,
		Header: map[string][]string{"X-Custom": {"yes"}, "Host": {"svc.example"}},
	}, time.Second))
	if st != structs.HealthPassing || !strings.HasPrefix(out, "HTTP PUT "+srv.URL+": 200 OK") {
		t.Fatalf("got %s %q", st, out)
	}
	s := <-got
	want := seen{"PUT", `{"ping":1}`, "svc.example", userAgent, "text/plain, text/*, */*", "yes"}
	if s != want {
		t.Errorf("server saw %+v, want %+v", s, want)
	}
}

func TestHTTPCheckTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if st, out := runOnce(t, mustHTTP(t, structs.CheckType{HTTP: srv.URL}, time.Second)); st != structs.HealthCritical || !strings.Contains(out, "certificate") {
		t.Errorf("verifying: got %s %q, want critical on the certificate", st, out)
	}
	if st, out := runOnce(t, mustHTTP(t, structs.CheckType{HTTP: srv.URL, TLSSkipVerify: true}, time.Second)); st != structs.HealthPassing {
		t.Errorf("skip verify: got %s %q", st, out)
	}
}

func TestHTTPCheckFailures(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-block
		}
		if r.URL.Path == "/big" {
			fmt.Fprint(w, strings.Repeat("a", 10000)+"END")
		}
	}))
	defer srv.Close()
	defer close(block)

	st, out := runOnce(t, mustHTTP(t, structs.CheckType{HTTP: srv.URL + "/slow"}, 100*time.Millisecond))
	if st != structs.HealthCritical || !strings.Contains(out, "Client.Timeout exceeded") {
		t.Errorf("slow: got %s %q", st, out)
	}
	st, out = runOnce(t, mustHTTP(t, structs.CheckType{HTTP: srv.URL + "/big"}, time.Second))
	body := out[strings.Index(out, "Output: ")+len("Output: "):]
	if st != structs.HealthPassing || len(body) != DefaultOutputMaxSize || !strings.HasSuffix(body, "END") {
		t.Errorf("big: got %s, body of %d bytes ending %q", st, len(body), body[max(len(body)-5, 0):])
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	st, out = runOnce(t, mustHTTP(t, structs.CheckType{HTTP: "http://" + addr + "/"}, time.Second))
	if st != structs.HealthCritical || !strings.Contains(out, "connection refused") {
		t.Errorf("down: got %s %q", st, out)
	}
	if _, err := newHTTPCheck(&structs.CheckType{HTTP: "ftp://x/"}, time.Second, 0); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	st, out := runOnce(t, newTCPCheck(&structs.CheckType{TCP: addr}, time.Second))
	if st != structs.HealthPassing || out != "TCP connect "+addr+": Success" {
		t.Errorf("up: got %s %q", st, out)
	}
	l.Close()
	st, out = runOnce(t, newTCPCheck(&structs.CheckType{TCP: addr}, time.Second))
	if st != structs.HealthCritical || !strings.Contains(out, "connection refused") {
		t.Errorf("down: got %s %q", st, out)
	}
}

func TestUDPCheck(t *testing.T) {
	// A silent listener: the read times out, which Consul counts as success.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	addr := silent.LocalAddr().String()
	st, out := runOnce(t, newUDPCheck(&structs.CheckType{UDP: addr}, 100*time.Millisecond))
	if st != structs.HealthPassing || out != "UDP connect "+addr+": Success" {
		t.Errorf("silent: got %s %q", st, out)
	}

	// An answering listener.
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo([]byte("pong"), from)
		}
	}()
	if st, out := runOnce(t, newUDPCheck(&structs.CheckType{UDP: echo.LocalAddr().String()}, time.Second)); st != structs.HealthPassing {
		t.Errorf("echo: got %s %q", st, out)
	}

	// A closed port: ICMP port unreachable.
	gone, _ := net.ListenPacket("udp", "127.0.0.1:0")
	gaddr := gone.LocalAddr().String()
	gone.Close()
	st, out = runOnce(t, newUDPCheck(&structs.CheckType{UDP: gaddr}, time.Second))
	if st != structs.HealthCritical || !strings.Contains(out, "connection refused") {
		t.Errorf("closed: got %s %q", st, out)
	}
}

// grpcHealthServer answers grpc.health.v1.Health/Check from statuses (by
// service name) as grpc-go's health server does: an unknown service is
// NOT_FOUND, any other method UNIMPLEMENTED.
func grpcHealthServer(t *testing.T, statuses map[string]int, tlsOn bool) *httptest.Server {
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "application/grpc" {
			http.Error(w, "want gRPC over HTTP/2", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		if r.URL.Path != healthCheckPath {
			w.Header().Set("Grpc-Status", "12")
			w.Header().Set("Grpc-Message", "unknown service "+strings.Split(r.URL.Path, "/")[1])
			w.WriteHeader(http.StatusOK)
			return
		}
		body, _ := io.ReadAll(r.Body)
		msg, err := unframe(body)
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		service := ""
		if len(msg) > 2 && msg[0] == 0x0a {
			service = string(msg[2:])
		}
		mu.Lock()
		st, ok := statuses[service]
		mu.Unlock()
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(http.StatusOK)
		if !ok {
			w.Header().Set("Grpc-Status", "5")
			w.Header().Set("Grpc-Message", "unknown service")
			return
		}
		resp := []byte{0, 0, 0, 0, 2, 0x08, byte(st)}
		w.Write(resp)
		w.Header().Set("Grpc-Status", "0")
	})
	srv := httptest.NewUnstartedServer(h)
	if tlsOn {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestGRPCCheck(t *testing.T) {
	srv := grpcHealthServer(t, map[string]int{"": 1, "db": 2, "cache": 1}, false)
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		target, status, output string
	}{
		{addr, structs.HealthPassing, "gRPC check " + addr + ": success"},
		{addr + "/cache", structs.HealthPassing, "gRPC check " + addr + "/cache: success"},
		{addr + "/db", structs.HealthCritical, "gRPC " + addr + "/db serving status: NOT_SERVING"},
		{addr + "/nope", structs.HealthCritical, "rpc error: code = NotFound desc = unknown service"},
	} {
		st, out := runOnce(t, newGRPCCheck(&structs.CheckType{GRPC: tc.target}, time.Second))
		if st != tc.status || out != tc.output {
			t.Errorf("%s: got %s %q, want %s %q", tc.target, st, out, tc.status, tc.output)
		}
	}
	// An HTTP/1-only server is not a gRPC server.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	st, out := runOnce(t, newGRPCCheck(&structs.CheckType{GRPC: plain.Listener.Addr().String()}, time.Second))
	if st != structs.HealthCritical || !strings.HasPrefix(out, "rpc error: code = ") {
		t.Errorf("http/1 server: got %s %q", st, out)
	}
	srv.Close()
	st, out = runOnce(t, newGRPCCheck(&structs.CheckType{GRPC: addr}, time.Second))
	if st != structs.HealthCritical || !strings.Contains(out, "code = Unavailable") || !strings.Contains(out, "connection refused") {
		t.Errorf("down: got %s %q", st, out)
	}
}

func TestGRPCCheckTLS(t *testing.T) {
	srv := grpcHealthServer(t, map[string]int{"": 1}, true)
	addr := srv.Listener.Addr().String()
	st, out := runOnce(t, newGRPCCheck(&structs.CheckType{GRPC: addr, GRPCUseTLS: true, TLSSkipVerify: true}, time.Second))
	if st != structs.HealthPassing {
		t.Errorf("tls: got %s %q", st, out)
	}
	st, out = runOnce(t, newGRPCCheck(&structs.CheckType{GRPC: addr, GRPCUseTLS: true}, time.Second))
	if st != structs.HealthCritical || !strings.Contains(out, "certificate") {
		t.Errorf("tls verifying: got %s %q", st, out)
	}
}

func TestH2PingCheck(t *testing.T) {
	h2c := httptest.NewUnstartedServer(http.NotFoundHandler())
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	h2c.Config.Protocols = &p
	h2c.Start()
	defer h2c.Close()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	http1 := httptest.NewServer(http.NotFoundHandler())
	defer http1.Close()

	for _, tc := range []struct {
		name   string
		ct     structs.CheckType
		status string
		output string
	}{
		{"h2c", structs.CheckType{H2PING: h2c.Listener.Addr().String()}, structs.HealthPassing, "HTTP2 ping was successful"},
		{"tls", structs.CheckType{H2PING: tlsSrv.Listener.Addr().String(), H2PingUseTLS: true, TLSSkipVerify: true}, structs.HealthPassing, "HTTP2 ping was successful"},
		{"http1", structs.CheckType{H2PING: http1.Listener.Addr().String()}, structs.HealthCritical, "HTTP2 ping failed: "},
		{"tls verify", structs.CheckType{H2PING: tlsSrv.Listener.Addr().String(), H2PingUseTLS: true}, structs.HealthCritical, "Failed to dial to "},
	} {
		st, out := runOnce(t, newH2PingCheck(&tc.ct, time.Second))
		if st != tc.status || !strings.HasPrefix(out, tc.output) {
			t.Errorf("%s: got %s %q, want %s %q…", tc.name, st, out, tc.status, tc.output)
		}
	}
}

func TestScriptCheck(t *testing.T) {
	big := strings.Repeat("x", 5000) + "END"
	for _, tc := range []struct {
		name    string
		args    []string
		timeout time.Duration
		status  string
		output  string // prefix
	}{
		{"pass", []string{"sh", "-c", "echo ok"}, time.Second, structs.HealthPassing, "ok\n"},
		{"warn", []string{"sh", "-c", "echo hmm >&2; exit 1"}, time.Second, structs.HealthWarning, "hmm\n"},
		{"crit", []string{"sh", "-c", "echo bad; exit 2"}, time.Second, structs.HealthCritical, "bad\n"},
		{"timeout", []string{"sh", "-c", "echo started; sleep 10"}, 200 * time.Millisecond, structs.HealthCritical, "Timed out (200ms) running check\n\nstarted\n"},
		{"missing", []string{"/nonexistent/check"}, time.Second, structs.HealthCritical, "fork/exec /nonexistent/check"},
		{"big", []string{"sh", "-c", "printf " + big}, time.Second, structs.HealthPassing, "Captured 4096 of 5003 bytes\n...\n"},
	} {
		st, out := runOnce(t, newScriptCheck(&structs.CheckType{Args: tc.args}, tc.timeout, 0))
		if st != tc.status || !strings.HasPrefix(out, tc.output) {
			t.Errorf("%s: got %s %q, want %s %q…", tc.name, st, out, tc.status, tc.output)
		}
		if tc.name == "big" && !strings.HasSuffix(out, "END") {
			t.Errorf("big: output does not keep the tail")
		}
	}
}

func TestThreshold(t *testing.T) {
	const P, W, C = structs.HealthPassing, structs.HealthWarning, structs.HealthCritical
	for _, tc := range []struct {
		name                string
		success, warn, crit int
		in                  []string
		want                []string // "" = no change
	}{
		{"none", 0, 0, 0, []string{C, P, W, C}, []string{C, P, W, C}},
		{"success 2", 2, 0, 0, []string{P, C, P, P, P}, []string{P, C, "", P, P}},
		{"critical 3", 0, 0, 3, []string{C, P, C, C, C, C}, []string{C, P, "", "", C, C}},
		{"warn 1 crit 3", 0, 1, 3, []string{P, C, C, C, P}, []string{P, W, W, C, P}},
		{"warn 2 crit 3 success 2", 2, 2, 3, []string{C, C, P, P, C, C, C}, []string{C, C, "", P, "", W, C}},
	} {
		h := newThreshold(&structs.CheckType{SuccessBeforePassing: tc.success, FailuresBeforeWarning: tc.warn, FailuresBeforeCritical: tc.crit})
		for i, s := range tc.in {
			got, _, ok := h.update(s, "out")
			if !ok {
				got = ""
			}
			if got != tc.want[i] {
				t.Errorf("%s: result %d (%s): got %q, want %q", tc.name, i, s, got, tc.want[i])
			}
		}
	}
}

func TestOutputBounds(t *testing.T) {
	b := newTailBuffer(8)
	b.Write([]byte("abc"))
	b.Write([]byte("defgh"))
	b.Write([]byte("ij"))
	if b.String() != "cdefghij" || !b.truncated() || b.total != 10 {
		t.Errorf("tail: %q total %d", b.String(), b.total)
	}
	b.Write([]byte(strings.Repeat("z", 20)))
	if b.String() != "zzzzzzzz" {
		t.Errorf("tail after big write: %q", b.String())
	}
	if s := capOutput("short", 4); s != "short" {
		t.Errorf("cap short: %q", s)
	}
	long := strings.Repeat("é", 5000) // 10000 bytes
	s := capOutput(long, 4096)
	if !strings.HasSuffix(s, " ... (captured 4096 of 10000 bytes)") || len(s) > 4096+64 {
		t.Errorf("cap long: %d bytes, ends %q", len(s), s[len(s)-40:])
	}
	if s := truncateTTL(strings.Repeat("a", 10), 4); s != "aaaa ... (captured 4 of 10 bytes)" {
		t.Errorf("ttl truncate: %q", s)
	}
}

func TestDecodeHealthResponse(t *testing.T) {
	for _, tc := range []struct {
		msg  []byte
		want int64
		err  bool
	}{
		{nil, 0, false},
		{[]byte{0x08, 0x01}, 1, false},
		{[]byte{0x12, 0x02, 'h', 'i', 0x08, 0x02}, 2, false}, // unknown field skipped
		{[]byte{0x0d, 1, 2, 3, 4, 0x08, 0x03}, 3, false},     // fixed32 skipped
		{[]byte{0x08}, 0, true},
		{[]byte{0x12, 0x09, 'x'}, 0, true},
		{[]byte{0x0b}, 0, true}, // group
	} {
		got, err := decodeHealthResponse(tc.msg)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("% x: got %d, %v", tc.msg, got, err)
		}
	}
	req := encodeHealthRequest("svc")
	if binary.BigEndian.Uint32(req[1:5]) != 5 || string(req[5:]) != "\x0a\x03svc" {
		t.Errorf("request % x", req)
	}
}
