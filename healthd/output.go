package healthd

import (
	"fmt"
	"unicode/utf8"
)

// capOutput bounds an output to max bytes plus Consul's truncation note
// ("… (captured N of M bytes)"), cutting on a UTF-8 boundary. HTTP and
// script outputs are already bounded by tailBuffer before they are
// formatted, as Consul's are; this bounds everything else (error texts,
// TTL updates, alias outputs).
func capOutput(s string, max int) string {
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	// The HTTP prefix ("HTTP GET <url>: 200 OK Output: ") and script
	// note come on top of an already bounded body; allow them room.
	limit := max + 1024
	if len(s) <= limit {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s ... (captured %d of %d bytes)", s[:cut], cut, len(s))
}

// truncateTTL bounds a TTL update's output as Consul's CheckTTL.SetStatus
// does.
func truncateTTL(s string, max int) string {
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s ... (captured %d of %d bytes)", s[:max], max, len(s))
}

// tailBuffer is an io.Writer keeping the last max bytes written, as the
// circular buffer Consul captures HTTP bodies and script output in.
type tailBuffer struct {
	max   int
	buf   []byte
	total int64
}

func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	return &tailBuffer{max: max}
}

// Write keeps the tail of p; it never fails.
func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if n >= b.max {
		b.buf = append(b.buf[:0], p[n-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + n - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// String returns the kept bytes.
func (b *tailBuffer) String() string { return string(b.buf) }

// truncated reports whether bytes were dropped.
func (b *tailBuffer) truncated() bool { return b.total > int64(len(b.buf)) }
