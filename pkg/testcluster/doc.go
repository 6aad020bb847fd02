// Package testcluster starts whole consort nodes as real processes for
// tests: it builds the daemon binaries once per test process, starts an
// embedded NATS server in the test process, writes one node config per node
// (loopback addresses, ephemeral ports, state under t.TempDir()) and runs
// raftd then catalogd for each node, each in its own process group with its
// output captured to a per-daemon log file.
//
// A typical test:
//
//	func TestKV(t *testing.T) {
//		c := testcluster.New(t, testcluster.Options{Servers: 3})
//		leader := c.WaitLeader(t)
//		kv := leader.APIClient(t).KV()
//		...
//		if err := leader.Kill("raftd"); err != nil {
//			t.Fatal(err)
//		}
//		c.WaitLeader(t)
//	}
//
// Tests using this package are skipped under -short. Every wait has a
// deadline and fails the test with a message naming what did not happen.
// When a test fails, the tail of every daemon's log is printed. A daemon
// that exits by itself (crash, panic, fatal error) fails the test unless
// Options.AllowExit is set, and a data race reported by a daemon built with
// -race always fails it.
//
// Process control (Node.Kill, Stop, Start, KillAll, StartAll) returns
// errors instead of calling t.Fatal, so it may be used from any goroutine,
// for example a nemesis killing leaders while clients write.
package testcluster
