package catalogd

import (
	"slices"

	"github.com/consort-io/consort/catalogd/state"
	"github.com/consort-io/consort/pkg/bus"
)

// publishCatalog announces on the bus what an applied catalog command
// changed, from its state.CatalogResult: one event per changed node
// (<prefix>.catalog.node.<node>), service instance
// (<prefix>.catalog.service.<name>) and check (<prefix>.health.<service>),
// each carrying the command's raft index. A node-level check is also
// published under every service name on its node, as the bus.Health doc
// explains. res of any other type, refused commands and entries replayed
// at startup publish nothing. It runs on the feed goroutine right after
// the command was applied, so the store shows the state the command left;
// it never blocks (the publisher buffers or drops). It first hands every
// result to sessionApplied (session TTL timers, session and lock events),
// replayed entries and other result types included. A transaction's
// changes are published by publishTxn.
func (d *Daemon) publishCatalog(index uint64, res any) {
	d.sessionApplied(index, res)
	if tr, ok := res.(*state.TxnResult); ok {
		d.publishTxn(index, tr)
		return
	}
	cr, ok := res.(*state.CatalogResult)
	if !ok || cr == nil || cr.Err != nil || len(cr.Changes) == 0 {
		return
	}
	if d.cfg.Bus == nil || index <= d.replayUntil.Load() {
		return
	}
	subj := bus.Subjects{Prefix: d.cfg.BusPrefix}
	var names map[string][]string // node → its service names, read once per command
	for _, c := range cr.Changes {
		op := busOp(c.Op)
		switch c.Kind {
		case state.ChangeNode:
			d.cfg.Bus.Publish(subj.CatalogNode(c.Node), bus.CatalogNode{
				Kind: bus.KindCatalogNode, Op: op, Node: c.Node, Index: index,
			})
		case state.ChangeService:
			d.cfg.Bus.Publish(subj.CatalogService(c.ServiceName), bus.CatalogService{
				Kind: bus.KindCatalogService, Op: op, Service: c.ServiceName, ServiceID: c.ServiceID, Node: c.Node, Index: index,
			})
		case state.ChangeCheck:
			ev := bus.Health{
				Kind:        bus.KindHealth,
				Op:          op,
				Node:        c.Node,
				CheckID:     c.CheckID,
				ServiceID:   c.ServiceID,
				ServiceName: c.ServiceName,
				OldStatus:   c.OldStatus,
				NewStatus:   c.NewStatus,
				Output:      c.Output,
				Index:       index,
			}
			if c.ServiceID != "" {
				d.cfg.Bus.Publish(subj.Health(c.ServiceName), ev)
				continue
			}
			d.cfg.Bus.Publish(subj.Health(""), ev)
			if names == nil {
				names = map[string][]string{}
			}
			list, ok := names[c.Node]
			if !ok {
				list = d.serviceNamesOn(c.Node)
				names[c.Node] = list
			}
			for _, name := range list {
				d.cfg.Bus.Publish(subj.Health(name), ev)
			}
		}
	}
}

// serviceNamesOn returns the distinct names of the services registered on
// node now, sorted.
func (d *Daemon) serviceNamesOn(node string) []string {
	_, _, services, err := d.store.NodeServices(nil, node)
	if err != nil {
		d.log.Warn("catalog events: read node services", "node", node, "err", err)
		return nil
	}
	out := make([]string, 0, len(services))
	for _, s := range services {
		out = append(out, s.Service)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// busOp maps a state change operation to the bus's word for it.
func busOp(op string) string {
	switch op {
	case state.OpRegister:
		return bus.CatalogOpRegister
	case state.OpDeregister:
		return bus.CatalogOpDeregister
	}
	return bus.CatalogOpUpdate
}
