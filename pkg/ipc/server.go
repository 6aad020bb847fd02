package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	Mux      *Mux
	Log      *slog.Logger
	MaxFrame int // bytes; 0 means DefaultMaxFrame
	// MaxStreams bounds concurrent calls per connection; 0 means 4096.
	MaxStreams int
}

// Server serves a Mux on listeners and single connections.
type Server struct {
	c  ServerConfig
	wg sync.WaitGroup // every goroutine the server started
}

// NewServer returns a server; it starts nothing.
func NewServer(c ServerConfig) *Server {
	if c.MaxFrame <= 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 4096
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Mux == nil {
		c.Mux = NewMux()
	}
	return &Server{c: c}
}

// ListenUnix listens on a Unix socket at path with the given file mode,
// replacing a stale socket file left by a dead process.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another process is serving this socket; stop it first", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return l, nil
}

// Serve accepts connections until ctx ends or the listener fails. It closes
// the listener and returns only after every connection it served is done.
// A cancelled context is a clean stop and returns nil.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.ServeConn(ctx, conn)
		}()
	}
}

// ServeConn serves one connection (a yamux session) until it closes or ctx
// ends. It blocks; it closes conn before returning.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	cfg := yamuxConfig()
	cfg.AcceptBacklog = s.c.MaxStreams
	bc := newBatchConn(conn)
	sess, err := yamux.Server(bc, cfg)
	if err != nil {
		bc.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	defer sess.Close()
	var calls sync.WaitGroup
	defer calls.Wait()
	sem := make(chan struct{}, s.c.MaxStreams)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			// Too many calls at once on this connection: refuse this one.
			fw := newFrameWriter(st, s.c.MaxFrame)
			fw.writeValue(respHeader{Kind: kindError, Code: CodeUnavailable, Message: "too many concurrent calls"})
			fw.flush()
			fw.release()
			st.Close()
			continue
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer func() { <-sem }()
			s.serveStream(ctx, st)
		}()
	}
}

func yamuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = true
	cfg.KeepAliveInterval = 10 * time.Second
	cfg.ConnectionWriteTimeout = 10 * time.Second
	cfg.StreamCloseTimeout = 30 * time.Second
	cfg.MaxStreamWindowSize = 1 << 20
	return cfg
}

// errHandlerReturned answers a stream send made after its handler returned.
var errHandlerReturned = errors.New("ipc: send after the handler returned")

// serveStream runs one call on one stream.
func (s *Server) serveStream(ctx context.Context, st *yamux.Stream) {
	defer st.Close()
	fr := newFrameReader(st, s.c.MaxFrame)
	fw := newFrameWriter(st, s.c.MaxFrame)
	writeErr := func(err error) {
		fw.writeValue(respHeader{Kind: kindError, Code: codeOf(err), Message: err.Error()})
		fw.flush()
		fw.release()
	}
	var hdr reqHeader
	if err := fr.readValue(&hdr); err != nil {
		writeErr(fmt.Errorf("read request: %w", err))
		return
	}
	body, err := fr.readFrame()
	if err != nil {
		writeErr(fmt.Errorf("read request body: %w", err))
		return
	}
	h, ok := s.c.Mux.lookup(hdr.Method)
	if !ok {
		writeErr(&Error{Code: CodeUnknownMethod, Message: fmt.Sprintf("unknown method %q: the daemon does not serve it (is it a different version?)", hdr.Method)})
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The client closing its side (or the session dying) cancels the call.
	// The client closes only after reading the last frame, so this
	// goroutine ends soon after the call; yamux's close timeout bounds it.
	watcher := make(chan struct{})
	defer func() { st.Close(); <-watcher }()
	go func() {
		defer close(watcher)
		var b [1]byte
		st.Read(b[:])
		cancel()
	}()
	var (
		sendMu   sync.Mutex // guards fw and finished across concurrent sends
		finished bool       // the handler returned; fw is released
	)
	c := &call{body: body, send: func(v any) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if finished {
			return errHandlerReturned
		}
		if err := cctx.Err(); err != nil {
			return err
		}
		if err := fw.writeValue(respHeader{Kind: kindItem}); err != nil {
			return err
		}
		if err := fw.writeValue(v); err != nil {
			return err
		}
		return fw.flush()
	}}
	res, err := s.runHandler(cctx, hdr.Method, h, c)
	sendMu.Lock()
	defer sendMu.Unlock()
	finished = true
	defer fw.release()
	switch {
	case err != nil:
		writeErr(err)
	case res != nil:
		err := fw.writeValue(respHeader{Kind: kindResult})
		if err == nil {
			err = fw.writeValue(res)
		}
		if err != nil {
			// Nothing has left yet: answer the failure instead.
			s.c.Log.Warn("ipc write result", "method", hdr.Method, "err", err)
			fw.buf = fw.buf[:0]
			writeErr(fmt.Errorf("%s: result: %w", hdr.Method, err))
			return
		}
		fw.flush()
	default:
		fw.writeValue(respHeader{Kind: kindEnd})
		fw.flush()
	}
}

// runHandler calls h, turning a panic into an internal error for this call.
func (s *Server) runHandler(ctx context.Context, method string, h handlerFunc, c *call) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.c.Log.Error("ipc handler panic", "method", method, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: internal error (handler panic: %v)", method, p)}
		}
	}()
	return h(ctx, c)
}
