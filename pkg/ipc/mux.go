package ipc

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// call is what a handler sees of one call: the request body decoder and a
// way to send items (stream calls) back.
type call struct {
	body []byte
	send func(v any) error
}

// handlerFunc runs one call and returns the unary result (nil for streams).
type handlerFunc func(ctx context.Context, c *call) (any, error)

// Mux maps method names to handlers. A daemon builds one Mux, registers its
// methods with Unary and Stream, and serves it with a Server. Safe for
// concurrent use; registering after serving started is allowed.
type Mux struct {
	mu       sync.RWMutex // guards handlers
	handlers map[string]handlerFunc
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{handlers: map[string]handlerFunc{}} }

func (m *Mux) register(method string, h handlerFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.handlers[method]; dup {
		panic("ipc: method registered twice: " + method)
	}
	m.handlers[method] = h
}

func (m *Mux) lookup(method string) (handlerFunc, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, ok := m.handlers[method]
	return h, ok
}

// Methods lists the registered method names, sorted.
func (m *Mux) Methods() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.handlers))
	for k := range m.handlers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unary registers a request/response method.
func Unary[Req, Resp any](m *Mux, method string, h func(ctx context.Context, req *Req) (*Resp, error)) {
	m.register(method, func(ctx context.Context, c *call) (any, error) {
		req := new(Req)
		if err := Unmarshal(c.body, req); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, method, err)
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		if resp == nil {
			resp = new(Resp)
		}
		return resp, nil
	})
}

// Stream registers a server-streaming method: the handler calls send for
// each item and returns nil to end the stream cleanly. send blocks while the
// client is slow (yamux flow control) and fails once the client is gone.
func Stream[Req, Item any](m *Mux, method string, h func(ctx context.Context, req *Req, send func(*Item) error) error) {
	m.register(method, func(ctx context.Context, c *call) (any, error) {
		req := new(Req)
		if err := Unmarshal(c.body, req); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, method, err)
		}
		return nil, h(ctx, req, func(it *Item) error { return c.send(it) })
	})
}
