package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults for Config.
const (
	DefaultURL    = "nats://127.0.0.1:4222"
	DefaultBuffer = 4096
	// CloseTimeout bounds how long Close spends delivering what is buffered.
	CloseTimeout = 2 * time.Second
)

// reconnectWait is the pause between attempts to reach NATS.
const reconnectWait = 500 * time.Millisecond

// Config configures a NATSPublisher. Zero fields take defaults.
type Config struct {
	URL    string       // NATS server URL(s), comma-separated; DefaultURL
	Name   string       // connection name shown by the server, e.g. "consort-raftd"
	Buffer int          // events held while NATS is slow or down; DefaultBuffer
	Log    *slog.Logger // nil: discard
}

// NATSPublisher is the Publisher daemons use: it publishes events to NATS
// without ever blocking its callers. (Publisher, the interface, is what
// daemon Configs hold.) Publish marshals the payload and puts it in a
// bounded buffer; one goroutine, owned by the NATSPublisher and stopped by
// Close, connects to NATS (retrying forever) and drains the buffer. While
// NATS is down the buffer fills and further events are dropped (newest
// first) and counted: events are hints, and subscribers resync on
// reconnect.
type NATSPublisher struct {
	cfg  Config
	log  *slog.Logger
	ch   chan message  // the buffer; never closed
	wake chan struct{} // connection state changed (capacity 1)
	stop chan struct{} // closed by Close
	done chan struct{} // closed when run returns

	published atomic.Uint64
	dropped   atomic.Uint64
	closing   atomic.Bool
	// dropWarned limits the "buffer full" warning to one per outage.
	dropWarned atomic.Bool

	closeOnce sync.Once
	closeErr  error // written by run before done closes
}

var _ Publisher = (*NATSPublisher)(nil)

type message struct {
	subject string
	data    []byte
}

// NewPublisher starts a NATSPublisher; it never fails and never waits for
// NATS. A bad URL is logged and every event is then dropped and counted.
func NewPublisher(c Config) *NATSPublisher {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &NATSPublisher{
		cfg:  c,
		log:  log.With("component", "bus"),
		ch:   make(chan message, c.Buffer),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.run()
	return p
}

// Publish marshals payload as JSON and queues it for subject. It never
// blocks: when the buffer is full, or after Close, the event is dropped and
// counted. A payload that does not marshal is dropped, counted and logged.
// Safe for concurrent use.
func (p *NATSPublisher) Publish(subject string, payload any) {
	if p.closing.Load() {
		p.dropped.Add(1)
		return
	}
	data, err := json.Marshal(payload)
	if err != nil {
		p.dropped.Add(1)
		p.log.Error("bus event not marshalled", "subject", subject, "err", err)
		return
	}
	select {
	case p.ch <- message{subject: subject, data: data}:
	default:
		p.dropped.Add(1)
		if p.dropWarned.CompareAndSwap(false, true) {
			p.log.Warn("bus buffer full, dropping events", "buffer", cap(p.ch))
		}
	}
}

// Published counts events handed to the NATS connection.
func (p *NATSPublisher) Published() uint64 { return p.published.Load() }

// Dropped counts events lost: buffer full, NATS refusing them, unmarshalable
// payloads, Publish after Close, and events still buffered when Close gave up.
func (p *NATSPublisher) Dropped() uint64 { return p.dropped.Load() }

// Close stops the NATSPublisher: it spends at most CloseTimeout delivering what
// is buffered and flushing the connection, drops and counts the rest, and
// returns after its goroutine has. Idempotent; the error is a failed flush.
func (p *NATSPublisher) Close() error {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		close(p.stop)
	})
	<-p.done
	return p.closeErr
}

func (p *NATSPublisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run owns the NATS connection: it connects, drains the buffer while
// connected, and on stop delivers what it can before closing.
func (p *NATSPublisher) run() {
	defer close(p.done)
	nc, err := nats.Connect(p.cfg.URL,
		nats.Name(p.cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// No hidden second buffer inside nats.go: while disconnected its
		// Publish fails at once and the event stays in ours.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) { p.log.Info("bus connected", "url", p.cfg.URL); p.signal() }),
		nats.ReconnectHandler(func(*nats.Conn) {
			p.log.Info("bus reconnected", "dropped_total", p.dropped.Load())
			p.dropWarned.Store(false)
			p.signal()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				p.log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { p.signal() }),
	)
	if err != nil {
		p.log.Error("bus unusable, events will be dropped", "url", p.cfg.URL, "err", err)
		<-p.stop
		p.dropped.Add(uint64(p.discard()))
		return
	}
	p.closeErr = p.drain(nc)
	nc.Close()
}

// drain sends buffered events until stop, then finishes within CloseTimeout.
func (p *NATSPublisher) drain(nc *nats.Conn) error {
	var held *message // taken from the buffer, not yet accepted by NATS
	for {
		if held == nil {
			select {
			case m := <-p.ch:
				held = &m
			case <-p.stop:
				return p.finish(nc, nil)
			}
		}
		if !nc.IsConnected() {
			select {
			case <-p.wake:
			case <-time.After(reconnectWait):
			case <-p.stop:
				return p.finish(nc, held)
			}
			continue
		}
		if p.send(nc, *held) {
			held = nil
		}
	}
}

// send hands one event to NATS. It reports false when the event should be
// retried after a reconnect, true when it was sent or dropped for good.
func (p *NATSPublisher) send(nc *nats.Conn, m message) bool {
	err := nc.Publish(m.subject, m.data)
	switch {
	case err == nil:
		p.published.Add(1)
		return true
	case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting):
		return false
	case errors.Is(err, nats.ErrConnectionClosed):
		p.dropped.Add(1)
		return true
	default:
		p.dropped.Add(1)
		p.log.Warn("bus event refused", "subject", m.subject, "bytes", len(m.data), "err", err)
		return true
	}
}

// finish delivers held and the buffer while the deadline allows, flushes,
// and counts everything left as dropped.
func (p *NATSPublisher) finish(nc *nats.Conn, held *message) error {
	deadline := time.Now().Add(CloseTimeout)
	for time.Now().Before(deadline) {
		if held == nil {
			select {
			case m := <-p.ch:
				held = &m
			default:
			}
		}
		if held == nil {
			break
		}
		if !nc.IsConnected() {
			select {
			case <-p.wake:
			case <-time.After(time.Until(deadline)):
			}
			continue
		}
		if p.send(nc, *held) {
			held = nil
		}
	}
	lost := p.discard()
	if held != nil {
		lost++
	}
	p.dropped.Add(uint64(lost))
	if lost > 0 {
		p.log.Warn("bus closed with undelivered events", "dropped", lost)
	}
	if !nc.IsConnected() {
		return nil
	}
	if err := nc.FlushTimeout(max(time.Until(deadline), 100*time.Millisecond)); err != nil {
		return fmt.Errorf("bus flush: %w", err)
	}
	return nil
}

// discard empties the buffer and returns how many events it held.
func (p *NATSPublisher) discard() int {
	n := 0
	for {
		select {
		case <-p.ch:
			n++
		default:
			return n
		}
	}
}

// Connect opens a NATS connection for a subscriber: named, retrying the
// first connect and reconnecting forever. It returns at once even when
// NATS is down. Extra options are applied after these, so a caller can
// add handlers (nats.ReconnectHandler to resync state, for one).
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	if url == "" {
		url = DefaultURL
	}
	all := append([]nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("bus connect %s: %w", url, err)
	}
	return nc, nil
}
