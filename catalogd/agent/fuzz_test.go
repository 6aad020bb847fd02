package agent

import (
	"strings"
	"testing"
)

// FuzzParseDefinitions: no definition file, HCL or JSON, makes the parser
// panic or hang; what it accepts validates, has a name, and turns into
// records; every error names the file.
func FuzzParseDefinitions(f *testing.F) {
	for _, seed := range []string{
		hclDefs,
		jsonDefs,
		`service { name = "web" port = 80 }`,
		`services = [{ name = "a" }, { name = "b", check = { ttl = "1s" } }]`,
		`check { name = "c" ttl = "10s" status = "passing" }`,
		`service { name = "w" meta = [{ a = "b" }, { c = "d" }] }`,
		`service { name = "w" tagged_addresses { lan { address = "x" port = 1 } } }`,
		`service "web" { port = 80 }`,
		"service {\n name = <<EOF\nweb\nEOF\n}",
		`{"service": {"name": "web", "checks": [{"http": "http://x", "interval": "1s"}]}}`,
		`{"services": [{"name": "a"}, null, 3]}`,
		`{"check": {"name": "c", "ttl": 5}}`,
		`{"service": {"weights": {"passing": 1e3}}}`,
		`{"service": {"name": "\u0000", "port": -1}}`,
		`service { name = "x" check { interval = "10s" args = ["a", ["b"]] } }`,
		`a.b.c = 1`,
		`service = "web"`,
		`{`,
		``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		defs, err := ParseDefinitions("fuzz.hcl", []byte(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.hcl") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range defs.Services {
			if err := s.Validate(); err != nil {
				t.Fatalf("accepted service does not validate: %v", err)
			}
			if ns := s.NodeService(); ns.ID == "" || ns.Service == "" || ns.Weights == nil {
				t.Fatalf("accepted service gives record %+v", ns)
			}
		}
		for _, c := range defs.Checks {
			if c.Name == "" || c.Validate() != nil || CheckKind(c.Type) == "" && c.Type.TTL <= 0 {
				t.Fatalf("accepted check %+v", c)
			}
		}
	})
}

// FuzzDecodeService: no HTTP body makes the service or check decoders
// panic; what they accept and validates turns into records.
func FuzzDecodeService(f *testing.F) {
	for _, seed := range []string{
		`{"Name":"web","Port":80,"Check":{"TTL":"10s"}}`,
		`{"ID":"a","Name":"b","Tags":["x"],"Meta":{"k":"v"},"Weights":{"Passing":2,"Warning":1}}`,
		`{"name":"w","checks":[{"http":"http://x","interval":1000000000,"header":{"a":["b"]}}]}`,
		`{"Name":"c","TTL":"5s","ServiceID":"web","Status":"passing"}`,
		`{"Name":"w","TaggedAddresses":{"lan":{"Address":"1.2.3.4","Port":1}}}`,
		`{"Name":"w","Connect":{"Native":true}}`,
		`[1,2]`,
		`{"Name":1e400}`,
		`{"Port":1.5}`,
		`null`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if s, err := DecodeService([]byte(body)); err == nil && s.Validate() == nil {
			ns := s.NodeService()
			if ns.ID == "" || ns.Service == "" {
				t.Fatalf("validated service gives record %+v", ns)
			}
		}
		if c, err := DecodeCheck([]byte(body)); err == nil && c.Name != "" && c.Validate() == nil {
			if hc := c.HealthCheck("n"); hc.CheckID == "" || !validStatus(hc.Status) {
				t.Fatalf("validated check gives record %+v", hc)
			}
		}
	})
}
