// Package ipctest provides an in-memory listener and dialer speaking the
// real ipc framing, for unit tests of daemons and clients. Cut breaks every
// open connection, as a daemon restart would.
package ipctest

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/consort-io/consort/pkg/ipc"
)

// Listener is an in-memory net.Listener whose Dialer connects to it.
type Listener struct {
	mu     sync.Mutex // guards conns and closed
	conns  []net.Conn
	closed bool
	ch     chan net.Conn
	done   chan struct{}
}

// NewListener returns an open in-memory listener.
func NewListener() *Listener {
	return &Listener{ch: make(chan net.Conn), done: make(chan struct{})}
}

type addr struct{}

func (addr) Network() string { return "mem" }
func (addr) String() string  { return "ipctest" }

// Accept waits for a dialed connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; open connections stay until Cut.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

// Addr returns a placeholder address.
func (l *Listener) Addr() net.Addr { return addr{} }

// Dialer returns an ipc.Dialer connecting to l.
func (l *Listener) Dialer() ipc.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		select {
		case l.ch <- b:
			l.mu.Lock()
			l.conns = append(l.conns, a, b)
			l.mu.Unlock()
			return a, nil
		case <-l.done:
			return nil, errors.New("ipctest: listener closed")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Cut closes every connection made so far; clients redial on next call.
func (l *Listener) Cut() {
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Client returns an ipc client dialing l.
func (l *Listener) Client() *ipc.Client { return ipc.NewClient("ipctest", l.Dialer()) }
