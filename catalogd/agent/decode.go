package agent

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// ParseDefinitions reads the service and check definitions of one
// definition file: top-level `service {}`, `services [...]`, `check {}`
// and `checks [...]`, in HCL or JSON (JSON when the document starts with
// "{"), with Consul's field names in snake_case or CamelCase. Other
// top-level keys (the node's own config) are skipped. Unknown keys inside
// a definition are errors. name is used in messages, which read
// "name:line: ...". Every problem is reported, joined.
func ParseDefinitions(name string, src []byte) (Definitions, error) {
	t, err := parseFile(name, src)
	if err != nil {
		return Definitions{}, err
	}
	d := decoder{file: name, strict: true}
	var defs Definitions
	for i, k := range t.keys {
		v := t.vals[i]
		switch normKey(k) {
		case "service", "services":
			for _, b := range d.blocks(v, k) {
				defs.Services = append(defs.Services, d.service(b))
			}
		case "check", "checks":
			for _, b := range d.blocks(v, k) {
				defs.Checks = append(defs.Checks, d.check(b, "check"))
			}
		}
	}
	if len(d.errs) == 0 {
		for _, s := range defs.Services {
			if err := s.Validate(); err != nil {
				d.errorf(s.Line, "service %q: %v", s.Name, err)
			}
		}
		for _, c := range defs.Checks {
			d.validateCheck(c)
		}
	}
	return defs, errors.Join(d.errs...)
}

// DecodeService decodes the JSON body of PUT /v1/agent/service/register.
// Keys match case-insensitively, with or without underscores, and keys
// Consul would ignore are ignored; durations are strings ("10s") or
// nanoseconds. It does not validate: call Validate.
func DecodeService(body []byte) (ServiceDefinition, error) {
	t, err := parseJSON(body)
	if err != nil {
		return ServiceDefinition{}, err
	}
	if t.kind != kindObject {
		return ServiceDefinition{}, fmt.Errorf("want a JSON object, got %s", t.kind)
	}
	d := decoder{}
	s := d.service(t)
	return s, errors.Join(d.errs...)
}

// DecodeCheck decodes the JSON body of PUT /v1/agent/check/register, as
// DecodeService does. It does not validate: call Validate.
func DecodeCheck(body []byte) (CheckDefinition, error) {
	t, err := parseJSON(body)
	if err != nil {
		return CheckDefinition{}, err
	}
	if t.kind != kindObject {
		return CheckDefinition{}, fmt.Errorf("want a JSON object, got %s", t.kind)
	}
	d := decoder{}
	c := d.check(t, "check")
	return c, errors.Join(d.errs...)
}

// decoder turns trees into definitions, collecting errors.
type decoder struct {
	file   string // "" for HTTP bodies
	strict bool   // files: unknown keys are errors, durations must be strings
	errs   []error
}

func (d *decoder) errorf(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case d.file != "" && line > 0:
		msg = fmt.Sprintf("%s:%d: %s", filepath.Base(d.file), line, msg)
	case d.file != "":
		msg = filepath.Base(d.file) + ": " + msg
	case line > 0:
		msg = fmt.Sprintf("line %d: %s", line, msg)
	}
	d.errs = append(d.errs, errors.New(msg))
}

// blocks returns the objects v holds: itself, or a list's elements.
func (d *decoder) blocks(v *tree, key string) []*tree {
	switch v.kind {
	case kindNull:
		return nil
	case kindObject:
		return []*tree{v}
	case kindList:
		var out []*tree
		for _, e := range v.vals {
			if e.kind != kindObject {
				d.errorf(e.line, "%s: want a block, got %s", key, e.kind)
				continue
			}
			out = append(out, e)
		}
		return out
	}
	d.errorf(v.line, "%s: want a block, got %s", key, v.kind)
	return nil
}

// ignoredService and ignoredCheck are Consul keys that mean nothing to
// consort (ACL tokens, enterprise namespaces) and are accepted silently.
var ignoredService = map[string]bool{"token": true, "namespace": true, "partition": true, "locality": true, "enterprisemeta": true}
var ignoredCheck = map[string]bool{"token": true, "namespace": true, "partition": true, "disableredirects": true, "enterprisemeta": true}

func (d *decoder) service(t *tree) ServiceDefinition {
	s := ServiceDefinition{Line: t.line}
	var checks []CheckDefinition
	var plural []CheckDefinition
	for i, k := range t.keys {
		v := t.vals[i]
		where := "service"
		if s.Name != "" {
			where = fmt.Sprintf("service %q", s.Name)
		}
		switch nk := normKey(k); nk {
		case "kind":
			s.Kind = d.str(v, where, k)
			if s.Kind != "" {
				d.errorf(v.line, "%s: kind %q: only typical services are supported", where, s.Kind)
			}
		case "id":
			s.ID = d.str(v, where, k)
		case "name":
			s.Name = d.str(v, where, k)
		case "tags":
			s.Tags = d.strs(v, where, k)
		case "address":
			s.Address = d.str(v, where, k)
		case "port":
			s.Port = d.int(v, where, k)
		case "enabletagoverride":
			s.EnableTagOverride = d.bool(v, where, k)
		case "meta":
			s.Meta = d.strMap(v, s.Meta, where, k)
		case "taggedaddresses":
			s.TaggedAddresses = d.taggedAddresses(v, s.TaggedAddresses, where)
		case "weights":
			s.Weights = d.weights(v, s.Weights, where)
		case "check":
			for _, b := range d.blocks(v, k) {
				checks = append(checks, d.check(b, where+": check"))
			}
		case "checks":
			for _, b := range d.blocks(v, k) {
				plural = append(plural, d.check(b, where+": checks"))
			}
		case "connect", "proxy", "socketpath":
			if !empty(v) {
				d.errorf(v.line, "%s: %s is not supported by consort", where, k)
			}
		default:
			if ignoredService[nk] {
				continue
			}
			d.unknown(v, where, k)
		}
	}
	s.Checks = append(checks, plural...)
	return s
}

func (d *decoder) check(t *tree, where string) CheckDefinition {
	c := CheckDefinition{Line: t.line}
	ct := &c.Type
	for i, k := range t.keys {
		v := t.vals[i]
		w := where
		if c.Name != "" {
			w = fmt.Sprintf("%s %q", where, c.Name)
		}
		switch nk := normKey(k); nk {
		case "id", "checkid":
			c.ID = d.str(v, w, k)
		case "name":
			c.Name = d.str(v, w, k)
		case "notes":
			c.Notes = d.str(v, w, k)
		case "serviceid":
			c.ServiceID = d.str(v, w, k)
		case "status":
			c.Status = d.str(v, w, k)
		case "args", "scriptargs":
			ct.Args = d.strs(v, w, k)
		case "http":
			ct.HTTP = d.str(v, w, k)
		case "header":
			ct.Header = d.header(v, ct.Header, w)
		case "method":
			ct.Method = d.str(v, w, k)
		case "body":
			ct.Body = d.str(v, w, k)
		case "tlsskipverify":
			ct.TLSSkipVerify = d.bool(v, w, k)
		case "tlsservername":
			ct.TLSServerName = d.str(v, w, k)
		case "tcp":
			ct.TCP = d.str(v, w, k)
		case "udp":
			ct.UDP = d.str(v, w, k)
		case "grpc":
			ct.GRPC = d.str(v, w, k)
		case "grpcusetls":
			ct.GRPCUseTLS = d.bool(v, w, k)
		case "h2ping":
			ct.H2PING = d.str(v, w, k)
		case "h2pingusetls":
			ct.H2PingUseTLS = d.bool(v, w, k)
		case "aliasnode":
			ct.AliasNode = d.str(v, w, k)
		case "aliasservice":
			ct.AliasService = d.str(v, w, k)
		case "ttl":
			ct.TTL = d.duration(v, w, k)
		case "interval":
			ct.Interval = d.duration(v, w, k)
		case "timeout":
			ct.Timeout = d.duration(v, w, k)
		case "deregistercriticalserviceafter":
			ct.DeregisterCriticalServiceAfter = d.duration(v, w, k)
		case "successbeforepassing":
			ct.SuccessBeforePassing = d.int(v, w, k)
		case "failuresbeforewarning":
			ct.FailuresBeforeWarning = d.int(v, w, k)
		case "failuresbeforecritical":
			ct.FailuresBeforeCritical = d.int(v, w, k)
		case "outputmaxsize":
			ct.OutputMaxSize = d.int(v, w, k)
		case "dockercontainerid", "shell", "osservice":
			if !empty(v) {
				d.errorf(v.line, "%s: %s checks are not supported by consort", w, k)
			}
		case "tcpusetls":
			if d.bool(v, w, k) {
				d.errorf(v.line, "%s: %s is not supported by consort", w, k)
			}
		default:
			if ignoredCheck[nk] {
				continue
			}
			d.unknown(v, w, k)
		}
	}
	return c
}

// validateCheck validates a top-level check of a definition file.
func (d *decoder) validateCheck(c CheckDefinition) {
	switch {
	case c.Name == "":
		d.errorf(c.Line, "check: Missing check name")
	case c.Status != "" && !validStatus(c.Status):
		d.errorf(c.Line, "check %q: Bad check status", c.Name)
	default:
		if err := c.Validate(); err != nil {
			d.errorf(c.Line, "check %q: Invalid check: %v", c.Name, err)
		}
	}
}

func (d *decoder) unknown(v *tree, where, k string) {
	if d.strict {
		d.errorf(v.line, "%s: unknown key %q", where, k)
	}
}

// empty reports whether v carries nothing: null, "", false, 0, {} or [].
func empty(v *tree) bool {
	switch v.kind {
	case kindNull:
		return true
	case kindString:
		return v.text == ""
	case kindBool:
		return !v.b
	case kindNumber:
		f, err := strconv.ParseFloat(v.text, 64)
		return err == nil && f == 0
	}
	return len(v.vals) == 0
}

func (d *decoder) str(v *tree, where, k string) string {
	switch v.kind {
	case kindString, kindNumber:
		return v.text
	case kindBool:
		return strconv.FormatBool(v.b)
	case kindNull:
		return ""
	}
	d.errorf(v.line, "%s: %s: want a string, got %s", where, k, v.kind)
	return ""
}

func (d *decoder) strs(v *tree, where, k string) []string {
	switch v.kind {
	case kindNull:
		return nil
	case kindList:
		out := make([]string, 0, len(v.vals))
		for _, e := range v.vals {
			if e.kind == kindObject || e.kind == kindList {
				d.errorf(e.line, "%s: %s: want a list of strings, got %s in it", where, k, e.kind)
				continue
			}
			out = append(out, d.str(e, where, k))
		}
		return out
	case kindObject:
		d.errorf(v.line, "%s: %s: want a list of strings, got %s", where, k, v.kind)
		return nil
	}
	return []string{d.str(v, where, k)}
}

func (d *decoder) int(v *tree, where, k string) int {
	var text string
	switch v.kind {
	case kindNull:
		return 0
	case kindNumber, kindString:
		text = v.text
	default:
		d.errorf(v.line, "%s: %s: want a number, got %s", where, k, v.kind)
		return 0
	}
	if n, err := strconv.ParseInt(text, 10, 32); err == nil {
		return int(n)
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		d.errorf(v.line, "%s: %s: want a whole number, got %s", where, k, clip(text))
		return 0
	}
	return int(f)
}

func (d *decoder) bool(v *tree, where, k string) bool {
	switch v.kind {
	case kindBool:
		return v.b
	case kindNull:
		return false
	case kindString:
		if b, err := strconv.ParseBool(v.text); err == nil {
			return b
		}
	}
	d.errorf(v.line, "%s: %s: want true or false, got %s", where, k, v.kind)
	return false
}

// duration reads a Go duration string ("10s"); HTTP bodies may also give
// nanoseconds as a number, as Consul's decoder accepts.
func (d *decoder) duration(v *tree, where, k string) int64 {
	switch v.kind {
	case kindNull:
		return 0
	case kindString:
		if v.text == "" {
			return 0
		}
		dur, err := time.ParseDuration(v.text)
		if err != nil {
			d.errorf(v.line, "%s: %s: %v", where, k, err)
			return 0
		}
		if dur < 0 {
			d.errorf(v.line, "%s: %s: negative duration %s", where, k, clip(v.text))
			return 0
		}
		return int64(dur)
	case kindNumber:
		if d.strict {
			d.errorf(v.line, "%s: %s: want a duration string such as \"10s\", got the number %s", where, k, v.text)
			return 0
		}
		f, err := strconv.ParseFloat(v.text, 64)
		if err != nil || f < 0 || f > math.MaxInt64 {
			d.errorf(v.line, "%s: %s: bad duration %s", where, k, clip(v.text))
			return 0
		}
		return int64(f)
	}
	d.errorf(v.line, "%s: %s: want a duration string such as \"10s\", got %s", where, k, v.kind)
	return 0
}

// object checks that v is a block (null counts as an empty one).
func (d *decoder) object(v *tree, where, k string) bool {
	switch v.kind {
	case kindObject:
		return true
	case kindNull:
		return false
	case kindList:
		// A list of blocks, as `meta = [{...}]` or what the hcl JSON
		// parser makes of repeated objects, is merged by the callers.
		return false
	}
	d.errorf(v.line, "%s: %s: want a block, got %s", where, k, v.kind)
	return false
}

// each calls f for the key/value pairs of a block, or of every block of
// a list of blocks, so repeated blocks merge.
func (d *decoder) each(v *tree, where, k string, f func(key string, val *tree)) {
	if v.kind == kindList {
		for _, b := range d.blocks(v, k) {
			d.each(b, where, k, f)
		}
		return
	}
	if !d.object(v, where, k) {
		return
	}
	for i, key := range v.keys {
		f(key, v.vals[i])
	}
}

func (d *decoder) strMap(v *tree, into map[string]string, where, k string) map[string]string {
	d.each(v, where, k, func(key string, val *tree) {
		if into == nil {
			into = map[string]string{}
		}
		if val.kind == kindObject || val.kind == kindList {
			d.errorf(val.line, "%s: %s: %s: want a string, got %s", where, k, clip(key), val.kind)
			return
		}
		into[key] = d.str(val, where, k+"."+key)
	})
	return into
}

func (d *decoder) header(v *tree, into map[string][]string, where string) map[string][]string {
	d.each(v, where, "header", func(key string, val *tree) {
		if into == nil {
			into = map[string][]string{}
		}
		into[key] = append(into[key], d.strs(val, where, "header."+key)...)
	})
	return into
}

func (d *decoder) taggedAddresses(v *tree, into map[string]structs.ServiceAddress, where string) map[string]structs.ServiceAddress {
	d.each(v, where, "tagged_addresses", func(name string, val *tree) {
		if into == nil {
			into = map[string]structs.ServiceAddress{}
		}
		sa := into[name]
		d.each(val, where, "tagged_addresses."+name, func(key string, f *tree) {
			switch normKey(key) {
			case "address":
				sa.Address = d.str(f, where, "tagged_addresses."+name+".address")
			case "port":
				sa.Port = d.int(f, where, "tagged_addresses."+name+".port")
			default:
				d.unknown(f, where, "tagged_addresses."+name+"."+key)
			}
		})
		into[name] = sa
	})
	return into
}

func (d *decoder) weights(v *tree, into *structs.Weights, where string) *structs.Weights {
	if v.kind == kindNull {
		return into
	}
	if into == nil {
		into = &structs.Weights{Passing: 1, Warning: 1}
	}
	d.each(v, where, "weights", func(key string, f *tree) {
		switch normKey(key) {
		case "passing":
			into.Passing = d.int(f, where, "weights.passing")
		case "warning":
			into.Warning = d.int(f, where, "weights.warning")
		default:
			d.unknown(f, where, "weights."+key)
		}
	})
	return into
}
