package testcluster

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// maxLogRead bounds how much of the end of a log file is read for a tail.
const maxLogRead = 256 << 10

// dumpLogs prints the tail of every daemon's log and of the NATS log.
func (c *Cluster) dumpLogs(t testing.TB) {
	for _, n := range c.Nodes {
		for _, d := range daemons {
			c.dumpLog(t, n.Name+" "+d, n.LogPath(d))
		}
	}
	c.dumpLog(t, "embedded nats", c.natsLog)
}

func (c *Cluster) dumpLog(t testing.TB, what, path string) {
	lines, err := tailLines(path, c.opts.LogTailLines)
	if err != nil {
		t.Logf("testcluster: %s log: %v", what, err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: last %d lines of %s\n", what, len(lines), path)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "--- end %s", what)
	t.Log(b.String())
}

// tailLines returns the last n lines of the file at path.
func tailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-maxLogRead, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, err
	}
	buf = bytes.TrimRight(buf, "\n")
	if len(buf) == 0 {
		return nil, nil
	}
	lines := strings.Split(string(buf), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first is cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// hasDataRace reports whether the log at path holds a race detector
// report. A missing log holds none.
func hasDataRace(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE"))
}
