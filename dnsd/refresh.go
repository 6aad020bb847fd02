package dnsd

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/consort-io/consort/pkg/bus"
)

// maxDirty bounds the names gathered between two refreshes; past it the
// next refresh is a full load.
const maxDirty = 1024

// dirty gathers what events said changed, until the refresher takes it.
// Bounded: past maxDirty names it degrades to one full reload.
type dirty struct {
	mu       sync.Mutex          // guards the fields below
	services map[string]struct{} // service names as events gave them
	nodes    map[string]struct{} // node names, lower case
	full     bool
}

// take empties the set and returns what it held.
func (s *dirty) take() (services, nodes map[string]struct{}, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	services, nodes, full = s.services, s.nodes, s.full
	s.services, s.nodes, s.full = nil, nil, false
	return services, nodes, full
}

// mark records a changed service or node name ("" for neither), or a
// need for a full reload.
func (s *dirty) mark(svc, node string, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if full || len(s.services)+len(s.nodes) >= maxDirty {
		s.full = true
		return
	}
	if svc != "" {
		if s.services == nil {
			s.services = map[string]struct{}{}
		}
		s.services[svc] = struct{}{}
	}
	if node != "" {
		if s.nodes == nil {
			s.nodes = map[string]struct{}{}
		}
		s.nodes[strings.ToLower(node)] = struct{}{}
	}
}

// onEvent is the NATS callback for catalog and health events. It only
// marks names and wakes the refresher; it never blocks.
func (d *Daemon) onEvent(m *nats.Msg) {
	p := d.c.SubjectPrefix + "."
	rest, ok := strings.CutPrefix(m.Subject, p)
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(rest, "catalog.service."):
		d.markToken(strings.TrimPrefix(rest, "catalog.service."), false)
	case strings.HasPrefix(rest, "catalog.node."):
		d.markToken(strings.TrimPrefix(rest, "catalog.node."), true)
	case strings.HasPrefix(rest, "health."):
		// Node-level checks come on "health.~" and again on each of
		// their node's services' subjects; the latter are enough.
		if tok := strings.TrimPrefix(rest, "health."); tok != "~" {
			d.markToken(tok, false)
		}
	default:
		return
	}
	d.events.Add(1)
	d.wakeRefresher()
}

// markToken decodes a subject token and marks the name; a token that
// does not decode asks for a full reload.
func (d *Daemon) markToken(tok string, isNode bool) {
	name, err := bus.DecodeToken(tok)
	switch {
	case err != nil:
		d.dirty.mark("", "", true)
	case isNode:
		d.dirty.mark("", name, false)
	default:
		d.dirty.mark(name, "", false)
	}
}

func (d *Daemon) wakeRefresher() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// connectBus subscribes to catalog and health events. Every (re)connect
// asks for a full reload, since events may have been missed meanwhile.
// It returns nil when no bus is configured.
func (d *Daemon) connectBus(log *slog.Logger) (*nats.Conn, error) {
	if d.c.NATSURL == "" {
		return nil, nil
	}
	resync := func(*nats.Conn) {
		log.Info("bus connected, reloading view")
		d.dirty.mark("", "", true)
		d.wakeRefresher()
	}
	nc, err := bus.Connect(d.c.NATSURL, "consort-dnsd",
		nats.ConnectHandler(resync),
		nats.ReconnectHandler(resync),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("bus disconnected; view kept fresh by max age only", "err", err)
		}),
	)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{d.c.SubjectPrefix + ".catalog.>", d.c.SubjectPrefix + ".health.>"} {
		if _, err := nc.Subscribe(s, d.onEvent); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return nc, nil
}

// refresh owns the view's updates: a full load at start and every
// MaxAge, partial loads of what events named (gathered for Debounce).
// Loads run one at a time, so a slower, older load never overwrites a
// newer one. When catalogd is unreachable the last view stays.
func (d *Daemon) refresh(ctx context.Context) {
	log := d.log.With("component", "view")
	const minRetry = 100 * time.Millisecond
	retry := minRetry
	down := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	full := func() {
		v, err := d.load.full(ctx, time.Now())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.setErr(err)
			if !down {
				log.Warn("catalog unreachable; answering from the last view", "err", err, "age", d.age().Round(time.Millisecond))
				down = true
			}
			timer.Reset(min(retry, d.c.MaxAge))
			retry = min(retry*2, d.c.MaxAge)
			return
		}
		d.setErr(nil)
		d.view.Store(v)
		if down || d.fulls.Load() == 0 {
			log.Info("view loaded", "services", len(v.services), "nodes", len(v.nodes), "index", v.index)
		}
		d.fulls.Add(1)
		down, retry = false, minRetry
		timer.Reset(d.c.MaxAge)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			full()
		case <-d.wake:
			if d.c.Debounce > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d.c.Debounce):
				}
			}
			svcs, nodes, all := d.dirty.take()
			if all {
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
				full()
				continue
			}
			if err := d.partial(ctx, svcs, nodes); err != nil && ctx.Err() == nil {
				// The next full load (at most MaxAge away) catches up.
				log.Debug("partial refresh failed", "err", err)
			}
		}
	}
}

// partial reloads the named services, and for changed nodes the node
// table and every service with an instance on them.
func (d *Daemon) partial(ctx context.Context, svcs, nodes map[string]struct{}) error {
	v := d.view.Load()
	if len(nodes) > 0 {
		nt, idx, err := d.load.nodes(ctx)
		if err != nil {
			return err
		}
		for _, s := range v.services {
			for _, in := range s.instances {
				if _, ok := nodes[strings.ToLower(in.node)]; ok {
					if svcs == nil {
						svcs = map[string]struct{}{}
					}
					svcs[s.name] = struct{}{}
					break
				}
			}
		}
		v = v.withNodes(nt, idx)
		d.view.Store(v)
	}
	for name := range svcs {
		s, idx, err := d.load.service(ctx, name)
		if err != nil {
			return err
		}
		v = v.withService(strings.ToLower(name), s, idx)
		d.view.Store(v)
	}
	d.partials.Add(1)
	return nil
}
