package catalogd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/consort-io/consort/catalogd/agent"
	"github.com/consort-io/consort/pkg/structs"
)

// agentMaxBody bounds an agent registration body.
const agentMaxBody = 1 << 20

// agentServiceJSON is Consul's api.AgentService, as /v1/agent/services
// and /v1/agent/service/<id> write it. ?filter selectors are its fields.
type agentServiceJSON struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]structs.ServiceAddress `json:",omitempty"`
	Weights           structs.Weights
	EnableTagOverride bool
	ContentHash       string `json:",omitempty" bexpr:"-"`
	Datacenter        string `json:",omitempty" bexpr:"-"`
}

func (d *Daemon) agentService(s *structs.NodeService) *agentServiceJSON {
	meta := s.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return &agentServiceJSON{
		Kind:              s.Kind,
		ID:                s.ID,
		Service:           s.Service,
		Tags:              tags(s.Tags),
		Meta:              meta,
		Port:              s.Port,
		Address:           s.Address,
		TaggedAddresses:   s.TaggedAddresses,
		Weights:           weights(s),
		EnableTagOverride: s.EnableTagOverride,
		Datacenter:        d.cfg.Datacenter,
	}
}

// agentHealthJSON is Consul's api.AgentServiceChecksInfo.
type agentHealthJSON struct {
	AggregatedStatus string
	Service          *agentServiceJSON
	Checks           []*checkJSON
}

// agentEndpoint serves /v1/agent/* except /v1/agent/self.
func (d *Daemon) agentEndpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	p := strings.TrimPrefix(r.URL.Path, "/v1/agent/")
	v, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	route := func(prefix string) (string, bool) {
		if strings.HasPrefix(p, prefix) {
			return strings.TrimPrefix(p, prefix), true
		}
		return "", false
	}
	// Exact paths first, as Consul's mux matches them before prefixes:
	// GET /v1/agent/service/register is a 405, not a service named
	// "register".
	switch p {
	case "services":
		return getOnly(r, func() (any, error) { return d.agentServices(v) })
	case "checks":
		return getOnly(r, func() (any, error) { return d.agentChecks(v) })
	case "service/register":
		return putOnly(r, func() (any, error) { return d.agentRegisterService(r, v) })
	case "check/register":
		return putOnly(r, func() (any, error) { return d.agentRegisterCheck(r) })
	case "maintenance":
		return putOnly(r, func() (any, error) { return d.agentNodeMaintenance(r, v) })
	case "reload":
		return putOnly(r, func() (any, error) {
			if err := d.Reload(); err != nil {
				return nil, err
			}
			d.syncAgent(r.Context())
			return nil, nil
		})
	}
	if id, ok := route("service/deregister/"); ok {
		return putOnly(r, func() (any, error) { return d.agentDeregisterService(r, id) })
	}
	if id, ok := route("service/maintenance/"); ok {
		return putOnly(r, func() (any, error) { return d.agentServiceMaintenance(r, id, v) })
	}
	if id, ok := route("check/deregister/"); ok {
		return putOnly(r, func() (any, error) { return d.agentDeregisterCheck(r, id) })
	}
	if id, ok := route("check/update/"); ok {
		return putOnly(r, func() (any, error) { return d.agentCheckUpdate(r, id) })
	}
	for _, s := range []struct{ path, status string }{
		{"check/pass/", structs.HealthPassing},
		{"check/warn/", structs.HealthWarning},
		{"check/fail/", structs.HealthCritical},
	} {
		if id, ok := route(s.path); ok {
			return putOnly(r, func() (any, error) { return d.agentCheckTTL(r, id, s.status, v.Get("note")) })
		}
	}
	if id, ok := route("health/service/id/"); ok {
		return getOnly(r, func() (any, error) { return d.agentHealthByID(w, r, id, v) })
	}
	if name, ok := route("health/service/name/"); ok {
		return getOnly(r, func() (any, error) { return d.agentHealthByName(w, r, name, v) })
	}
	if id, ok := route("service/"); ok {
		return getOnly(r, func() (any, error) { return d.agentServiceByID(w, r, id, v) })
	}
	return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(
		"Unknown endpoint %s %s: consort's catalogd serves /v1/agent/self, services, service/<id>, checks, service/register, "+
			"service/deregister/<id>, service/maintenance/<id>, check/register, check/deregister/<id>, check/update/<id>, "+
			"check/pass|warn|fail/<id>, maintenance, health/service/id/<id>, health/service/name/<name> and reload",
		r.Method, r.URL.Path)}
}

func getOnly(r *http.Request, f func() (any, error)) (any, error) {
	if r.Method != http.MethodGet {
		return nil, methodNotAllowed(r.Method, http.MethodGet)
	}
	return f()
}

func putOnly(r *http.Request, f func() (any, error)) (any, error) {
	if r.Method != http.MethodPut {
		return nil, methodNotAllowed(r.Method, http.MethodPut)
	}
	return f()
}

// agentServices answers the local services by ID, narrowed by ?filter.
func (d *Daemon) agentServices(v url.Values) (any, error) {
	f, err := compileFilter(v.Get("filter"), reflect.TypeOf(agentServiceJSON{}))
	if err != nil {
		return nil, err
	}
	out := map[string]*agentServiceJSON{}
	for _, s := range d.agent.Services() {
		as := d.agentService(s)
		ok, err := f.match(as)
		if err != nil {
			return nil, err
		}
		if ok {
			out[s.ID] = as
		}
	}
	return out, nil
}

// agentChecks answers the local checks by ID, narrowed by ?filter.
func (d *Daemon) agentChecks(v url.Values) (any, error) {
	f, err := compileFilter(v.Get("filter"), reflect.TypeOf(checkJSON{}))
	if err != nil {
		return nil, err
	}
	conv := records{dc: d.cfg.Datacenter}
	out := map[string]*checkJSON{}
	for _, c := range d.agent.Checks() {
		cj := conv.check(c)
		ok, err := f.match(cj)
		if err != nil {
			return nil, err
		}
		if ok {
			out[c.CheckID] = cj
		}
	}
	return out, nil
}

// agentServiceByID answers one local service with its ContentHash. With
// ?hash it blocks (up to ?wait) until the service's hash differs, as
// Consul's hash-based blocking does.
func (d *Daemon) agentServiceByID(w http.ResponseWriter, r *http.Request, id string, v url.Values) (any, error) {
	q, err := parseQueryOptions(v)
	if err != nil {
		return nil, err
	}
	hash := v.Get("hash")
	var deadline <-chan time.Time
	if hash != "" {
		t := time.NewTimer(q.timeout())
		defer t.Stop()
		deadline = t.C
	}
	for {
		changed := d.agent.Changed()
		s := d.agent.Service(id)
		if s == nil {
			return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("unknown service ID: %s", id)}
		}
		as := d.agentService(s)
		as.ContentHash = contentHash(as)
		if hash == "" || as.ContentHash != hash {
			w.Header().Set("X-Consul-ContentHash", as.ContentHash)
			return as, nil
		}
		select {
		case <-changed:
		case <-deadline:
			w.Header().Set("X-Consul-ContentHash", as.ContentHash)
			return as, nil
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
}

// contentHash is a digest of a service's answer without its hash.
func contentHash(as *agentServiceJSON) string {
	b, _ := json.Marshal(as)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// readBody reads a registration body, refusing one over agentMaxBody.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, agentMaxBody+1))
	if err != nil {
		return nil, badRequest("Request decode failed: %v", err)
	}
	if len(b) > agentMaxBody {
		return nil, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("Request body too large, max size: %d bytes", agentMaxBody)}
	}
	return b, nil
}

// agentError maps the agent's validation errors to 400s.
func agentError(err error) error {
	var ve *agent.ValidationError
	if errors.As(err, &ve) {
		return badRequest("%s", ve.Msg)
	}
	return err
}

func unknownService(id string) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)}
}

func unknownCheck(id string) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)}
}

func (d *Daemon) agentRegisterService(r *http.Request, v url.Values) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	def, err := agent.DecodeService(body)
	if err != nil {
		return nil, badRequest("Request decode failed: %v", err)
	}
	// Consul: present and empty or "true".
	replace := has(v, "replace-existing-checks") && (v.Get("replace-existing-checks") == "" || v.Get("replace-existing-checks") == "true")
	if err := d.agent.AddService(def, agent.AddServiceOptions{ReplaceExistingChecks: replace, Source: agent.SourceAPI}); err != nil {
		return nil, agentError(err)
	}
	d.syncAgent(r.Context())
	return nil, nil
}

func (d *Daemon) agentDeregisterService(r *http.Request, id string) (any, error) {
	if err := d.agent.RemoveService(id); err != nil {
		if errors.Is(err, agent.ErrUnknownService) {
			return nil, unknownService(id)
		}
		return nil, err
	}
	d.syncAgent(r.Context())
	return nil, nil
}

func (d *Daemon) agentRegisterCheck(r *http.Request) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	def, err := agent.DecodeCheck(body)
	if err != nil {
		return nil, badRequest("Request decode failed: %v", err)
	}
	if err := d.agent.AddCheck(def, agent.SourceAPI); err != nil {
		if errors.Is(err, agent.ErrUnknownService) {
			return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("ServiceID %q does not exist", def.ServiceID)}
		}
		return nil, agentError(err)
	}
	d.syncAgent(r.Context())
	return nil, nil
}

func (d *Daemon) agentDeregisterCheck(r *http.Request, id string) (any, error) {
	if err := d.agent.RemoveCheck(id); err != nil {
		if errors.Is(err, agent.ErrUnknownCheck) {
			return nil, unknownCheck(id)
		}
		return nil, err
	}
	d.syncAgent(r.Context())
	return nil, nil
}

// agentCheckUpdate is PUT /v1/agent/check/update/<id> {Status, Output}.
func (d *Daemon) agentCheckUpdate(r *http.Request, id string) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var u struct{ Status, Output string }
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &u); err != nil {
			return nil, badRequest("Request decode failed: %v", err)
		}
	}
	switch u.Status {
	case structs.HealthPassing, structs.HealthWarning, structs.HealthCritical:
	default:
		return nil, badRequest("Invalid check status: '%s'", u.Status)
	}
	return d.agentCheckTTL(r, id, u.Status, u.Output)
}

// agentCheckTTL sets a TTL check's status in the agent (so it holds with
// healthd down), tells healthd to re-arm its timer, and syncs.
func (d *Daemon) agentCheckTTL(r *http.Request, id, status, output string) (any, error) {
	out, err := d.agent.UpdateTTL(id, status, output)
	switch {
	case errors.Is(err, agent.ErrUnknownCheck):
		return nil, unknownCheck(id)
	case errors.Is(err, agent.ErrNotTTL):
		return nil, fmt.Errorf("CheckID %q does not have associated TTL", id)
	case err != nil:
		return nil, err
	}
	d.tellHealthd(r.Context(), id, status, out)
	d.syncAgent(r.Context())
	return nil, nil
}

// parseEnable reads ?enable as Consul does.
func parseEnable(v url.Values) (bool, error) {
	if !has(v, "enable") {
		return false, badRequest("Missing value for enable")
	}
	raw := v.Get("enable")
	on, err := strconv.ParseBool(raw)
	if err != nil {
		return false, badRequest("Invalid value for enable: %q", raw)
	}
	return on, nil
}

func (d *Daemon) agentServiceMaintenance(r *http.Request, id string, v url.Values) (any, error) {
	if id == "" {
		return nil, badRequest("Missing service ID")
	}
	on, err := parseEnable(v)
	if err != nil {
		return nil, err
	}
	if on {
		err = d.agent.EnableServiceMaintenance(id, v.Get("reason"))
	} else {
		err = d.agent.DisableServiceMaintenance(id)
	}
	if errors.Is(err, agent.ErrUnknownService) {
		return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("No service registered with ID %q", id)}
	}
	if err != nil {
		return nil, err
	}
	d.syncAgent(r.Context())
	return nil, nil
}

func (d *Daemon) agentNodeMaintenance(r *http.Request, v url.Values) (any, error) {
	on, err := parseEnable(v)
	if err != nil {
		return nil, err
	}
	if on {
		err = d.agent.EnableNodeMaintenance(v.Get("reason"))
	} else {
		err = d.agent.DisableNodeMaintenance()
	}
	if err != nil {
		return nil, err
	}
	d.syncAgent(r.Context())
	return nil, nil
}

// healthCode is Consul's status for an aggregated status: passing 200,
// warning 429, anything else (critical, maintenance) 503.
func healthCode(status string) int {
	switch status {
	case structs.HealthPassing:
		return http.StatusOK
	case structs.HealthWarning:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// wantsText reports whether the client asked for a plain-text answer
// (Accept: text/plain or ?format=text), as Consul's returnTextPlain.
func wantsText(r *http.Request, v url.Values) bool {
	if strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		return true
	}
	if f := v.Get("format"); f != "" {
		return f == "text"
	}
	return false
}

// writeHealth answers a local health query with code, as text or JSON.
func writeHealth(w http.ResponseWriter, r *http.Request, v url.Values, code int, status string, obj any) (any, error) {
	if wantsText(r, v) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		io.WriteString(w, status)
		return nil, nil
	}
	writeJSON(w, r, code, obj)
	return nil, nil
}

func (d *Daemon) serviceHealth(id string) (*agentHealthJSON, bool) {
	s, checks := d.agent.ServiceHealth(id)
	if s == nil {
		return nil, false
	}
	return &agentHealthJSON{
		AggregatedStatus: agent.AggregatedStatus(checks),
		Service:          d.agentService(s),
		Checks:           records{dc: d.cfg.Datacenter}.checks(checks),
	}, true
}

// agentHealthByID is GET /v1/agent/health/service/id/<id>.
func (d *Daemon) agentHealthByID(w http.ResponseWriter, r *http.Request, id string, v url.Values) (any, error) {
	if id == "" {
		return nil, badRequest("Missing serviceID")
	}
	h, ok := d.serviceHealth(id)
	if !ok {
		msg := fmt.Sprintf("ServiceId %s not found", id)
		return writeHealth(w, r, v, http.StatusNotFound, msg, &agentHealthJSON{AggregatedStatus: structs.HealthCritical})
	}
	return writeHealth(w, r, v, healthCode(h.AggregatedStatus), h.AggregatedStatus, h)
}

// agentHealthByName is GET /v1/agent/health/service/name/<name>: every
// local instance, with the worst status deciding the answer's code.
func (d *Daemon) agentHealthByName(w http.ResponseWriter, r *http.Request, name string, v url.Values) (any, error) {
	if name == "" {
		return nil, badRequest("Missing service Name")
	}
	code, status := http.StatusNotFound, fmt.Sprintf("ServiceName %s Not Found", name)
	out := []*agentHealthJSON{}
	for _, s := range d.agent.ServicesByName(name) {
		h, ok := d.serviceHealth(s.ID)
		if !ok {
			continue
		}
		out = append(out, h)
		c := healthCode(h.AggregatedStatus)
		if code == http.StatusNotFound || code < c {
			code, status = c, h.AggregatedStatus
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.ID < out[j].Service.ID })
	return writeHealth(w, r, v, code, status, out)
}
