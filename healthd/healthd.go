package healthd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/lifecycle"
)

// Daemon is healthd: it follows catalogd's stream of this node's check
// definitions, runs the checks and reports status changes back. It serves
// healthapi on its Unix socket.
type Daemon struct {
	c     Config
	log   *slog.Logger
	cat   Catalog
	owned *catalogapi.Client // dialed by New when Config.Catalog is nil; closed by Run
	alias *aliasClient       // alias checks' HTTP client
	ready chan struct{}

	life lifecycle.Guard // Run once, Close idempotent

	wake       chan struct{} // scheduler: events or workers changed (capacity 1)
	reportWake chan struct{} // reporter: something is pending or the stream came up (capacity 1)
	// runs counts check runs and alias watchers; Run waits for them.
	runs sync.WaitGroup
	// runCtx is Run's context, set before anything starts; alias
	// watchers derive theirs from it.
	runCtx context.Context

	mu        sync.Mutex // guards everything below
	checks    map[string]*checkState
	events    eventHeap
	queue     []*checkState          // due runs waiting for a worker, in due order
	nrunning  int                    // runs in progress, at most MaxRunning
	pending   map[string]*checkState // checks with something to report
	connected bool                   // the check stream is up and the full set applied
	reports   uint64                 // ReportChecks calls catalogd answered
}

// New checks c (after filling defaults) and returns a Daemon. It starts
// nothing.
func New(c Config) (*Daemon, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("healthd config: %w", err)
	}
	d := &Daemon{
		c:          c,
		log:        c.Log,
		cat:        c.Catalog,
		ready:      make(chan struct{}),
		checks:     map[string]*checkState{},
		pending:    map[string]*checkState{},
		wake:       make(chan struct{}, 1),
		reportWake: make(chan struct{}, 1),
	}
	if d.cat == nil {
		d.owned = catalogapi.Dial(c.CatalogSocket)
		d.cat = d.owned
	}
	d.alias = newAliasClient(c.AliasWait)
	return d, nil
}

// Ready is closed once healthd serves its socket. It does not wait for
// catalogd, which may be down.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Close stops a running Run and waits for it to return. Idempotent; after
// Close, Run returns at once.
func (d *Daemon) Close() error {
	d.life.Close()
	return nil
}

// Run serves the socket, follows catalogd's check stream (reconnecting
// with backoff while catalogd is away), runs the checks and reports their
// changes. Checks keep running while catalogd is away; what changed is
// reported once it is back. Run blocks until ctx ends or Close is called
// and returns after every goroutine it started has returned, running
// checks included (their runs are cancelled). A cancelled context is a
// clean stop and returns nil; failing to listen returns the error. Run
// may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, finish, ok, err := d.life.Start(ctx, "healthd")
	if !ok {
		return err
	}
	defer finish()
	// A failed listener cancels the whole Run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.runCtx = ctx
	if d.owned != nil {
		defer d.owned.Close()
	}
	defer d.alias.close()

	l := d.c.Listener
	if l == nil {
		var err error
		if l, err = ipc.ListenUnix(d.c.SocketPath, d.c.SocketMode); err != nil {
			return err
		}
	}
	mux := ipc.NewMux()
	healthapi.Register(mux, &server{d: d})
	srv := ipc.NewServer(ipc.ServerConfig{Mux: mux, Log: d.log.With("component", "socket")})

	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() {
		if err := srv.Serve(ctx, l); err != nil {
			serveErr = err
			cancel()
		}
	})
	wg.Go(func() { d.schedule(ctx) })
	wg.Go(func() { d.report(ctx) })
	wg.Go(func() { d.watch(ctx) })
	d.log.Info("healthd serving", "socket", l.Addr().String(), "node", d.c.Node, "max_running", d.c.MaxRunning, "script_checks", d.c.EnableScriptChecks)
	close(d.ready)
	<-ctx.Done()
	wg.Wait()
	d.mu.Lock()
	for _, c := range d.checks {
		d.removeLocked(c)
	}
	d.mu.Unlock()
	d.runs.Wait()
	if serveErr != nil {
		return fmt.Errorf("serve %s: %w", d.c.SocketPath, serveErr)
	}
	return nil
}

// watch follows catalogd's check stream, reopening it with backoff.
func (d *Daemon) watch(ctx context.Context) {
	log := d.log.With("component", "watch")
	backoff := d.c.ReconnectMin
	down := false // an outage was logged
	for ctx.Err() == nil {
		got, err := d.follow(ctx, log)
		d.setConnected(false)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = d.c.ReconnectMin
			down = false
		}
		if !down {
			log.Warn("check stream from catalogd lost; checks keep running, reports wait", "err", err)
			down = true
		} else {
			log.Debug("check stream still down", "err", err)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, d.c.ReconnectMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// maxPendingChecks bounds a full check set gathered from several items.
const maxPendingChecks = 1 << 20

// follow opens the stream and applies its items until it breaks. It
// reports whether a full set was applied.
func (d *Daemon) follow(ctx context.Context, log *slog.Logger) (bool, error) {
	st, err := d.cat.WatchChecks(ctx, d.c.Node)
	if err != nil {
		return false, err
	}
	defer st.Close()
	got := false
	var pending []catalogapi.CheckDefinition // a full set arriving in parts
	for {
		u, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("catalogd ended the check stream")
			}
			return got, err
		}
		if !got && !u.Full {
			return false, errors.New("check stream did not start with the full set")
		}
		if u.Full && u.More {
			if len(pending)+len(u.Checks) > maxPendingChecks {
				return got, fmt.Errorf("full check set exceeds %d checks", maxPendingChecks)
			}
			pending = append(pending, u.Checks...)
			continue
		}
		d.mu.Lock()
		if u.Full {
			d.applyFullLocked(append(pending, u.Checks...))
			pending = nil
		} else {
			d.applyUpdateLocked(u)
		}
		n := len(d.checks)
		d.mu.Unlock()
		if !got {
			got = true
			d.setConnected(true)
			log.Info("check stream up", "checks", n)
		} else if u.Full {
			log.Debug("full check set", "checks", n)
		}
	}
}

// setConnected records whether the stream is up and wakes the reporter
// when it comes up.
func (d *Daemon) setConnected(up bool) {
	d.mu.Lock()
	d.connected = up
	d.mu.Unlock()
	if up {
		select {
		case d.reportWake <- struct{}{}:
		default:
		}
	}
}
