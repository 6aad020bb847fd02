package agent

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

const hclDefs = `
node_name = "n1"   # node config keys are skipped
ports { http = 8501 }

service {
  name = "web"
  id   = "web-1"
  port = 8080
  address = "10.0.0.5"
  tags = ["primary", "v1"]
  enable_tag_override = true
  meta {
    version = "1.2"
  }
  tagged_addresses {
    lan = { address = "10.0.0.5", port = 8080 }
    wan {
      address = "203.0.113.5"
      port    = 80
    }
  }
  weights {
    passing = 10
    warning = 1
  }
  check {
    http     = "http://localhost:8080/health"
    interval = "10s"
    timeout  = "1s"
    header { X-Token = ["a", "b"] }
    method = "POST"
    tls_skip_verify = true
  }
  checks = [
    { tcp = "localhost:8080", interval = "5s", name = "tcp" },
    { id = "web-ttl", ttl = "30s", status = "passing", deregister_critical_service_after = "1m" },
  ]
}

services = [
  { name = "db", port = 5432 },
  { name = "cache", Port = 6379, Checks = [{ GRPC = "localhost:6379", Interval = "3s", GRPCUseTLS = true }] },
]

check {
  id = "mem"
  name = "Memory"
  args = ["/bin/check_mem", "-w", "90"]
  interval = "30s"
}
checks = [{ name = "disk", ttl = "1m", notes = "fed by cron" }]
`

const jsonDefs = `{
  "node_name": "n1",
  "service": {
    "Name": "web",
    "ID": "web-1",
    "Port": 8080,
    "Address": "10.0.0.5",
    "Tags": ["primary", "v1"],
    "EnableTagOverride": true,
    "Meta": {"version": "1.2"},
    "TaggedAddresses": {
      "lan": {"Address": "10.0.0.5", "Port": 8080},
      "wan": {"address": "203.0.113.5", "port": 80}
    },
    "Weights": {"Passing": 10, "Warning": 1},
    "Check": {
      "HTTP": "http://localhost:8080/health", "Interval": "10s", "Timeout": "1s",
      "Header": {"X-Token": ["a", "b"]}, "Method": "POST", "TLSSkipVerify": true
    },
    "checks": [
      {"tcp": "localhost:8080", "interval": "5s", "name": "tcp"},
      {"CheckID": "web-ttl", "TTL": "30s", "Status": "passing", "DeregisterCriticalServiceAfter": "1m"}
    ]
  },
  "services": [
    {"name": "db", "port": 5432},
    {"name": "cache", "port": 6379, "checks": [{"grpc": "localhost:6379", "interval": "3s", "grpc_use_tls": true}]}
  ],
  "check": {"id": "mem", "name": "Memory", "ScriptArgs": ["/bin/check_mem", "-w", "90"], "interval": "30s"},
  "checks": [{"name": "disk", "ttl": "1m", "notes": "fed by cron"}]
}`

// wantDefs is what both documents above declare.
func wantDefs() Definitions {
	return Definitions{
		Services: []ServiceDefinition{
			{
				ID: "web-1", Name: "web", Port: 8080, Address: "10.0.0.5",
				Tags: []string{"primary", "v1"}, EnableTagOverride: true,
				Meta: map[string]string{"version": "1.2"},
				TaggedAddresses: map[string]structs.ServiceAddress{
					"lan": {Address: "10.0.0.5", Port: 8080},
					"wan": {Address: "203.0.113.5", Port: 80},
				},
				Weights: &structs.Weights{Passing: 10, Warning: 1},
				Checks: []CheckDefinition{
					{Type: structs.CheckType{
						HTTP: "http://localhost:8080/health", Interval: int64(10 * time.Second), Timeout: int64(time.Second),
						Header: map[string][]string{"X-Token": {"a", "b"}}, Method: "POST", TLSSkipVerify: true,
					}},
					{Name: "tcp", Type: structs.CheckType{TCP: "localhost:8080", Interval: int64(5 * time.Second)}},
					{ID: "web-ttl", Status: "passing", Type: structs.CheckType{TTL: int64(30 * time.Second), DeregisterCriticalServiceAfter: int64(time.Minute)}},
				},
			},
			{Name: "db", Port: 5432},
			{Name: "cache", Port: 6379, Checks: []CheckDefinition{
				{Type: structs.CheckType{GRPC: "localhost:6379", Interval: int64(3 * time.Second), GRPCUseTLS: true}},
			}},
		},
		Checks: []CheckDefinition{
			{ID: "mem", Name: "Memory", Type: structs.CheckType{Args: []string{"/bin/check_mem", "-w", "90"}, Interval: int64(30 * time.Second)}},
			{Name: "disk", Notes: "fed by cron", Type: structs.CheckType{TTL: int64(time.Minute)}},
		},
	}
}

// stripLines zeroes the line numbers, which differ between documents.
func stripLines(d Definitions) Definitions {
	for i := range d.Services {
		d.Services[i].Line = 0
		for j := range d.Services[i].Checks {
			d.Services[i].Checks[j].Line = 0
		}
	}
	for i := range d.Checks {
		d.Checks[i].Line = 0
	}
	return d
}

func TestParseDefinitions(t *testing.T) {
	for _, tc := range []struct{ name, src string }{{"web.hcl", hclDefs}, {"web.json", jsonDefs}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDefinitions(tc.name, []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if got.Services[0].Line == 0 || got.Checks[0].Line == 0 {
				t.Errorf("lines not recorded: service %d, check %d", got.Services[0].Line, got.Checks[0].Line)
			}
			got = stripLines(got)
			if want := wantDefs(); !reflect.DeepEqual(got, want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseDefinitionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"unknown.hcl", "service {\n  name = \"web\"\n  prot = 80\n}\n", []string{`unknown.hcl:3: service "web": unknown key "prot"`}},
		{"check-key.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"10s\"\n    intervall = \"5s\"\n  }\n}\n", []string{`check-key.hcl:5:`, `unknown key "intervall"`}},
		{"noname.hcl", "service {\n  port = 80\n}\n", []string{"noname.hcl:1:", "Missing service name"}},
		{"badcheck.hcl", "service {\n  name = \"web\"\n  check { http = \"http://x\" }\n}\n", []string{"badcheck.hcl:1:", "Interval must be > 0"}},
		{"dur.hcl", "check {\n  name = \"c\"\n  ttl = 30\n}\n", []string{`dur.hcl:3:`, `want a duration string`}},
		{"baddur.json", "{\n \"check\": {\n  \"name\": \"c\",\n  \"ttl\": \"ten\"\n }\n}", []string{"baddur.json:4:", "invalid duration"}},
		{"syntax.hcl", "service {\n  name = \n}\n", []string{"syntax.hcl:"}},
		{"syntax.json", "{\n \"service\": {\"name\": \"web\",}\n}", []string{"syntax.json:2"}},
		{"status.hcl", "check {\n  name = \"c\"\n  ttl = \"1s\"\n  status = \"ok\"\n}\n", []string{"status.hcl:1:", "Bad check status"}},
		{"weights.hcl", "service {\n  name = \"w\"\n  weights { passing = 0 }\n}\n", []string{"Passing must be greater than 0"}},
		{"meta.hcl", "service {\n  name = \"w\"\n  meta { \"bad key\" = \"x\" }\n}\n", []string{"Invalid Service Meta"}},
		{"docker.hcl", "check {\n  name = \"c\"\n  docker_container_id = \"abc\"\n}\n", []string{"docker.hcl:3:", "not supported"}},
		{"list.hcl", "service {\n  name = \"w\"\n  tags = [{a = 1}]\n}\n", []string{"list.hcl:3:", "want a list of strings"}},
		{"port.hcl", "service {\n  name = \"w\"\n  port = \"http\"\n}\n", []string{"port.hcl:3:", "want a whole number"}},
		{"two.hcl", "service {\n  name = \"a\"\n  prot = 1\n}\nservice {\n  name = \"b\"\n  tagz = []\n}\n", []string{`two.hcl:3:`, `two.hcl:7:`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDefinitions(tc.name, []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeServiceBody(t *testing.T) {
	// What consul/api's Agent().ServiceRegister sends, plus snake_case and
	// numeric durations Consul's decoder also takes, and keys it ignores.
	body := `{"ID":"web-1","Name":"web","Tags":["a"],"Port":80,"Address":"127.0.0.1",
	  "Meta":{"k":"v"},"Weights":{"Passing":3,"Warning":1},"Token":"x","SomethingNew":1,
	  "Check":{"CheckID":"c1","TTL":"15s","DeregisterCriticalServiceAfter":90000000000},
	  "Checks":[{"Name":"h","HTTP":"http://x/","Interval":"1s","Header":{"A":["b"]}}],
	  "enable_tag_override":true,"tagged_addresses":{"lan":{"address":"1.2.3.4","port":80}}}`
	s, err := DecodeService([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := ServiceDefinition{
		ID: "web-1", Name: "web", Tags: []string{"a"}, Port: 80, Address: "127.0.0.1",
		Meta: map[string]string{"k": "v"}, Weights: &structs.Weights{Passing: 3, Warning: 1},
		EnableTagOverride: true, TaggedAddresses: map[string]structs.ServiceAddress{"lan": {Address: "1.2.3.4", Port: 80}},
		Checks: []CheckDefinition{
			{ID: "c1", Type: structs.CheckType{TTL: int64(15 * time.Second), DeregisterCriticalServiceAfter: int64(90 * time.Second)}, Line: 3},
			{Name: "h", Type: structs.CheckType{HTTP: "http://x/", Interval: int64(time.Second), Header: map[string][]string{"A": {"b"}}}, Line: 4},
		},
		Line: 1,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", s, want)
	}

	ns := s.NodeService()
	if ns.ID != "web-1" || ns.Service != "web" || *ns.Weights != (structs.Weights{Passing: 3, Warning: 1}) {
		t.Errorf("node service %+v", ns)
	}
	if ns := (ServiceDefinition{Name: "x"}).NodeService(); ns.ID != "x" || *ns.Weights != (structs.Weights{Passing: 1, Warning: 1}) {
		t.Errorf("defaults: %+v", ns)
	}

	for _, bad := range []string{``, `[]`, `{"Name":`, `{"Port":"x"}`, `{"Name":"a"} {}`, `{"Check":{"TTL":"-1s"}}`} {
		if _, err := DecodeService([]byte(bad)); err == nil {
			t.Errorf("DecodeService(%q): no error", bad)
		}
	}
}

func TestCheckValidate(t *testing.T) {
	sec := int64(time.Second)
	for _, tc := range []struct {
		ct   structs.CheckType
		kind string
		err  string
	}{
		{structs.CheckType{TTL: sec}, "ttl", ""},
		{structs.CheckType{HTTP: "http://x", Interval: sec}, "http", ""},
		{structs.CheckType{TCP: "x:1", Interval: sec}, "tcp", ""},
		{structs.CheckType{UDP: "x:1", Interval: sec}, "udp", ""},
		{structs.CheckType{GRPC: "x:1", Interval: sec}, "grpc", ""},
		{structs.CheckType{H2PING: "x:1", Interval: sec}, "h2ping", ""},
		{structs.CheckType{Args: []string{"true"}, Interval: sec}, "script", ""},
		{structs.CheckType{AliasService: "web"}, "alias", ""},
		{structs.CheckType{}, "", "TTL must be > 0"},
		{structs.CheckType{HTTP: "http://x"}, "http", "Interval must be > 0"},
		{structs.CheckType{TTL: sec, Interval: sec}, "ttl", "cannot both"},
		{structs.CheckType{AliasService: "web", TTL: sec}, "ttl", "TTL must be not be set"},
		{structs.CheckType{HTTP: "http://x", TCP: "x:1", Interval: sec}, "http", "only one of"},
	} {
		if k := CheckKind(tc.ct); k != tc.kind {
			t.Errorf("CheckKind(%+v) = %q, want %q", tc.ct, k, tc.kind)
		}
		err := CheckDefinition{Name: "c", Type: tc.ct}.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.ct, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: error %v, want %q", tc.ct, err, tc.err)
		}
	}
}

func TestAggregatedStatus(t *testing.T) {
	c := func(id, status string) *structs.HealthCheck { return &structs.HealthCheck{CheckID: id, Status: status} }
	for _, tc := range []struct {
		checks []*structs.HealthCheck
		want   string
	}{
		{nil, "passing"},
		{[]*structs.HealthCheck{c("a", "passing")}, "passing"},
		{[]*structs.HealthCheck{c("a", "passing"), c("b", "warning")}, "warning"},
		{[]*structs.HealthCheck{c("a", "critical"), c("b", "warning")}, "critical"},
		{[]*structs.HealthCheck{c("a", "passing"), c("_node_maintenance", "critical")}, "maintenance"},
		{[]*structs.HealthCheck{c("_service_maintenance:web", "critical")}, "maintenance"},
		{[]*structs.HealthCheck{c("a", "bogus")}, ""},
	} {
		if got := AggregatedStatus(tc.checks); got != tc.want {
			t.Errorf("AggregatedStatus(%v) = %q, want %q", tc.checks, got, tc.want)
		}
	}
}

// A large body decodes in linear time (a quadratic line
// count would take minutes).
func TestDecodeLargeBody(t *testing.T) {
	body := `{"Name":"x","Tags":[` + strings.Repeat(`"a",`+"\n", 200000) + `"b"]}`
	s, err := DecodeService([]byte(body))
	if err != nil || len(s.Tags) != 200001 {
		t.Fatalf("%d tags, %v", len(s.Tags), err)
	}
}
