package catalogd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consort-io/consort/catalogd/agent"
	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
)

// Daemon is a running catalogd: the state machine fed from raftd, the
// HTTP API and the catalogd socket.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	store  *state.Store
	track  *tracker
	status statusCache
	// replayUntil: entries at or below it were committed before this
	// process started and are applied without bus events.
	replayUntil atomic.Uint64

	// Bounds on waiting for the store to reach an index; constants
	// outside tests.
	readWait, applyWait time.Duration

	ready     chan struct{} // closed when serving
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	started   atomic.Bool

	mu       sync.Mutex // guards httpAddr
	httpAddr net.Addr

	// agent is this node's agent state and its anti-entropy sync.
	agent *agent.Agent
	// healthd is told about TTL updates; nil without a healthd socket.
	healthd *healthapi.Client
	// ttl holds the session TTL deadlines while this server leads.
	ttl *ttlTimers
}

// New checks c and returns a Daemon; it starts nothing. Zero fields are
// filled from DefaultConfig, except HTTPAddr and SocketPath, where empty
// means "do not serve".
func New(c Config) (*Daemon, error) {
	c = c.fill()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("catalogd config: %w", err)
	}
	d := &Daemon{
		cfg:       c,
		log:       c.Log,
		store:     state.New(),
		track:     newTracker(maxResults),
		readWait:  readWait,
		applyWait: applyWait,
		ready:     make(chan struct{}),
		closing:   make(chan struct{}),
		ttl:       newTTLTimers(),
	}
	a, err := d.newAgent()
	if err != nil {
		return nil, fmt.Errorf("catalogd agent: %w", err)
	}
	d.agent = a
	d.healthd = dialHealthd(c.HealthdSocket)
	return d, nil
}

// Run serves until ctx ends or Close is called, then returns after every
// goroutine it started has returned. It follows raftd's feed (reopening
// it while raftd is away), serves HTTP on Config.HTTPAddr and the
// catalogd socket on Config.SocketPath. A clean stop returns nil; failing
// to listen, or a listener failing, returns the error. Run may be called
// once.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("catalogd: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var hl, sl net.Listener
	var err error
	if d.cfg.HTTPAddr != "" {
		if hl, err = net.Listen("tcp", d.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen http %s: %w", d.cfg.HTTPAddr, err)
		}
		d.mu.Lock()
		d.httpAddr = hl.Addr()
		d.mu.Unlock()
	}
	if d.cfg.SocketPath != "" {
		if sl, err = ipc.ListenUnix(d.cfg.SocketPath, 0o660); err != nil {
			if hl != nil {
				hl.Close()
			}
			return err
		}
	}

	// Entries raftd had committed before this start are replayed silently.
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	if st, err := d.cfg.Raft.Status(sctx); err == nil {
		d.replayUntil.Store(st.CommitIndex)
		d.status.put(st, nil)
	}
	scancel()

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		select {
		case <-d.closing:
			cancel()
		case <-ctx.Done():
		}
	})
	wg.Go(func() { d.runFeed(ctx) })
	wg.Go(func() { d.runStatus(ctx) })
	wg.Go(func() { d.agent.Run(ctx) })
	wg.Go(func() { d.runLeader(ctx) })
	wg.Go(func() { d.runTTL(ctx) })

	var hs *http.Server
	if hl != nil {
		hs = &http.Server{
			Handler: d.Handler(),
			// Request contexts end with Run, so blocking queries return.
			BaseContext:       func(net.Listener) context.Context { return ctx },
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		}
		wg.Go(func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve http %s: %w", hl.Addr(), err)
			}
		})
	}
	if sl != nil {
		mux := ipc.NewMux()
		catalogapi.Register(mux, d)
		catalogapi.RegisterChecks(mux, d)
		srv := ipc.NewServer(ipc.ServerConfig{Mux: mux, Log: d.log.With("component", "socket")})
		wg.Go(func() {
			if err := srv.Serve(ctx, sl); err != nil {
				errc <- fmt.Errorf("serve socket %s: %w", d.cfg.SocketPath, err)
			}
		})
	}
	d.log.Info("serving", "http", d.HTTPAddr(), "socket", d.cfg.SocketPath, "raftd", d.cfg.RaftSocket)
	close(d.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	if hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
		scancel()
	}
	wg.Wait()
	if d.healthd != nil {
		d.healthd.Close()
	}
	d.log.Info("stopped", "applied", d.track.applied())
	return runErr
}

// Ready is closed once Run listens and serves.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Close stops Run; it is idempotent and safe before, during or after Run.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { close(d.closing) })
	return nil
}

// HTTPAddr returns the address the HTTP API listens on (useful with port
// 0), or nil before Ready or when HTTP is disabled.
func (d *Daemon) HTTPAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.httpAddr
}

// Applied returns the last raft index the state machine applied.
func (d *Daemon) Applied() uint64 { return d.track.applied() }
