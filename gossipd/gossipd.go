package gossipd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/gossipapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/lifecycle"
)

// Daemon is gossipd: serf's LAN pool and, on servers, its WAN pool,
// served as gossipapi on a Unix socket and announced on the bus.
type Daemon struct {
	c        Config
	log      *slog.Logger
	subjects bus.Subjects
	ready    chan struct{}
	watch    watchers

	life lifecycle.Guard // Run once, Close idempotent

	mu   sync.Mutex // guards lan, wan, left
	lan  *pool
	wan  *pool // nil on clients
	left bool  // Leave was called; the pools are shut down
}

// New checks c (after filling defaults) and returns a Daemon. It starts
// nothing.
func New(c Config) (*Daemon, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gossipd config: %w", err)
	}
	return &Daemon{
		c:        c,
		log:      c.Log,
		subjects: bus.Subjects{Prefix: c.Subjects},
		ready:    make(chan struct{}),
		watch:    watchers{set: map[*watcher]struct{}{}, buf: c.WatchBuffer},
	}, nil
}

// Ready is closed once the pools are up and the socket serves.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// LANAddr is the LAN pool's advertised address (ip:port); valid after
// Ready and before Leave.
func (d *Daemon) LANAddr() string {
	p, err := d.pool(gossipapi.PoolLAN)
	if err != nil {
		return ""
	}
	lm := p.serf.LocalMember()
	return fmt.Sprintf("%s:%d", lm.Addr, lm.Port)
}

// WANAddr is the WAN pool's advertised address, "" without one.
func (d *Daemon) WANAddr() string {
	p, err := d.pool(gossipapi.PoolWAN)
	if err != nil {
		return ""
	}
	lm := p.serf.LocalMember()
	return fmt.Sprintf("%s:%d", lm.Addr, lm.Port)
}

// Close stops a running Run without leaving (other members see this node
// fail, and a restart rejoins) and waits for Run to return. Idempotent;
// after Close, Run returns at once.
func (d *Daemon) Close() error {
	d.life.Close()
	return nil
}

// Run starts the pools (rejoining from their snapshots), serves the
// socket and retries the configured joins. It blocks until ctx ends or
// Close is called, then stops gossip without leaving: a stopped gossipd
// looks failed to the others until it is back. Use Leave to leave. It
// returns after every goroutine it started has returned; a cancelled
// context is a clean stop and returns nil. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, finish, ok, err := d.life.Start(ctx, "gossipd")
	if !ok {
		return err
	}
	defer finish()
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) error {
	c := d.c
	if c.Server && c.WANPort < 0 {
		d.log.Info("WAN pool disabled (serf_wan = -1)")
	}
	var wan *pool
	wanPort := -1
	if c.wanEnabled() {
		p, err := d.startPool(gossipapi.PoolWAN, c.WANPort, 0)
		if err != nil {
			return err
		}
		wan, wanPort = p, p.port()
	}
	lan, err := d.startPool(gossipapi.PoolLAN, c.LANPort, wanPort)
	if err != nil {
		if wan != nil {
			shutdownPool(wan)
		}
		return err
	}
	d.mu.Lock()
	d.lan, d.wan = lan, wan
	d.mu.Unlock()
	defer d.shutdownPools()

	ln := c.Listener
	if ln == nil {
		if ln, err = ipc.ListenUnix(c.SocketPath, c.SocketMode); err != nil {
			return err
		}
	}
	mux := ipc.NewMux()
	gossipapi.Register(mux, api{d})
	srv := ipc.NewServer(ipc.ServerConfig{Mux: mux, Log: d.log.With("component", "ipc")})

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, ln); err != nil {
			errc <- fmt.Errorf("socket: %w", err)
		}
	}()
	joins := []struct {
		p     *pool
		addrs []string
	}{{lan, c.RetryJoin}, {wan, c.RetryJoinWAN}}
	for _, j := range joins {
		if j.p == nil || len(j.addrs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.retryJoin(ctx, j.p, j.addrs)
		}()
	}
	d.log.Info("gossipd serving", "node", c.NodeName, "lan", d.LANAddr(), "wan", d.WANAddr(), "socket", c.SocketPath)
	close(d.ready)

	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("gossipd stopping", "err", err)
	}
	// Shut the pools first: that ends watch streams and pending joins,
	// so the socket server's wait for its calls is short.
	d.shutdownPools()
	wg.Wait()
	d.log.Info("gossipd stopped")
	return err
}

// shutdownPools stops both pools without leaving and waits for their
// event loops. Idempotent.
func (d *Daemon) shutdownPools() {
	d.mu.Lock()
	lan, wan := d.lan, d.wan
	d.mu.Unlock()
	for _, p := range []*pool{wan, lan} {
		if p != nil {
			shutdownPool(p)
		}
	}
}

func shutdownPool(p *pool) {
	p.serf.Shutdown()
	<-p.done
}

// pool returns the named pool ("" is LAN), or the error a caller gets.
func (d *Daemon) pool(name string) (*pool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.left {
		return nil, gossipapi.ErrLeft
	}
	switch name {
	case "", gossipapi.PoolLAN:
		if d.lan == nil {
			return nil, gossipapi.ErrNotReady
		}
		return d.lan, nil
	case gossipapi.PoolWAN:
		if !d.c.wanEnabled() {
			return nil, gossipapi.ErrNoWAN
		}
		if d.wan == nil {
			return nil, gossipapi.ErrNotReady
		}
		return d.wan, nil
	}
	return nil, fmt.Errorf("pool %q: %w", name, gossipapi.ErrUnknownPool)
}

// leave leaves the WAN pool then the LAN pool gracefully (as Consul
// does), and shuts both down. It blocks while the leave propagates.
func (d *Daemon) leave() error {
	d.mu.Lock()
	if d.left {
		d.mu.Unlock()
		return nil
	}
	if d.lan == nil {
		d.mu.Unlock()
		return gossipapi.ErrNotReady
	}
	d.left = true
	lan, wan := d.lan, d.wan
	d.mu.Unlock()
	var errs []error
	for _, p := range []*pool{wan, lan} {
		if p == nil {
			continue
		}
		d.log.Info("leaving pool", "pool", p.name)
		if err := p.serf.Leave(); err != nil {
			errs = append(errs, fmt.Errorf("leave %s pool: %w", p.name, err))
		}
		shutdownPool(p)
	}
	d.log.Info("left the cluster; serving no pool until restarted")
	return errors.Join(errs...)
}
