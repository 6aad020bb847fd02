package config

import (
	"strings"
	"testing"
)

// FuzzLoadHCL feeds arbitrary bytes as a config file. Decoding must never
// panic, and every error must name the file.
func FuzzLoadHCL(f *testing.F) {
	for _, seed := range []string{
		"",
		"{}",
		`node_name = "n1"` + "\nports { http = 8501 }\n",
		"port.http = 1\n",
		`ports { http = "abc" }`,
		`raft { snapshot_interval = "1m" trailing_logs = -1 }`,
		`retry_join = ["a:1", 2]`,
		"service { name = \"web\" }\nchecks = [{ id = \"x\" }]\n",
		"a = <<EOF\nx\nEOF\n",
		"a = <<-EOF\n  x\n  EOF\n",
		`{"ports": {"http": 8500}, "retry_join": ["a"], "raft": {"snapshot_interval": "30s"}}`,
		`{"a": "\/", "b": null, "c": [true], "d": 1e99}`,
		`{"ports": [{"http": 1}, {"dns": 2}]}`,
		`ports = [{http = 1}, 3]`,
		`server = "true"` + "\nbootstrap_expect = 0x10\n",
		`ports { raft = 99999999999999999999 }`,
		"\"\\u0000\" = 1",
		"node_name = \"\\xff\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := Defaults()
		err := decodeFile("fuzz.hcl", data, &n)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.hcl") {
			t.Fatalf("error does not name the file: %v", err)
		}
		_ = n.Validate()
	})
}
