package dnsd

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/consort-io/consort/pkg/lifecycle"
)

// Daemon is dnsd: it answers Consul's DNS forms over UDP and TCP from a
// local view of the catalog, loaded from catalogd and kept fresh by
// catalog and health events. It writes nothing anywhere.
type Daemon struct {
	c     Config
	log   *slog.Logger
	load  *loader
	ready chan struct{}

	view  atomic.Pointer[view] // replaced whole by the refresher; never nil
	dirty dirty
	wake  chan struct{} // refresher: dirty has something (capacity 1)

	events   atomic.Uint64 // catalog and health events received
	fulls    atomic.Uint64 // full loads that succeeded
	partials atomic.Uint64 // partial refreshes that succeeded
	lastErr  atomic.Pointer[string]

	addrMu sync.Mutex // guards addr
	addr   net.Addr

	life lifecycle.Guard // Run once, Close idempotent
}

// New checks c (after filling defaults) and returns a Daemon. It starts
// nothing.
func New(c Config) (*Daemon, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("dnsd config: %w", err)
	}
	d := &Daemon{
		c:     c,
		log:   c.Log,
		load:  newLoader(c),
		ready: make(chan struct{}),
		wake:  make(chan struct{}, 1),
	}
	d.view.Store(emptyView())
	return d, nil
}

// Ready is closed once dnsd serves UDP and TCP. It does not wait for the
// first view: until catalogd has answered once, catalog lookups get
// SERVFAIL.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Addr is the address DNS is served on (the same port for UDP and TCP),
// known once Ready is closed; nil before.
func (d *Daemon) Addr() net.Addr {
	d.addrMu.Lock()
	defer d.addrMu.Unlock()
	return d.addr
}

// Close stops a running Run and waits for it to return. Idempotent; after
// Close, Run returns at once.
func (d *Daemon) Close() error {
	d.life.Close()
	return nil
}

// Run listens on UDP and TCP, loads the view and keeps it fresh, and
// answers queries until ctx ends or Close is called. It returns after
// every goroutine it started has returned. A cancelled context is a clean
// stop and returns nil; failing to listen returns the error. Run may be
// called once.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, finish, ok, err := d.life.Start(ctx, "dnsd")
	if !ok {
		return err
	}
	defer finish()
	// A failed listener cancels the whole Run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pc, l, err := listen(d.c.Addr)
	if err != nil {
		return err
	}
	d.addrMu.Lock()
	d.addr = pc.LocalAddr()
	d.addrMu.Unlock()

	nc, err := d.connectBus(d.log.With("component", "bus"))
	if err != nil {
		pc.Close()
		l.Close()
		return err
	}
	if nc != nil {
		defer nc.Close()
	}

	var started sync.WaitGroup
	started.Add(2)
	mk := func(net string) *dns.Server {
		return &dns.Server{
			Net:               net,
			Handler:           dns.HandlerFunc(d.ServeDNS),
			MsgAcceptFunc:     accept,
			NotifyStartedFunc: started.Done,
		}
	}
	udp, tcp := mk("udp"), mk("tcp")
	udp.PacketConn, tcp.Listener = pc, l

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []*dns.Server{udp, tcp} {
		wg.Go(func() {
			if err := s.ActivateAndServe(); err != nil {
				errs <- fmt.Errorf("serve dns %s %s: %w", s.Net, d.c.Addr, err)
				cancel()
			}
		})
	}
	wg.Go(func() { d.refresh(ctx) })
	startedCh := make(chan struct{})
	go func() { started.Wait(); close(startedCh) }()
	select {
	case <-startedCh:
		d.log.Info("dnsd serving", "addr", d.addr.String(), "domain", d.c.Domain, "catalog", d.c.CatalogHTTP, "bus", d.c.NATSURL != "")
		close(d.ready)
	case <-ctx.Done():
	}
	<-ctx.Done()
	<-startedCh // Shutdown refuses a server that has not started
	for _, s := range []*dns.Server{udp, tcp} {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.ShutdownContext(sctx); err != nil {
			d.log.Warn("dns shutdown", "net", s.Net, "err", err)
		}
		scancel()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// listen opens UDP and TCP on the same address. With port 0 it asks for
// a free UDP port and tries TCP on it, a few times over.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns address %q: %w", addr, err)
	}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		l, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("listen tcp %s: %w", addr, lastErr)
}

// accept is miekg/dns's default check, kept explicit so that serveWire
// and the server agree: responses are ignored, opcodes other than QUERY
// and NOTIFY get NOTIMP, and anything but exactly one question gets
// FORMERR.
func accept(dh dns.Header) dns.MsgAcceptAction {
	return dns.DefaultMsgAcceptFunc(dh)
}

// ServeDNS answers one query from the current view. Safe for concurrent
// use; it never blocks on catalogd.
func (d *Daemon) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	if _, err := w.Write(d.respond(req, tcp)); err != nil {
		d.log.Debug("dns write", "err", err, "remote", w.RemoteAddr().String())
	}
}

// respond builds and packs the answer to req. A panic or an answer that
// does not pack (a catalog name that is no DNS name) becomes SERVFAIL:
// bad input must never stop the server.
func (d *Daemon) respond(req *dns.Msg, tcp bool) []byte {
	out, err := func() (out []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return d.answer(req, tcp, time.Now()).Pack()
	}()
	if err == nil {
		return out
	}
	d.log.Error("dns answer failed", "err", err)
	resp := new(dns.Msg)
	resp.SetRcode(req, dns.RcodeServerFailure)
	resp.Question = nil
	for _, q := range req.Question {
		if _, ok := dns.IsDomainName(q.Name); ok {
			resp.Question = append(resp.Question, q)
		}
	}
	out, err = resp.Pack()
	if err != nil {
		resp.Question = nil
		out, _ = resp.Pack()
	}
	return out
}

// serveWire is the path of one packet through the server, without the
// network: the header check, unpacking (FORMERR when it fails), the
// answer and packing. It returns nil where the server sends nothing.
// Fuzz targets drive it.
func (d *Daemon) serveWire(b []byte, tcp bool) []byte {
	if len(b) < 12 {
		return nil
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(b[0:]),
		Bits:    binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]),
		Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]),
		Arcount: binary.BigEndian.Uint16(b[10:]),
	}
	action := accept(dh)
	req := new(dns.Msg)
	if action == dns.MsgAccept {
		if err := req.Unpack(b); err != nil {
			action = dns.MsgReject
		}
	}
	switch action {
	case dns.MsgIgnore:
		return nil
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		resp := new(dns.Msg)
		resp.Id = dh.Id
		resp.Opcode = int(dh.Bits>>11) & 0xF
		resp.Response = true
		resp.Rcode = dns.RcodeFormatError
		if action == dns.MsgRejectNotImplemented {
			resp.Rcode = dns.RcodeNotImplemented
		}
		out, _ := resp.Pack() // header only: cannot fail
		return out
	}
	return d.respond(req, tcp)
}

// setErr records the last load error for the status record.
func (d *Daemon) setErr(err error) {
	if err == nil {
		d.lastErr.Store(nil)
		return
	}
	s := err.Error()
	d.lastErr.Store(&s)
}

// age is how old the view is: time since the last full load finished,
// or since dnsd started none.
func (d *Daemon) age() time.Duration {
	v := d.view.Load()
	if v.loaded.IsZero() {
		return 0
	}
	return time.Since(v.loaded)
}
