// Package config reads the node config every consort daemon shares.
//
// One HCL or JSON file (default /etc/consort/consort.hcl), then the
// *.hcl and *.json files of a directory (default /etc/consort/consort.d)
// in lexical order, then CONSORT_<KEY> environment variables, then
// --set key=value flags; each layer overrides the keys it names. Keys are
// the snake_case names of the hcl tags on Node, nested in blocks:
//
//	node_name  = "web-1"
//	datacenter = "dc1"
//	server     = true
//	bootstrap_expect = 3
//	retry_join = ["10.0.0.2:8300", "10.0.0.3:8300"]
//	ports { http = 8501 }
//	raft { snapshot_interval = "1m" }
//
// The dotted path of a key ("ports.http") names it in --set, in messages
// and, upper-cased with dots as underscores, in the environment
// (CONSORT_PORTS_HTTP). Keys() lists them all. In files a dotted key is
// the same as the nested block: ports.http = 8501.
//
// Top-level service, services, check and checks blocks are Consul-style
// service definitions: Load skips them and catalogd reads them from the
// same files.
//
// Every mistake is reported at once, each naming its file, line and key:
//
//	consort.hcl:12: unknown key "port.http" (did you mean "ports"?)
//	consort.d/a.json:3: ports.http: want a number, got "abc"
//
// Daemon mains use Flags and FromCLI, then Node.Logger, and EnsureNodeID
// when they need the node's raft/catalog ID.
package config
