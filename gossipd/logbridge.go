package gossipd

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logWriter turns serf's and memberlist's "[LEVEL] component: message"
// lines into slog records at the matching level.
type logWriter struct{ l *slog.Logger }

// newStdLogger returns a *log.Logger (what serf and memberlist take) that
// writes through l.
func newStdLogger(l *slog.Logger) *log.Logger { return log.New(logWriter{l}, "", 0) }

var levels = []struct {
	tag   []byte
	level slog.Level
}{
	{[]byte("[TRACE]"), slog.LevelDebug - 4},
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

// Write logs one line. It never fails.
func (w logWriter) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lv := range levels {
		if bytes.HasPrefix(line, lv.tag) {
			level, line = lv.level, bytes.TrimSpace(line[len(lv.tag):])
			break
		}
	}
	if !w.l.Enabled(context.Background(), level) {
		return n, nil
	}
	w.l.Log(context.Background(), level, string(line))
	return n, nil
}
