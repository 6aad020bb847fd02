package ipc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/ipc/ipctest"
)

type echoReq struct {
	Text  string `codec:"text"`
	Count int    `codec:"count"`
}

type echoResp struct {
	Text string `codec:"text"`
	N    int    `codec:"n"`
}

var errOdd = ipc.NewError("odd", "odd count")

func testMux() *ipc.Mux {
	m := ipc.NewMux()
	ipc.Unary(m, "echo", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		if r.Count%2 == 1 {
			return nil, errOdd
		}
		return &echoResp{Text: r.Text, N: r.Count}, nil
	})
	ipc.Unary(m, "wrapped", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		return nil, errors.Join(errors.New("context"), errOdd)
	})
	ipc.Unary(m, "panic", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		panic("boom")
	})
	ipc.Unary(m, "block", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ipc.Stream(m, "count", func(ctx context.Context, r *echoReq, send func(*echoResp) error) error {
		for i := 0; i < r.Count; i++ {
			if err := send(&echoResp{Text: r.Text, N: i}); err != nil {
				return err
			}
		}
		if r.Text == "fail" {
			return errOdd
		}
		return nil
	})
	return m
}

func startMem(t *testing.T) (*ipctest.Listener, *ipc.Client) {
	t.Helper()
	l := ipctest.NewListener()
	srv := ipc.NewServer(ipc.ServerConfig{Mux: testMux(), Log: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := l.Client()
	t.Cleanup(func() {
		c.Close()
		cancel()
		l.Cut()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l, c
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestUnaryAndErrors(t *testing.T) {
	_, c := startMem(t)
	ctx := context.Background()
	r, err := ipc.Call[echoReq, echoResp](ctx, c, "echo", &echoReq{Text: "hi", Count: 2})
	if err != nil || r.Text != "hi" || r.N != 2 {
		t.Fatalf("echo = %+v, %v", r, err)
	}
	cases := []struct {
		method string
		want   error
	}{
		{"echo", errOdd},
		{"wrapped", errOdd},
		{"nope", ipc.ErrUnknownMethod},
		{"panic", ipc.ErrInternal},
	}
	for _, tc := range cases {
		_, err := ipc.Call[echoReq, echoResp](ctx, c, tc.method, &echoReq{Count: 1})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.method, err, tc.want)
		}
	}
	// The server survived the panic.
	if _, err := ipc.Call[echoReq, echoResp](ctx, c, "echo", &echoReq{Count: 4}); err != nil {
		t.Fatalf("after panic: %v", err)
	}
	_, err = ipc.Call[echoReq, echoResp](ctx, c, "nope", &echoReq{})
	if !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown method error does not name it: %v", err)
	}
}

func TestStream(t *testing.T) {
	_, c := startMem(t)
	ctx := context.Background()
	s, err := ipc.OpenStream[echoReq, echoResp](ctx, c, "count", &echoReq{Text: "x", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		it, err := s.Recv()
		if err != nil || it.N != i {
			t.Fatalf("item %d = %+v, %v", i, it, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end = %v, want EOF", err)
	}
	s.Close()
	s, _ = ipc.OpenStream[echoReq, echoResp](ctx, c, "count", &echoReq{Text: "fail", Count: 1})
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, errOdd) {
		t.Fatalf("stream error = %v, want errOdd", err)
	}
}

func TestCancelReachesServer(t *testing.T) {
	_, c := startMem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := ipc.Call[echoReq, echoResp](ctx, c, "block", &echoReq{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline", err)
	}
}

func TestRedialAfterCut(t *testing.T) {
	l, c := startMem(t)
	ctx := context.Background()
	if _, err := ipc.Call[echoReq, echoResp](ctx, c, "echo", &echoReq{}); err != nil {
		t.Fatal(err)
	}
	l.Cut()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := ipc.Call[echoReq, echoResp](ctx, c, "echo", &echoReq{})
		if err == nil {
			return
		}
		if !errors.Is(err, ipc.ErrUnavailable) {
			t.Fatalf("after cut: %v, want ErrUnavailable or success", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not redial: %v", err)
		}
	}
}

func TestUnixSocketAndConcurrency(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.sock")
	l, err := ipc.ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, %v", fi.Mode(), err)
	}
	srv := ipc.NewServer(ipc.ServerConfig{Mux: testMux()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := ipc.NewClient(path, ipc.UnixDialer(path))
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r, err := ipc.Call[echoReq, echoResp](context.Background(), c, "echo", &echoReq{Text: "t", Count: 2 * i})
				if err != nil || r.N != 2*i {
					t.Errorf("call: %+v %v", r, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	// A second listener on a live socket is refused with advice.
	if _, err := ipc.ListenUnix(path, 0o660); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second listen: %v", err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A stale socket file is replaced.
	if l2, err := ipc.ListenUnix(path, 0o660); err != nil {
		t.Fatalf("relisten over stale socket: %v", err)
	} else {
		l2.Close()
	}
}

func TestFrameLimit(t *testing.T) {
	_, c := startMem(t)
	big := strings.Repeat("x", ipc.DefaultMaxFrame+1)
	_, err := ipc.Call[echoReq, echoResp](context.Background(), c, "echo", &echoReq{Text: big})
	if !errors.Is(err, ipc.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}
