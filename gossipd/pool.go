package gossipd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/gossipapi"
)

// userEventPrefix marks user events on the wire, as Consul names them, so
// they never collide with serf's or consort's internal events.
const userEventPrefix = "consul:event:"

// Consul's protocol version tags (agent/consul: ProtocolVersion 2, range
// 2-3, raft protocol 3).
const (
	protocolVersion    = "2"
	protocolVersionMin = "2"
	protocolVersionMax = "3"
	raftVersion        = "3"
)

// pool is one serf pool (LAN or WAN) and the goroutine reading its events.
type pool struct {
	name        string // gossipapi.PoolLAN or PoolWAN
	serf        *serf.Serf
	self        string // this node's name in the pool
	defaultPort int    // given to join addresses without a port
	events      chan serf.Event
	done        chan struct{} // closed when the event loop returned
}

// tags returns this node's tags in a pool.
func (c Config) tags(wan bool, wanPort int) map[string]string {
	t := make(map[string]string, len(c.Tags)+12)
	for k, v := range c.Tags {
		t[k] = v
	}
	t[gossipapi.TagDatacenter] = c.Datacenter
	t[gossipapi.TagSegment] = ""
	t[gossipapi.TagID] = c.NodeID
	t[gossipapi.TagVersion] = protocolVersion
	t[gossipapi.TagVersionMin] = protocolVersionMin
	t[gossipapi.TagVersionMax] = protocolVersionMax
	t[gossipapi.TagBuild] = c.Build
	if !c.Server {
		t[gossipapi.TagRole] = gossipapi.RoleClient
		return t
	}
	t[gossipapi.TagRole] = gossipapi.RoleServer
	t[gossipapi.TagRaftVersion] = raftVersion
	t[gossipapi.TagPort] = strconv.Itoa(c.ServerPort)
	t[gossipapi.TagACLs] = "0" // ACLs disabled (Consul's ACLModeDisabled)
	if c.Bootstrap {
		t[gossipapi.TagBootstrap] = "1"
	}
	if c.BootstrapExpect != 0 {
		t[gossipapi.TagExpect] = strconv.Itoa(c.BootstrapExpect)
	}
	if !wan && wanPort > 0 {
		t[gossipapi.TagWANJoinPort] = strconv.Itoa(wanPort)
	}
	return t
}

// lanMerge refuses to merge with members of another datacenter, as
// Consul's LAN merge delegate does.
type lanMerge struct{ dc string }

func (m lanMerge) NotifyMerge(members []*serf.Member) error {
	for _, mb := range members {
		if dc := mb.Tags[gossipapi.TagDatacenter]; dc != m.dc {
			return fmt.Errorf("member %q is in datacenter %q, not %q", mb.Name, dc, m.dc)
		}
	}
	return nil
}

// wanMerge admits only servers into the WAN pool.
type wanMerge struct{}

func (wanMerge) NotifyMerge(members []*serf.Member) error {
	for _, mb := range members {
		if mb.Tags[gossipapi.TagRole] != gossipapi.RoleServer {
			return fmt.Errorf("member %q is not a server", mb.Name)
		}
	}
	return nil
}

// startPool creates a serf pool listening on port (0: a free one) and
// starts reading its events. wanPort is announced in LAN tags.
func (d *Daemon) startPool(name string, port, wanPort int) (*pool, error) {
	c := d.c
	wan := name == gossipapi.PoolWAN
	prof := c.LANProfile
	if wan {
		prof = c.WANProfile
	}
	mc, err := profile(prof)
	if err != nil {
		return nil, err
	}
	log := d.log.With("component", "serf-"+name)
	mc.BindAddr = c.BindAddr
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.Logger = newStdLogger(log)
	mc.LogOutput = nil
	if c.Tune != nil {
		c.Tune(name, mc)
	}

	sc := serf.DefaultConfig()
	sc.Init()
	sc.NodeName = c.NodeName
	if wan {
		sc.NodeName = c.NodeName + "." + c.Datacenter
		sc.Merge = wanMerge{}
	} else {
		sc.Merge = lanMerge{dc: c.Datacenter}
	}
	sc.Tags = c.tags(wan, wanPort)
	sc.MemberlistConfig = mc
	sc.Logger = newStdLogger(log)
	sc.LogOutput = nil
	sc.ReconnectTimeout = c.ReconnectTimeout
	sc.RejoinAfterLeave = c.RejoinAfterLeave
	// Consul turns automatic name conflict resolution off: a minority
	// node would otherwise shut its own gossip down.
	sc.EnableNameConflictResolution = false
	if c.DataDir != "" {
		file := "local.snapshot"
		if wan {
			file = "wan.snapshot"
		}
		dir := filepath.Join(c.DataDir, "serf")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		sc.SnapshotPath = filepath.Join(dir, file)
	}
	events := make(chan serf.Event, 256)
	sc.EventCh = events
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("start serf %s pool: %w", name, err)
	}
	def := DefaultLANPort
	if wan {
		def = DefaultWANPort
	}
	p := &pool{name: name, serf: s, self: sc.NodeName, defaultPort: def, events: events, done: make(chan struct{})}
	go d.eventLoop(p)
	lm := s.LocalMember()
	log.Info("serf pool up", "node", p.self, "addr", lm.Addr.String(), "port", lm.Port, "members", s.NumNodes())
	return p, nil
}

// port is the pool's actual serf port.
func (p *pool) port() int { return int(p.serf.LocalMember().Port) }

// eventLoop hands serf's events to the bus and the watchers until the
// pool shuts down.
func (d *Daemon) eventLoop(p *pool) {
	defer close(p.done)
	for {
		select {
		case e := <-p.events:
			d.handleEvent(p, e)
		case <-p.serf.ShutdownCh():
			return
		}
	}
}

// changeOf maps serf's member event types to change words.
func changeOf(t serf.EventType) (string, bool) {
	switch t {
	case serf.EventMemberJoin:
		return gossipapi.ChangeJoin, true
	case serf.EventMemberLeave:
		return gossipapi.ChangeLeave, true
	case serf.EventMemberFailed:
		return gossipapi.ChangeFailed, true
	case serf.EventMemberUpdate:
		return gossipapi.ChangeUpdate, true
	case serf.EventMemberReap:
		return gossipapi.ChangeReap, true
	}
	return "", false
}

func (d *Daemon) handleEvent(p *pool, e serf.Event) {
	switch ev := e.(type) {
	case serf.MemberEvent:
		change, ok := changeOf(ev.Type)
		if !ok {
			return
		}
		ms := make([]gossipapi.Member, 0, len(ev.Members))
		for _, m := range ev.Members {
			gm := member(m)
			ms = append(ms, gm)
			d.log.Info("member "+change, "pool", p.name, "node", gm.Name, "addr", gm.Addr, "status", gm.Status)
			if d.c.Bus != nil {
				d.c.Bus.Publish(d.subjects.Member(change), &bus.Member{
					Kind: bus.KindMember, Event: change, Node: gm.Name, Address: gm.Addr,
					Port: int(gm.Port), Tags: gm.Tags, Status: gm.Status, Pool: p.name,
					Datacenter: gm.Tags[gossipapi.TagDatacenter], Observer: d.c.NodeName,
				})
			}
		}
		d.watch.send(p.name, gossipapi.WatchItem{Change: change, Members: ms})
	case serf.UserEvent:
		// WAN user events are not delivered to users, as in Consul.
		if p.name != gossipapi.PoolLAN || !strings.HasPrefix(ev.Name, userEventPrefix) {
			d.log.Debug("serf event ignored", "pool", p.name, "name", ev.Name)
			return
		}
		name := strings.TrimPrefix(ev.Name, userEventPrefix)
		d.log.Debug("user event", "name", name, "ltime", uint64(ev.LTime), "bytes", len(ev.Payload))
		if d.c.Bus != nil {
			d.c.Bus.Publish(d.subjects.Event(name), &bus.UserEvent{
				Kind: bus.KindEvent, Name: name, Payload: ev.Payload, LTime: uint64(ev.LTime),
				Coalesce: ev.Coalesce, Observer: d.c.NodeName,
			})
		}
	case *serf.Query:
		// Queries other than serf's internal ones are not used; serf
		// times them out.
	}
}

// member converts a serf member.
func member(m serf.Member) gossipapi.Member {
	tags := make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		tags[k] = v
	}
	return gossipapi.Member{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: m.Status.String(),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

// members lists the pool's members sorted by name.
func (p *pool) members() []gossipapi.Member {
	sm := p.serf.Members()
	out := make([]gossipapi.Member, 0, len(sm))
	for _, m := range sm {
		out = append(out, member(m))
	}
	slices.SortFunc(out, func(a, b gossipapi.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// retryJoin joins addrs, retrying every interval until one join succeeds,
// ctx ends or the pool shuts down.
func (d *Daemon) retryJoin(ctx context.Context, p *pool, addrs []string) {
	addrs = joinAddrs(addrs, p.defaultPort)
	log := d.log.With("component", "serf-"+p.name)
	for attempt := 1; ; attempt++ {
		n, err := p.serf.Join(addrs, true)
		if n > 0 {
			log.Info("retry join succeeded", "joined", n, "attempt", attempt)
			return
		}
		level := slog.LevelWarn
		if attempt == 1 {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "retry join failed, will retry", "addrs", addrs, "attempt", attempt, "in", d.c.RetryInterval, "err", err)
		t := time.NewTimer(d.c.RetryInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.serf.ShutdownCh():
			t.Stop()
			return
		}
	}
}
