package catalogd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/consort-io/consort/catalogd/agent"
	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/healthapi"
	"github.com/consort-io/consort/pkg/structs"
)

// Anti-entropy retry bounds: a sync refused for want of a leader is tried
// again soon, so a node starting with its cluster registers within a few
// seconds of the election.
const (
	agentRetryMin = 250 * time.Millisecond
	agentRetryMax = 5 * time.Second
)

// healthdWait bounds telling healthd about a TTL update; healthd being
// down must not hold up the HTTP answer.
const healthdWait = time.Second

// agentSyncWait bounds the sync an agent write does before answering, as
// Consul's handlers sync before they answer; a sync that fails or runs out
// is left to the anti-entropy loop.
const agentSyncWait = 5 * time.Second

// newAgent builds this node's agent on d's catalog.
func (d *Daemon) newAgent() (*agent.Agent, error) {
	c := d.cfg
	tagged := c.TaggedAddresses
	if len(tagged) == 0 {
		tagged = defaultTaggedAddresses(c.Advertise)
	}
	return agent.New(agent.Config{
		Node: agent.NodeInfo{
			Name:            c.NodeName,
			ID:              c.NodeID,
			Address:         c.Advertise,
			Datacenter:      c.Datacenter,
			TaggedAddresses: tagged,
			Meta:            c.NodeMeta,
		},
		Catalog:             agentCatalog{d},
		Dir:                 c.AgentDir,
		DefinitionPaths:     c.ServiceDefinitions,
		SyncInterval:        c.AntiEntropyInterval,
		CheckUpdateInterval: c.CheckUpdateInterval,
		RetryMin:            agentRetryMin,
		RetryMax:            agentRetryMax,
		Log:                 c.Log.With("component", "agent"),
	})
}

// defaultTaggedAddresses are the node's tagged addresses as Consul sets
// them from its advertise address.
func defaultTaggedAddresses(addr string) map[string]string {
	m := map[string]string{"lan": addr, "wan": addr}
	if ip := net.ParseIP(addr); ip != nil {
		v := "ipv6"
		if ip.To4() != nil {
			v = "ipv4"
		}
		m["lan_"+v], m["wan_"+v] = addr, addr
	}
	return m
}

// Reload re-reads the service definition files: new and changed
// definitions are registered and file-sourced entries whose definition is
// gone are deregistered. On an error (naming file and line) nothing
// changes. cmd/catalogd calls it on SIGHUP; PUT /v1/agent/reload too.
func (d *Daemon) Reload() error {
	_, err := d.agent.Reload()
	if err != nil {
		d.log.Error("reload failed; service definitions unchanged", "err", err)
		return err
	}
	return nil
}

// syncAgent pushes the agent's pending changes before an agent write
// answers, as Consul's handlers do. A failure (no leader) is only logged:
// the write is in the agent's state and the loop syncs it later.
func (d *Daemon) syncAgent(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, agentSyncWait)
	defer cancel()
	if err := d.agent.SyncChanges(ctx); err != nil {
		lvl := d.log.Warn
		if expected(err) {
			lvl = d.log.Debug
		}
		lvl("agent sync failed; anti-entropy will retry", "err", err)
	}
}

// tellHealthd passes a TTL update to healthd so it re-arms the check's
// timer. Best effort: with healthd down the update still holds in the
// agent, and healthd resumes from it when it reconnects.
func (d *Daemon) tellHealthd(ctx context.Context, id, status, output string) {
	if d.healthd == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, healthdWait)
	defer cancel()
	if err := d.healthd.UpdateTTL(ctx, id, status, output); err != nil {
		d.log.Debug("healthd not told of a TTL update", "check", id, "err", err)
	}
}

// dialHealthd returns a client for socket, or nil when there is none.
func dialHealthd(socket string) *healthapi.Client {
	if socket == "" {
		return nil
	}
	return healthapi.Dial(socket)
}

// agentCatalog is the agent's view of the catalog: reads of this node's
// records from the store after a read-index barrier, and writes through
// raft. Safe for concurrent use.
type agentCatalog struct{ d *Daemon }

// NodeRecords reads node's record, services and checks as a default
// (leader-lease) read would.
func (c agentCatalog) NodeRecords(ctx context.Context, node string) (*structs.Node, []*structs.NodeService, []*structs.HealthCheck, error) {
	if _, err := c.d.barrier(ctx, queryOptions{mode: modeDefault}); err != nil {
		return nil, nil, nil, err
	}
	_, n, svcs, err := c.d.store.NodeServices(nil, node)
	if err != nil {
		return nil, nil, nil, err
	}
	if n != nil && !strings.EqualFold(n.Node, node) {
		// The store fell back to a node whose ID starts with the name.
		n, svcs = nil, nil
	}
	_, checks, err := c.d.store.NodeChecks(nil, node)
	if err != nil {
		return nil, nil, nil, err
	}
	return n, svcs, checks, nil
}

// Register applies a registration; a refusal wraps agent.ErrRejected.
func (c agentCatalog) Register(ctx context.Context, req *structs.RegisterRequest) error {
	return c.apply(ctx, state.RegisterType, req)
}

// Deregister applies a deregistration; a refusal wraps agent.ErrRejected.
func (c agentCatalog) Deregister(ctx context.Context, req *structs.DeregisterRequest) error {
	return c.apply(ctx, state.DeregisterType, req)
}

func (c agentCatalog) apply(ctx context.Context, t state.MessageType, req any) error {
	res, err := c.d.applyCatalog(ctx, t, req)
	switch {
	case err != nil:
		return err
	case res.Err != nil:
		return fmt.Errorf("%w: %v", agent.ErrRejected, res.Err)
	}
	return nil
}
