package catalogd

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/consort-io/consort/pkg/structs"
)

func sampleEntry() *serviceEntryJSON {
	return &serviceEntryJSON{
		Node: &nodeJSON{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1",
			Meta:            map[string]string{"env": "prod", `we"ird key`: "x`y\"z", "multi\nline": "v"},
			TaggedAddresses: map[string]string{"wan": "1.2.3.4"}},
		Service: &serviceJSON{ID: "web-1", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080,
			Meta:            map[string]string{"version": "1"},
			TaggedAddresses: map[string]structs.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 80}},
			Weights:         structs.Weights{Passing: 3, Warning: 1}},
		Checks: []*checkJSON{
			{CheckID: "serfHealth", Status: "passing", ServiceTags: []string{}},
			{CheckID: "c1", Status: "critical", ServiceID: "web-1", ServiceName: "web", ServiceTags: []string{"v1", "primary"}},
		},
	}
}

// TestFilterSemantics: Consul's filter semantics on the records we answer
// with, including the implied "any" through lists and odd map keys.
func TestFilterSemantics(t *testing.T) {
	e := sampleEntry()
	for _, tt := range []struct {
		expr string
		want bool
	}{
		{`Node.Node == n1`, true},
		{`Node.Node == "n2"`, false},
		{`Node.Meta.env == prod`, true},
		{`Node.Meta.missing == prod`, false},
		{`Node.Meta.missing != prod`, true},
		{`Node.Meta is not empty`, true},
		{`env in Node.Meta`, true},
		{"Node.Meta[`we\"ird key`] == \"x`y\\x22z\"", true},
		{"Node.Meta[\"multi\\nline\"] == v", true},
		{`Node.TaggedAddresses.wan == "1.2.3.4"`, true},
		{`Service.Port == 8080`, true},
		{`Service.Port != 8080`, false},
		{`Service.Weights.Passing == 3`, true},
		{`Service.TaggedAddresses.lan.Port == 80`, true},
		{`Service.TaggedAddresses.lan.Address matches "^10\\."`, true},
		{`primary in Service.Tags`, true},
		{`"v2" not in Service.Tags`, true},
		{`Service.Tags contains v1`, true},
		{`Service.Tags is empty`, false},
		{`Service.Service matches "^w.b$"`, true},
		{`Service.Service not matches "^w.b$"`, false},
		{`Service.Connect.Native == false`, true},
		{`Service.Proxy.Upstreams is empty`, true},
		{`Service.Proxy.Upstreams.DestinationName == x`, false},
		{`Checks.Status == critical`, true},
		{`Checks.Status == warning`, false},
		{`Checks.Status != passing`, true}, // any check not passing
		{`Checks.CheckID == serfHealth and Checks.Status == critical`, true},
		{`primary in Checks.ServiceTags`, true},
		{`Checks is not empty`, true},
		{`not (Checks.Status == critical)`, false},
		{`(Node.Node == x or Service.Port == 8080) and not Service.Tags is empty`, true},
	} {
		f, err := compileFilter(tt.expr, typeEntry)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		got, err := f.match(e)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

// TestFilterRefused: what Consul refuses when it creates the filter is a
// 400 naming the problem.
func TestFilterRefused(t *testing.T) {
	for expr, msg := range map[string]string{
		`Nope == 1`:                         `Selector "Nope" is not valid`,
		`Node.Nope == 1`:                    `Selector "Node.Nope" is not valid`,
		`Node.Node.Deeper == 1`:             `is not valid`,
		`Service.CreateIndex == 1`:          `Selector "Service.CreateIndex" is not valid`,
		`Checks.Definition.HTTP == x`:       `Selector "Checks.Definition.HTTP" is not valid`,
		`Service.Tags == v1`:                `Invalid match operator`,
		`Service.Port == eighty`:            `Failed to convert value "eighty"`,
		`Service.Port matches "8"`:          `Invalid match operator`,
		`Service.Service matches "("`:       `Invalid regular expression`,
		`Service.Port is empty`:             `Invalid match operator`,
		`Service.Port is nil`:               `Invalid match operator`,
		`any Checks as c { c.Status == x }`: `any expressions are not supported`,
		`"/Node/Node" == n1`:                `JSON pointer selectors are not supported`,
		`Node.Node ==`:                      `Failed to create boolean expression evaluator`,
		`(Node.Node == n1`:                  `Failed to create boolean expression evaluator`,
		strings.Repeat("Node.Node == a or ", 600) + "Node.Node == b": `Failed to create boolean expression evaluator`,
	} {
		_, err := compileFilter(expr, typeEntry)
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusBadRequest || !strings.Contains(he.msg, msg) ||
			!strings.HasPrefix(he.msg, "Failed to create boolean expression evaluator: ") {
			t.Errorf("%.60s: %v, want 400 containing %q", expr, err, msg)
		}
	}
	if f, err := compileFilter("", typeEntry); f != nil || err != nil {
		t.Fatalf("empty filter = %v, %v", f, err)
	}
}

// TestQuoteValue: values survive the rewrite whatever they hold.
func TestQuoteValue(t *testing.T) {
	for _, v := range []string{"", "plain", `a"b`, "a`b", `\`, `\"`, "\x00\xff", "é\n\t", `"` + "`" + `\x22`} {
		e := &nodeJSON{Node: v, Meta: map[string]string{v: "k"}}
		for _, expr := range []string{"Node == " + quoteValue(v), "Meta[" + quoteValue(v) + "] == k"} {
			f, err := compileFilter(expr, typeNode)
			if err != nil {
				t.Errorf("%q: %v", expr, err)
				continue
			}
			if ok, err := f.match(e); !ok || err != nil {
				t.Errorf("%q does not match %q: %v", expr, v, err)
			}
		}
	}
}

// TestFilterTypesSelectable: every selector Consul documents for the
// endpoints resolves on our record types.
func TestFilterTypesSelectable(t *testing.T) {
	for typ, selectors := range map[reflect.Type][]string{
		typeNode: {"Address", "Datacenter", "ID", "Meta", "Meta.x", "Node", "TaggedAddresses", "TaggedAddresses.x"},
		typeServiceNode: {"Address", "Datacenter", "ID", "Node", "NodeMeta", "NodeMeta.x", "ServiceAddress", "ServiceConnect.Native",
			"ServiceEnableTagOverride", "ServiceID", "ServiceKind", "ServiceMeta", "ServiceMeta.x", "ServiceName", "ServicePort",
			"ServiceProxy.DestinationServiceID", "ServiceProxy.DestinationServiceName", "ServiceProxy.LocalServiceAddress",
			"ServiceProxy.LocalServicePort", "ServiceProxy.Mode", "ServiceProxy.TransparentProxy.OutboundListenerPort",
			"ServiceProxy.MeshGateway.Mode", "ServiceProxy.Upstreams.Datacenter", "ServiceProxy.Upstreams.DestinationName",
			"ServiceProxy.Upstreams.LocalBindPort", "ServiceProxy.Upstreams", "ServiceTaggedAddresses.x.Address",
			"ServiceTaggedAddresses.x.Port", "ServiceTaggedAddresses", "ServiceTags", "ServiceWeights.Passing",
			"ServiceWeights.Warning", "TaggedAddresses.x", "TaggedAddresses"},
		typeService: {"Address", "Connect.Native", "EnableTagOverride", "ID", "Kind", "Meta", "Meta.x", "Port", "Proxy.Mode",
			"Service", "TaggedAddresses", "TaggedAddresses.x.Address", "Tags", "Weights.Passing"},
		typeCheck: {"CheckID", "Name", "Node", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Status"},
		typeEntry: {"Checks", "Checks.CheckID", "Checks.ServiceTags", "Checks.Status", "Node.Meta.x", "Node.TaggedAddresses.x",
			"Service.Meta.x", "Service.Tags", "Service.TaggedAddresses.x.Port", "Service.Weights.Warning"},
	} {
		for _, sel := range selectors {
			if _, err := compileFilter(sel+" is not empty", typ); err != nil && strings.Contains(err.Error(), "is not valid") {
				t.Errorf("%s on %s: %v", sel, typ.Name(), err)
			}
		}
	}
}
