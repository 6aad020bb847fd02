package raftd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/consort-io/consort/pkg/catalogapi"
	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/lifecycle"
	"github.com/consort-io/consort/pkg/raftapi"
)

// Sizes of raft's machinery.
const (
	logCacheSize    = 512 // recent entries kept in memory for feeds and replication
	snapshotsRetain = 2
	transportPool   = 3
	transportIOWait = 10 * time.Second
)

// Daemon is raftd: the replicated log, raft snapshots, leader election and
// bootstrap. It serves raftapi on a Unix socket and, to other servers, on
// the raft port.
type Daemon struct {
	c     Config
	log   *slog.Logger
	ready chan struct{}
	stop  chan struct{} // closed when shutdown starts; ends hold waits
	once  sync.Once     // closes stop

	life lifecycle.Guard // Run once, Close idempotent

	// Set by Run before the sockets serve; read-only afterwards.
	raft  *raft.Raft
	logs  raft.LogStore
	snaps *raft.FileSnapshotStore
	fsm   *fsm
	addr  string // advertised raft address

	leader leaderState
	fwd    forwarders
	heads  headerCache
}

// New checks c (after filling defaults) and returns a Daemon. It starts
// nothing.
func New(c Config) (*Daemon, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("raftd config: %w", err)
	}
	return &Daemon{
		c:      c,
		log:    c.Log,
		ready:  make(chan struct{}),
		stop:   make(chan struct{}),
		leader: leaderState{wake: make(chan struct{})},
		fwd:    forwarders{m: map[string]*raftapi.Client{}},
		heads:  headerCache{m: map[string]snapshotHeader{}},
	}, nil
}

// Ready is closed once both sockets serve.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Addr is the advertised raft address; valid after Ready.
func (d *Daemon) Addr() string { return d.addr }

// Close stops a running Run and waits for it to return. Idempotent; after
// Close, Run returns at once.
func (d *Daemon) Close() error {
	d.life.Close()
	return nil
}

// Run opens the log, starts raft, serves the Unix socket and the raft
// port, and bootstraps when configured. It blocks until ctx ends or Close
// is called, then shuts raft down cleanly and returns after every
// goroutine it started has returned. A cancelled context is a clean stop
// and returns nil. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, finish, ok, err := d.life.Start(ctx, "raftd")
	if !ok {
		return err
	}
	defer finish()
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) (err error) {
	c := d.c
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	dbPath := filepath.Join(c.DataDir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("open %s: locked by another process (is another raftd using this data dir?)", dbPath)
		}
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer bolt.Close()
	logs, err := raft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		return fmt.Errorf("log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.DataDir, snapshotsRetain, newHclog(d.log, "raft-snapshot"))
	if err != nil {
		return fmt.Errorf("snapshot store in %s: %w", c.DataDir, err)
	}

	ln := c.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.Bind); err != nil {
			return fmt.Errorf("listen on raft port: %w", err)
		}
	}
	defer ln.Close()
	addr, err := advertiseAddr(c.Advertise, ln.Addr())
	if err != nil {
		return err
	}

	layer := newStreamLayer(addr)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: transportPool,
		Timeout: transportIOWait,
		Logger:  newHclog(d.log, "raft-net"),
	})
	defer trans.Close()

	catalog := catalogapi.Dial(c.CatalogSocket)
	defer catalog.Close()
	// Persist's context: it must end before raft.Shutdown, which waits for
	// a snapshot in progress.
	snapCtx, snapCancel := context.WithCancel(context.Background())
	defer snapCancel()

	d.fsm = newFSM(snapCtx, d.log.With("component", "fsm"), catalog, c.SnapshotTimeout, d.heads.put)
	d.logs, d.snaps, d.addr = &storeNotifier{LogStore: logs, stored: d.fsm.stored}, snaps, addr

	hasState, err := raft.HasExistingState(d.logs, bolt, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	r, err := raft.NewRaft(d.raftConfig(), d.fsm, d.logs, bolt, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	d.raft = r
	defer func() {
		snapCancel()
		if serr := r.Shutdown().Error(); serr != nil {
			d.log.Error("raft shutdown", "err", serr)
			if err == nil {
				err = fmt.Errorf("raft shutdown: %w", serr)
			}
		}
	}()

	unixLn, err := ipc.ListenUnix(c.SocketPath, c.SocketMode)
	if err != nil {
		return err
	}
	local := ipc.NewMux()
	raftapi.Register(local, localAPI{d})
	remote := ipc.NewMux()
	registerRemote(remote, remoteAPI{d})
	ipcLog := d.log.With("component", "ipc")
	localSrv := ipc.NewServer(ipc.ServerConfig{Mux: local, Log: ipcLog})
	remoteSrv := ipc.NewServer(ipc.ServerConfig{Mux: remote, Log: ipcLog})

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	goFn := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goFn("unix socket", func() error { return localSrv.Serve(serveCtx, unixLn) })
	goFn("raft port", func() error { return d.serveTCP(serveCtx, ln, layer, remoteSrv) })
	goFn("leader watch", func() error { d.watchLeader(serveCtx); return nil })
	if hasState {
		d.log.Info("existing raft state found; not bootstrapping", "data_dir", c.DataDir)
	} else {
		goFn("bootstrap", func() error { d.bootstrap(serveCtx); return nil })
	}
	d.log.Info("raftd serving", "id", c.ID, "raft_addr", addr, "socket", c.SocketPath, "last_index", r.LastIndex())
	close(d.ready)

	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("raftd stopping", "err", err)
	}

	// Shutdown order: stop new work, hand leadership over, end snapshots
	// (raft waits for them), stop raft (which answers pending futures),
	// then wait for the servers and close the stores (deferred).
	d.once.Do(func() { close(d.stop) })
	d.transferLeadership()
	stopServing()
	snapCancel()
	if serr := r.Shutdown().Error(); serr != nil && err == nil {
		err = fmt.Errorf("raft shutdown: %w", serr)
	}
	trans.Close()
	wg.Wait()
	d.fwd.closeAll()
	d.log.Info("raftd stopped")
	return err
}

// raftConfig builds raft's configuration from d.c.
func (d *Daemon) raftConfig() *raft.Config {
	c := d.c
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.Logger = newHclog(d.log, "raft")
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// Restoring the newest snapshot at start tells feeds (through the
	// restore generation) where the log now begins.
	rc.NoSnapshotRestoreOnStart = false
	// A server removed from the configuration keeps running (as Consul).
	rc.ShutdownOnRemove = false
	return rc
}

// transferLeadership hands leadership to another voter before a clean
// stop, so the cluster does not wait an election timeout.
func (d *Daemon) transferLeadership() {
	if d.raft.State() != raft.Leader {
		return
	}
	f := d.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return
	}
	if err := d.raft.LeadershipTransfer().Error(); err != nil {
		d.log.Warn("leadership transfer before stop failed; the others elect a leader after their election timeout", "err", err)
		return
	}
	d.log.Info("leadership transferred before stop")
}

// stopping reports whether shutdown has started.
func (d *Daemon) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// headerCache remembers snapshot headers by snapshot ID, so a feed need
// not reopen (and checksum) a snapshot just to learn its state index.
type headerCache struct {
	mu sync.Mutex // guards m
	m  map[string]snapshotHeader
}

func (h *headerCache) put(id string, sh snapshotHeader) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[id] = sh
}

func (h *headerCache) get(id string) (snapshotHeader, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sh, ok := h.m[id]
	return sh, ok
}

// keep drops the entries whose IDs are not in ids.
func (h *headerCache) keep(ids map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.m {
		if !ids[id] {
			delete(h.m, id)
		}
	}
}
