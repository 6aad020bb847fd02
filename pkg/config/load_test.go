package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFiles creates files (relative name -> content) under a temp dir
// and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadPrecedence(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"consort.hcl": `
node_name = "from-file"
datacenter = "file-dc"
ports { http = 1001 }
ports { dns = 1002 }
nats { url = "nats://file:4222" }
log_level = "debug"
`,
		"consort.d/10-a.hcl":  `datacenter = "dir-a"` + "\n" + `ports { dns = 2002 }`,
		"consort.d/20-b.json": `{"datacenter": "dir-b", "nats": {"url": "nats://dir:4222"}}`,
		"consort.d/30-c.txt":  `this is not read`,
		"consort.d/.40.hcl":   `datacenter = "hidden"`,
		"consort.d/sub.hcl/x": `datacenter = "in-a-dir"`,
	})
	base := LoadOptions{ConfigFile: filepath.Join(dir, "consort.hcl"), ConfigDir: filepath.Join(dir, "consort.d")}

	tests := []struct {
		name  string
		env   []string
		set   map[string]string
		check func(t *testing.T, n Node)
	}{
		{
			name: "file then dir",
			check: func(t *testing.T, n Node) {
				eq(t, "node_name", n.NodeName, "from-file")
				eq(t, "datacenter", n.Datacenter, "dir-b") // 20-b after 10-a
				eq(t, "ports.http", n.Ports.HTTP, 1001)
				eq(t, "ports.dns", n.Ports.DNS, 2002)
				eq(t, "nats.url", n.NATS.URL, "nats://dir:4222")
				eq(t, "log_level", n.LogLevel, "debug")
				eq(t, "ports.raft (default)", n.Ports.Raft, 8300)
				eq(t, "source", len(n.Source), 3)
			},
		},
		{
			name: "env over dir",
			env:  []string{"PATH=/bin", "CONSORT_DATACENTER=env-dc", "CONSORT_PORTS_HTTP=3001", "CONSORT_NODE_NAME=", "CONSORT_HTTP_ADDR=ignored"},
			check: func(t *testing.T, n Node) {
				eq(t, "datacenter", n.Datacenter, "env-dc")
				eq(t, "ports.http", n.Ports.HTTP, 3001)
				eq(t, "node_name (empty env is unset)", n.NodeName, "from-file")
			},
		},
		{
			name: "set over env",
			env:  []string{"CONSORT_DATACENTER=env-dc", "CONSORT_PORTS_HTTP=3001", "CONSORT_RETRY_JOIN=a:1, b:2"},
			set:  map[string]string{"ports.http": "4001", "node_name": "from-set", "raft.snapshot_interval": "2m"},
			check: func(t *testing.T, n Node) {
				eq(t, "datacenter", n.Datacenter, "env-dc")
				eq(t, "ports.http", n.Ports.HTTP, 4001)
				eq(t, "node_name", n.NodeName, "from-set")
				eq(t, "retry_join", n.RetryJoin, []string{"a:1", "b:2"})
				eq(t, "raft.snapshot_interval", n.Raft.SnapshotInterval, 2*time.Minute)
			},
		},
		{
			name: "datacenter lower-cased",
			set:  map[string]string{"datacenter": "DC-East"},
			check: func(t *testing.T, n Node) {
				eq(t, "datacenter", n.Datacenter, "dc-east")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.Env, o.Set = tt.env, tt.set
			n, err := Load(o)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, n)
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	n, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	host, _ := os.Hostname()
	want.NodeName = host
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got %+v\nwant %+v", n, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		file  string // base name; its extension picks nothing, content does
		body  string
		env   []string
		set   map[string]string
		wants []string // substrings, each must appear
	}{
		{
			name:  "hcl unknown top-level key with dot",
			file:  "consort.hcl",
			body:  "node_name = \"a\"\n\n\nport.http = 1\n",
			wants: []string{`consort.hcl:4: unknown key "port.http" (did you mean "ports"?)`},
		},
		{
			name:  "hcl unknown nested key",
			file:  "consort.hcl",
			body:  "ports {\n  htpp = 1\n}\n",
			wants: []string{`consort.hcl:2: unknown key "ports.htpp" (did you mean "ports.http"?)`},
		},
		{
			name:  "hcl bad number",
			file:  "consort.hcl",
			body:  "ports {\n  http = \"abc\"\n}\n",
			wants: []string{`consort.hcl:2: ports.http: want a number, got "abc"`},
		},
		{
			name: "hcl collects every problem",
			file: "consort.hcl",
			body: "server = \"maybe\"\nnode_nam = \"x\"\nraft { snapshot_interval = \"soon\" }\nports = 3\nretry_join = [1]\n",
			wants: []string{
				`consort.hcl:1: server: want true or false, got "maybe"`,
				`consort.hcl:2: unknown key "node_nam" (did you mean "node_name"?)`,
				`consort.hcl:3: raft.snapshot_interval: want a duration like "30s", got "soon"`,
				`consort.hcl:4: ports: want a block, got 3`,
				`consort.hcl:5: retry_join: want a list of strings, got 1`,
			},
		},
		{
			name:  "hcl value given to a block path",
			file:  "consort.hcl",
			body:  "ports {\n http {\n x = 1\n }\n}\n",
			wants: []string{`consort.hcl:2: ports.http: want a number, got a block`},
		},
		{
			name:  "hcl syntax error",
			file:  "consort.hcl",
			body:  "node_name = \n\n ports {",
			wants: []string{`consort.hcl:3:`},
		},
		{
			name:  "json bad number",
			file:  "a.json",
			body:  "{\n  \"node_name\": \"x\",\n  \"ports\": {\"http\": \"abc\"}\n}\n",
			wants: []string{`a.json:3: ports.http: want a number, got "abc"`},
		},
		{
			name:  "json unknown key",
			file:  "a.json",
			body:  "{\n\n  \"datacentre\": \"x\"\n}\n",
			wants: []string{`a.json:3: unknown key "datacentre" (did you mean "datacenter"?)`},
		},
		{
			name:  "json syntax error",
			file:  "a.json",
			body:  "{\n  \"node_name\": \"x\",\n  \"ports\": {\"http\" 1}\n}\n",
			wants: []string{`a.json:3:`},
		},
		{
			name:  "json negative unsigned",
			file:  "a.json",
			body:  `{"raft": {"snapshot_threshold": -1}}`,
			wants: []string{`a.json:1: raft.snapshot_threshold: want a non-negative number, got -1`},
		},
		{
			name:  "env bad value",
			env:   []string{"CONSORT_PORTS_HTTP=abc", "CONSORT_SERVER=perhaps"},
			wants: []string{`CONSORT_PORTS_HTTP: ports.http: want a number, got "abc"`, `CONSORT_SERVER: server: want true or false, got "perhaps"`},
		},
		{
			name:  "set unknown and bad",
			set:   map[string]string{"port.http": "1", "raft.snapshot_interval": "1 minute"},
			wants: []string{`--set: unknown key "port.http" (did you mean "ports.http"?)`, `--set: raft.snapshot_interval: want a duration like "30s", got "1 minute"`},
		},
		{
			name:  "validation after a clean load",
			set:   map[string]string{"bootstrap": "true"},
			wants: []string{"bootstrap: server-only option on a client"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := LoadOptions{Env: tt.env, Set: tt.set}
			if tt.file != "" {
				dir := writeFiles(t, map[string]string{tt.file: tt.body})
				o.ConfigFile = filepath.Join(dir, tt.file)
			}
			_, err := Load(o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(tt.wants); tt.file != "" && got < want {
				t.Errorf("%d problems reported, want %d:\n%v", got, want, err)
			}
		})
	}
}

func TestLoadDirErrorsNameFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"consort.d/a.json": "{\n  \"ports\": {\n    \"http\": \"abc\"\n  }\n}\n",
		"consort.d/b.hcl":  "nats {\n  urll = \"x\"\n}\n",
	})
	_, err := Load(LoadOptions{ConfigDir: filepath.Join(dir, "consort.d")})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		filepath.Join(dir, "consort.d/a.json") + `:3: ports.http: want a number, got "abc"`,
		filepath.Join(dir, "consort.d/b.hcl") + `:2: unknown key "nats.urll" (did you mean "nats.url"?)`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	for _, o := range []LoadOptions{
		{ConfigFile: filepath.Join(t.TempDir(), "nope.hcl")},
		{ConfigDir: filepath.Join(t.TempDir(), "nope.d")},
		{ConfigFile: t.TempDir()},
	} {
		if _, err := Load(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// TestHCLJSONEquivalent loads the same settings written both ways.
func TestHCLJSONEquivalent(t *testing.T) {
	hclBody := `
node_name        = "n1"
node_id          = "3f2a9c1e-8d4b-4f7a-9e21-5c6d7e8f9a0b"
datacenter       = "east"
server           = true
bootstrap_expect = 3
retry_join       = ["10.0.0.2:8300", "10.0.0.3:8300"]
bind_addr        = "10.0.0.1"
advertise_addr   = "10.0.0.1"
client_addr      = "0.0.0.0"
data_dir         = "/data"
run_dir          = "/run/c"
log_level        = "warn"
ports {
  raft = 9300
  serf_lan = 9301
  serf_wan = -1
  server = 9303
  http = 9500
  dns = 9600
}
nats {
  url            = "nats://10.0.0.9:4222"
  subject_prefix = "prod.consort"
}
raft {
  snapshot_threshold = 100
  snapshot_interval  = "90s"
  trailing_logs      = 200
  raft_multiplier    = 5
}
limits { kv_max_value_size = 1024 }
service {
  name = "web"
  port = 80
}
checks = [{ id = "c1", ttl = "10s" }]
`
	jsonBody := `{
  "node_name": "n1",
  "node_id": "3f2a9c1e-8d4b-4f7a-9e21-5c6d7e8f9a0b",
  "datacenter": "east",
  "server": true,
  "bootstrap_expect": 3,
  "retry_join": ["10.0.0.2:8300", "10.0.0.3:8300"],
  "bind_addr": "10.0.0.1",
  "advertise_addr": "10.0.0.1",
  "client_addr": "0.0.0.0",
  "data_dir": "/data",
  "run_dir": "/run/c",
  "log_level": "warn",
  "ports": {"raft": 9300, "serf_lan": 9301, "serf_wan": -1, "server": 9303, "http": 9500, "dns": 9600},
  "nats": {"url": "nats://10.0.0.9:4222", "subject_prefix": "prod.consort"},
  "raft": {"snapshot_threshold": 100, "snapshot_interval": "90s", "trailing_logs": 200, "raft_multiplier": 5},
  "limits": {"kv_max_value_size": 1024},
  "service": {"name": "web", "port": 80},
  "checks": [{"id": "c1", "ttl": "10s"}]
}`
	dir := writeFiles(t, map[string]string{"a.hcl": hclBody, "a.json": jsonBody})
	h, err := Load(LoadOptions{ConfigFile: filepath.Join(dir, "a.hcl")})
	if err != nil {
		t.Fatalf("hcl: %v", err)
	}
	j, err := Load(LoadOptions{ConfigFile: filepath.Join(dir, "a.json")})
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	h.Source, j.Source = nil, nil
	if !reflect.DeepEqual(h, j) {
		t.Fatalf("hcl and json differ:\nhcl  %+v\njson %+v", h, j)
	}
	eq(t, "snapshot_interval", h.Raft.SnapshotInterval, 90*time.Second)
	eq(t, "ports.serf_wan", h.Ports.SerfWAN, -1)
	eq(t, "nats.subject_prefix", h.NATS.SubjectPrefix, "prod.consort")
	eq(t, "raft.raft_multiplier", h.Raft.Multiplier, 5)
}

func TestDottedKeysInFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": "ports.http = 7000\n\"raft.snapshot_interval\" = \"5s\"\n"})
	n, err := Load(LoadOptions{ConfigFile: filepath.Join(dir, "a.hcl")})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ports.http", n.Ports.HTTP, 7000)
	eq(t, "raft.snapshot_interval", n.Raft.SnapshotInterval, 5*time.Second)
}

func TestEnvNamesUnique(t *testing.T) {
	if len(envNames) != len(Keys()) {
		t.Fatalf("%d env names for %d keys", len(envNames), len(Keys()))
	}
	for _, k := range []string{"node_name", "ports.http", "nats.url", "retry_join", "raft.snapshot_interval"} {
		if leaves[k] == nil {
			t.Errorf("key %q missing", k)
		}
	}
	eq(t, "env name", EnvName("ports.http"), "CONSORT_PORTS_HTTP")
	eq(t, "env lookup", envNames["CONSORT_RETRY_JOIN"], "retry_join")
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestNumbersAsStrings(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.json": `{"ports": {"http": "08501", "dns": 8601}, "server": "true", "bootstrap_expect": "3"}`})
	n, err := Load(LoadOptions{ConfigFile: filepath.Join(dir, "a.json")})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ports.http (decimal string)", n.Ports.HTTP, 8501)
	eq(t, "ports.dns", n.Ports.DNS, 8601)
	eq(t, "server", n.Server, true)
	eq(t, "bootstrap_expect", n.BootstrapExpect, 3)
}

// TestNodeMeta shows node_meta blocks from HCL and JSON files merge (later
// keys win), env and --set add key:value pairs, and bad shapes name the
// file and line.
func TestNodeMeta(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"consort.hcl":        "node_meta {\n  rack = \"r1\"\n  zone = \"a\"\n}\n",
		"consort.d/b.json":   `{"node_meta": {"zone": "b", "os": "linux"}}`,
		"bad/consort.hcl":    "node_meta = \"x\"\n",
		"badval/consort.hcl": "node_meta {\n  rack = [1]\n}\n",
	})
	n, err := Load(LoadOptions{
		ConfigFile: filepath.Join(dir, "consort.hcl"), ConfigDir: filepath.Join(dir, "consort.d"),
		Env: []string{"CONSORT_NODE_META=team:infra"},
		Set: map[string]string{"node_meta": "env:prod, rack:r9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"rack": "r9", "zone": "b", "os": "linux", "team": "infra", "env": "prod"}
	if !reflect.DeepEqual(n.NodeMeta, want) {
		t.Fatalf("node_meta = %v, want %v", n.NodeMeta, want)
	}
	for _, c := range []struct{ file, want string }{
		{"bad/consort.hcl", "consort.hcl:1: node_meta: want a block"},
		{"badval/consort.hcl", "consort.hcl:2: node_meta"},
	} {
		_, err := Load(LoadOptions{ConfigFile: filepath.Join(dir, c.file)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.file, err, c.want)
		}
	}
	if _, err := Load(LoadOptions{Set: map[string]string{"node_meta": "novalue"}}); err == nil || !strings.Contains(err.Error(), "key:value") {
		t.Errorf("bad --set node_meta: %v", err)
	}
}
