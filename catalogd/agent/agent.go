package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// Errors the agent's operations return; the HTTP layer turns them into
// Consul's statuses and words.
var (
	// ErrUnknownService: no service with that ID is registered here.
	ErrUnknownService = errors.New("unknown service")
	// ErrUnknownCheck: no check with that ID is registered here.
	ErrUnknownCheck = errors.New("unknown check")
	// ErrNotTTL: the check exists but is not a TTL check.
	ErrNotTTL = errors.New("not a TTL check")
	// ErrRejected is wrapped by a Catalog's error when the catalog refused
	// a registration as invalid: retrying cannot help.
	ErrRejected = errors.New("catalog rejected the write")
)

// NodeInfo is this node as the agent registers it in the catalog.
type NodeInfo struct {
	Name            string
	ID              string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
}

// Config holds everything the agent needs.
type Config struct {
	Node NodeInfo
	// Catalog reads this node's catalog records and writes through raft.
	Catalog Catalog
	// Dir is where services and checks are persisted, one JSON file each
	// (usually <data_dir>/catalogd/agent); empty keeps them in memory.
	Dir string
	// DefinitionPaths are files and directories holding service and
	// check definitions (the node's config file and config dir).
	DefinitionPaths []string
	// SyncInterval is the period of the full anti-entropy diff, staggered
	// by up to 1/16 more. Negative disables anti-entropy: the agent keeps
	// its state but never writes the catalog (for tests of the catalog
	// alone).
	SyncInterval time.Duration
	// CheckUpdateInterval defers syncing a check whose output changed but
	// whose status did not, as Consul's check_update_interval; negative
	// syncs output changes at once.
	CheckUpdateInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed sync (no
	// leader, raftd away).
	RetryMin, RetryMax time.Duration
	// SyncTimeout bounds one sync pass started by the loop.
	SyncTimeout time.Duration
	Log         *slog.Logger
}

// DefaultConfig returns the timing defaults; Node and Catalog have none.
func DefaultConfig() Config {
	return Config{
		SyncInterval:        time.Minute,
		CheckUpdateInterval: 5 * time.Minute,
		RetryMin:            250 * time.Millisecond,
		RetryMax:            15 * time.Second,
		SyncTimeout:         time.Minute,
	}
}

// Validate reports every problem with c, joined. It never changes c.
func (c Config) Validate() error {
	var errs []error
	if c.Catalog == nil {
		errs = append(errs, errors.New("catalog is not set"))
	}
	if c.Node.Name == "" {
		errs = append(errs, errors.New("node name is empty"))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("retry backoff %s..%s: want 0 < min <= max", c.RetryMin, c.RetryMax))
	}
	if c.SyncTimeout <= 0 {
		errs = append(errs, fmt.Errorf("sync timeout %s: must be positive", c.SyncTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) fill() Config {
	d := DefaultConfig()
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.CheckUpdateInterval == 0 {
		c.CheckUpdateInterval = d.CheckUpdateInterval
	}
	if c.RetryMin == 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(d.RetryMax, c.RetryMin)
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = d.SyncTimeout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Agent is this node's agent state: the services and checks registered
// here, which are this node's truth in the catalog, kept there by
// anti-entropy. All methods are safe for concurrent use.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	disk *disk // nil: not persisted

	mu         sync.Mutex // guards every field below
	services   map[string]*serviceEntry
	checks     map[string]*checkEntry
	nodeInSync bool
	synced     bool   // a full sync succeeded: SyncChanges need not diff first
	rev        uint64 // last revision handed to an entry
	changed    chan struct{}
	stopped    bool // Run ended: deferral timers are not started

	syncMu   sync.Mutex    // one sync pass at a time
	reloadMu sync.Mutex    // one reload at a time
	trigger  chan struct{} // capacity 1: a sync is wanted
}

// New returns an agent holding the persisted services and checks of
// c.Dir and the definitions read from c.DefinitionPaths (which replace
// persisted entries of the same ID). It starts nothing; Run syncs. A
// definition error fails New, as a bad config file stops Consul's agent.
func New(c Config) (*Agent, error) {
	c = c.fill()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	a := &Agent{
		cfg:      c,
		log:      c.Log,
		services: map[string]*serviceEntry{},
		checks:   map[string]*checkEntry{},
		changed:  make(chan struct{}),
		trigger:  make(chan struct{}, 1),
	}
	if c.Dir != "" {
		d, err := openDisk(c.Dir)
		if err != nil {
			return nil, err
		}
		a.disk = d
		if err := a.loadPersisted(); err != nil {
			return nil, err
		}
	}
	files, err := LoadDefinitions(c.DefinitionPaths)
	if err != nil {
		return nil, err
	}
	if err := a.applyDefinitions(files); err != nil {
		return nil, err
	}
	return a, nil
}

// loadPersisted restores what Dir holds. Files that do not decode are
// logged and skipped: one bad file must not keep catalogd down.
func (a *Agent) loadPersisted() error {
	svcs, checks, err := a.disk.load(a.log)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range svcs {
		if p.Service == nil || p.Service.ID == "" {
			continue
		}
		a.services[p.Service.ID] = &serviceEntry{svc: p.Service, source: p.Source, rev: a.nextRevLocked()}
	}
	for _, p := range checks {
		c := p.Check
		if c == nil || c.CheckID == "" {
			continue
		}
		if c.ServiceID != "" && a.services[c.ServiceID] == nil {
			a.log.Warn("persisted check of a service that is gone dropped", "check", c.CheckID, "service", c.ServiceID)
			a.disk.removeCheck(c.CheckID)
			continue
		}
		c.Node = a.cfg.Node.Name
		a.checks[c.CheckID] = &checkEntry{chk: c, source: p.Source, rev: a.nextRevLocked()}
	}
	if len(svcs)+len(checks) > 0 {
		a.log.Info("agent state restored", "services", len(a.services), "checks", len(a.checks), "dir", a.cfg.Dir)
	}
	return nil
}

// Node returns this node's identity as the agent registers it.
func (a *Agent) Node() NodeInfo { return a.cfg.Node }

// nodeRequest is the registration of this node alone.
func (a *Agent) nodeRequest() *structs.RegisterRequest {
	n := a.cfg.Node
	return &structs.RegisterRequest{
		Datacenter:      n.Datacenter,
		ID:              n.ID,
		Node:            n.Name,
		Address:         n.Address,
		TaggedAddresses: cloneMap(n.TaggedAddresses),
		NodeMeta:        cloneMap(n.Meta),
	}
}
