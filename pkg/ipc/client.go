package ipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// Dialer opens a connection to a daemon. A Dialer may write a preamble (for
// example a port-multiplexing byte) before returning the connection.
type Dialer func(ctx context.Context) (net.Conn, error)

// UnixDialer dials a Unix socket.
func UnixDialer(path string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// TCPDialer dials a TCP address, writing preamble (if not empty) first.
func TCPDialer(addr string, preamble []byte) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{KeepAlive: 15 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if len(preamble) > 0 {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(preamble); err != nil {
				c.Close()
				return nil, err
			}
			c.SetWriteDeadline(time.Time{})
		}
		return c, nil
	}
}

// Client calls methods on one daemon. It dials lazily and redials after
// the session breaks. Safe for concurrent use; calls share one session.
type Client struct {
	dial     Dialer
	name     string // for error messages: the socket path or address
	maxFrame int

	mu     sync.Mutex // guards sess and closed
	sess   *yamux.Session
	closed bool
}

// NewClient returns a client that dials with d. name appears in errors.
func NewClient(name string, d Dialer) *Client {
	return &Client{dial: d, name: name, maxFrame: DefaultMaxFrame}
}

// Close closes the session; later calls fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.sess != nil {
		return c.sess.Close()
	}
	return nil
}

// session returns a live session, dialing if needed.
func (c *Client) session(ctx context.Context) (*yamux.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s: client closed", c.name)
	}
	if c.sess != nil && !c.sess.IsClosed() {
		return c.sess, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.dial(dctx)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("connect %s: %v (is the daemon running?)", c.name, err), Unsent: true}
	}
	bc := newBatchConn(conn)
	sess, err := yamux.Client(bc, yamuxConfig())
	if err != nil {
		bc.Close()
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("connect %s: %v", c.name, err), Unsent: true}
	}
	c.sess = sess
	return sess, nil
}

// open starts a call: it opens a stream and sends method and request.
func (c *Client) open(ctx context.Context, method string, req any) (*yamux.Stream, *frameReader, error) {
	body, err := Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: encode request: %w", method, err)
	}
	// Both frames go out in one write, before any stream is opened, so a
	// request over the limit fails without touching the connection.
	fw := newFrameWriter(nil, c.maxFrame)
	defer fw.release()
	err = fw.writeValue(reqHeader{Method: method})
	if err == nil {
		err = fw.writeFrame(body)
	}
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return nil, nil, fmt.Errorf("%s: %w", method, err)
		}
		return nil, nil, fmt.Errorf("%s: encode request: %w", method, err)
	}
	for attempt := 0; ; attempt++ {
		sess, err := c.session(ctx)
		if err != nil {
			return nil, nil, err
		}
		st, err := sess.OpenStream()
		if err != nil {
			// A dead session is replaced once; the call has not been sent.
			if attempt == 0 {
				continue
			}
			return nil, nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s %s: %v", c.name, method, err), Unsent: true}
		}
		fw.w = st
		if err := fw.flush(); err != nil {
			st.Close()
			return nil, nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s %s: send: %v", c.name, method, err)}
		}
		return st, newFrameReader(st, c.maxFrame), nil
	}
}

// readHeader reads the next response header, turning error responses and
// broken streams into errors.
func (c *Client) readHeader(method string, fr *frameReader) (respHeader, error) {
	var h respHeader
	if err := fr.readValue(&h); err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return h, fmt.Errorf("%s: %w", method, err)
		}
		return h, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s %s: connection lost: %v (outcome unknown)", c.name, method, err)}
	}
	if h.Kind == kindError {
		return h, &Error{Code: h.Code, Message: h.Message}
	}
	return h, nil
}

// Call makes a unary call and decodes the result. A cancelled ctx abandons
// the call (the server sees it cancelled) and returns ctx's error.
func Call[Req, Resp any](ctx context.Context, c *Client, method string, req *Req) (*Resp, error) {
	st, fr, err := c.open(ctx, method, req)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	h, err := c.readHeader(method, fr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if h.Kind != kindResult {
		return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s: %s answered a stream, not a result", method, c.name)}
	}
	resp := new(Resp)
	if err := fr.readValue(resp); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s %s: read result: %v", c.name, method, err)}
	}
	return resp, nil
}

// StreamReader reads the items of a streaming call.
type StreamReader[Item any] struct {
	c      *Client
	method string
	st     *yamux.Stream
	fr     *frameReader
	stop   func() bool
	done   bool
}

// OpenStream starts a streaming call. Cancelling ctx ends the stream.
func OpenStream[Req, Item any](ctx context.Context, c *Client, method string, req *Req) (*StreamReader[Item], error) {
	st, fr, err := c.open(ctx, method, req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	return &StreamReader[Item]{c: c, method: method, st: st, fr: fr, stop: stop}, nil
}

// Recv blocks for the next item. It returns io.EOF when the server ended the
// stream cleanly, or the call's error.
func (s *StreamReader[Item]) Recv() (*Item, error) {
	if s.done {
		return nil, io.EOF
	}
	h, err := s.c.readHeader(s.method, s.fr)
	if err != nil {
		s.done = true
		return nil, err
	}
	switch h.Kind {
	case kindItem:
		it := new(Item)
		if err := s.fr.readValue(it); err != nil {
			s.done = true
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s %s: read item: %v", s.c.name, s.method, err)}
		}
		return it, nil
	case kindEnd:
		s.done = true
		return nil, io.EOF
	default:
		s.done = true
		return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s: unexpected response kind %d", s.method, h.Kind)}
	}
}

// Close ends the stream; the server's handler sees its context cancelled.
func (s *StreamReader[Item]) Close() error {
	s.stop()
	s.done = true
	return s.st.Close()
}
