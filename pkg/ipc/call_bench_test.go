package ipc_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/consort-io/consort/pkg/ipc"
)

// BenchmarkCall measures one unary call over a real Unix socket, as
// catalogd calls raftd's Apply, from 1 and 64 goroutines sharing one
// client.
//
//	go test -run '^$' -bench Call -benchmem ./pkg/ipc
func BenchmarkCall(b *testing.B) {
	path := filepath.Join(b.TempDir(), "d.sock")
	l, err := ipc.ListenUnix(path, 0o660)
	if err != nil {
		b.Fatal(err)
	}
	srv := ipc.NewServer(ipc.ServerConfig{Mux: testMux()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := ipc.NewClient(path, ipc.UnixDialer(path))
	defer func() {
		c.Close()
		cancel()
		<-done
	}()
	req := &echoReq{Text: strings.Repeat("x", 200), Count: 2}
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			per := (b.N + par - 1) / par
			b.ResetTimer()
			for g := 0; g < par; g++ {
				wg.Go(func() {
					for i := 0; i < per; i++ {
						if _, err := ipc.Call[echoReq, echoResp](context.Background(), c, "echo", req); err != nil {
							mu.Lock()
							failed = err
							mu.Unlock()
							return
						}
					}
				})
			}
			wg.Wait()
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}
