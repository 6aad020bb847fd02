package raftd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/ipc"
)

// preambleTimeout bounds how long a new connection may take to say what it
// carries.
const preambleTimeout = 5 * time.Second

// serveTCP accepts connections on the raft port and routes each by its
// first byte: RaftPreamble to raft's transport, RPCPreamble to raftd's
// RPC server. It returns when ctx ends (nil) or the listener fails, after
// every connection it routed to the RPC server is done.
func (d *Daemon) serveTCP(ctx context.Context, l net.Listener, layer *streamLayer, srv *ipc.Server) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
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
			return fmt.Errorf("accept on raft port %s: %w", l.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.routeConn(ctx, conn, layer, srv)
		}()
	}
}

// routeConn reads the preamble byte and hands the connection on.
func (d *Daemon) routeConn(ctx context.Context, conn net.Conn, layer *streamLayer, srv *ipc.Server) {
	conn.SetReadDeadline(time.Now().Add(preambleTimeout))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	switch b[0] {
	case RaftPreamble:
		layer.handoff(conn)
	case RPCPreamble:
		srv.ServeConn(ctx, conn)
	default:
		d.log.Debug("unknown connection preamble on raft port", "component", "mux", "byte", b[0], "remote", conn.RemoteAddr().String())
		conn.Close()
	}
}

// tcpAddr is the advertised address as a net.Addr; raft's transport takes
// its local address (the one it tells peers) from the stream layer.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// streamLayer is raft's StreamLayer over the shared port. Dial writes
// RaftPreamble; Accept returns the connections the mux routed to raft.
// Close also closes every connection it handed out or dialed, since raft's
// transport leaves accepted connections open on shutdown.
type streamLayer struct {
	addr  tcpAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex // guards open and closed
	open map[*trackedConn]struct{}
	shut bool
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(advertise string) *streamLayer {
	return &streamLayer{
		addr:  tcpAddr(advertise),
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
		open:  map[*trackedConn]struct{}{},
	}
}

// track registers c so Close can close it; it fails after Close.
func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.open[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) untrack(tc *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, tc)
}

// handoff gives an accepted raft connection to the transport, or closes
// it when the layer is closed.
func (s *streamLayer) handoff(c net.Conn) {
	tc, err := s.track(c)
	if err != nil {
		return
	}
	select {
	case s.conns <- tc:
	case <-s.done:
		tc.Close()
	}
}

// Accept waits for the next raft connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and closes every tracked connection.
func (s *streamLayer) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.shut = true
		open := s.open
		s.open = map[*trackedConn]struct{}{}
		s.mu.Unlock()
		for c := range open {
			c.Conn.Close()
		}
	})
	return nil
}

// Addr is the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.addr }

// Dial connects to a peer's raft port and writes RaftPreamble.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{RaftPreamble}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return s.track(c)
}

// trackedConn removes itself from its layer when closed.
type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.s.untrack(c) })
	return c.Conn.Close()
}
