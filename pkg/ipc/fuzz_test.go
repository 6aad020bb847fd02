package ipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader and header
// decoder: they must never panic nor allocate beyond the limit.
func FuzzReadFrame(f *testing.F) {
	good, _ := Marshal(reqHeader{Method: "raft.Apply"})
	var seed bytes.Buffer
	binary.Write(&seed, binary.BigEndian, uint32(len(good)))
	seed.Write(good)
	f.Add(seed.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 1, 0xc1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 4; i++ {
			var h reqHeader
			if err := fr.readValue(&h); err != nil {
				return
			}
			var rh respHeader
			Unmarshal(b, &rh)
		}
	})
}

// FuzzServeStream sends arbitrary bytes as a whole call to a real server
// over an in-memory yamux session: the server answers or drops the call,
// never panics, and keeps serving.
func FuzzServeStream(f *testing.F) {
	h, _ := Marshal(reqHeader{Method: "echo"})
	body, _ := Marshal(map[string]any{"text": "x"})
	var seed bytes.Buffer
	for _, fr := range [][]byte{h, body} {
		binary.Write(&seed, binary.BigEndian, uint32(len(fr)))
		seed.Write(fr)
	}
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	mux := NewMux()
	Unary(mux, "echo", func(ctx context.Context, r *struct {
		Text string `codec:"text"`
	}) (*struct{ N int }, error) {
		return &struct{ N int }{N: len(r.Text)}, nil
	})
	srv := NewServer(ServerConfig{Mux: mux, MaxFrame: 1 << 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, z := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); srv.ServeConn(ctx, z) }()
		c := NewClient("fuzz", func(context.Context) (net.Conn, error) { return a, nil })
		sess, err := c.session(ctx)
		if err == nil {
			if st, err := sess.OpenStream(); err == nil {
				st.SetDeadline(time.Now().Add(time.Second))
				st.Write(b)
				st.Close() // half-close: the server reads EOF after b
				io.Copy(io.Discard, io.LimitReader(st, 1<<16))
			}
		}
		c.Close()
		cancel()
		<-done
	})
}
