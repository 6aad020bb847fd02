package raftd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/consort-io/consort/pkg/raftapi"
)

// Bootstrap timing.
const (
	bootstrapStatusWait = 2 * time.Second  // per peer Status call
	bootstrapLogEvery   = 10 * time.Second // repeat of an unchanged "waiting" line
)

// bootstrap forms a new cluster when this server has no raft state:
// alone (Bootstrap, or BootstrapExpect 1), or once BootstrapExpect servers
// answer Status on their raft port. Every server computes the same set
// (sorted by ID), and raft accepts identical bootstraps, so all of them
// bootstrap without coordinating. It stops early when this server turns
// out to be part of a cluster already, or a peer is. It returns when done
// or ctx ends; it logs, it does not fail.
func (d *Daemon) bootstrap(ctx context.Context) {
	log := d.log.With("component", "bootstrap")
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(d.c.ID), Address: raft.ServerAddress(d.addr)}
	if d.c.Bootstrap || d.c.BootstrapExpect == 1 {
		d.bootstrapWith(log, []raft.Server{self})
		return
	}
	if d.c.BootstrapExpect == 0 {
		log.Info("no bootstrap configured; waiting to be added to a cluster")
		return
	}
	expect := d.c.BootstrapExpect
	var peers []string
	for _, p := range d.c.Peers {
		if p != d.addr && !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	clients := make(map[string]*raftapi.Client, len(peers))
	for _, p := range peers {
		clients[p] = dialRaftd(p)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	log.Info("waiting for servers to bootstrap", "expect", expect, "peers", peers)
	if len(peers)+1 < expect {
		log.Warn("bootstrap_expect exceeds the servers retry_join names; list every other server's raft address in retry_join",
			"expect", expect, "servers_known", len(peers)+1)
	}

	tick := time.NewTicker(d.c.BootstrapPoll)
	defer tick.Stop()
	var lastLine string
	var lastAt time.Time
	for {
		if d.inCluster() {
			log.Info("part of a cluster already; bootstrap not needed")
			return
		}
		found := map[raft.ServerID]raft.ServerAddress{self.ID: self.Address}
		results := d.pollPeers(ctx, clients)
		var unreachable []string
		conflict := false
		for _, p := range peers {
			r := results[p]
			switch {
			case r.err != nil:
				unreachable = append(unreachable, p)
			case len(r.s.Peers) > 0:
				log.Info("a peer is already in a cluster; not bootstrapping, waiting to be added", "peer", p, "peer_id", r.s.ID)
				return
			case r.s.ID == "":
				unreachable = append(unreachable, p)
			default:
				id, addr := raft.ServerID(r.s.ID), raft.ServerAddress(r.s.Address)
				if prev, ok := found[id]; ok && prev != addr {
					log.Error("two servers share one node ID; fix node_id before they can bootstrap", "id", id, "addresses", []raft.ServerAddress{prev, addr})
					conflict = true
				}
				found[id] = addr
			}
		}
		if !conflict && len(found) >= expect {
			servers := make([]raft.Server, 0, len(found))
			for id, addr := range found {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: addr})
			}
			sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
			d.bootstrapWith(log, servers)
			return
		}
		ids := make([]string, 0, len(found))
		for id := range found {
			ids = append(ids, string(id))
		}
		sort.Strings(ids)
		line := fmtWaiting(expect - len(found))
		if line != lastLine || time.Since(lastAt) >= bootstrapLogEvery {
			log.Info(line, "found", ids, "unreachable", unreachable)
			lastLine, lastAt = line, time.Now()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// fmtWaiting is the progress line while servers are missing.
func fmtWaiting(more int) string {
	switch {
	case more <= 0:
		return "servers found; waiting for their node IDs to be unique"
	case more == 1:
		return "waiting for 1 more server to bootstrap"
	default:
		return fmt.Sprintf("waiting for %d more servers to bootstrap", more)
	}
}

type peerStatus struct {
	s   *raftapi.StatusResponse
	err error
}

// pollPeers asks every peer for its Status at once.
func (d *Daemon) pollPeers(ctx context.Context, clients map[string]*raftapi.Client) map[string]peerStatus {
	var mu sync.Mutex // guards out
	out := make(map[string]peerStatus, len(clients))
	var wg sync.WaitGroup
	for addr, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, bootstrapStatusWait)
			defer cancel()
			s, err := c.Status(cctx)
			mu.Lock()
			out[addr] = peerStatus{s: s, err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// inCluster reports whether this server's raft has a configuration (it
// bootstrapped, or a leader replicated one to it).
func (d *Daemon) inCluster() bool {
	f := d.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// bootstrapWith bootstraps raft with servers and logs the outcome.
func (d *Daemon) bootstrapWith(log *slog.Logger, servers []raft.Server) {
	err := d.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	switch {
	case err == nil:
		log.Info("bootstrapped a new cluster", "servers", serverList(servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		log.Info("raft has state already; bootstrap skipped")
	default:
		log.Error("bootstrap failed", "err", err)
	}
}

func serverList(servers []raft.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = string(s.ID) + "@" + string(s.Address)
	}
	return out
}
