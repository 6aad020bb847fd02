// Package bustest provides Recorder, an in-memory bus.Publisher for unit
// tests: it records every event and lets a test wait, with a deadline, for
// one that matches.
package bustest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
)

// Event is one recorded Publish.
type Event struct {
	Subject string
	Payload any    // as passed to Publish
	JSON    []byte // Payload marshalled as the real publisher would; nil if MarshalErr
	// MarshalErr is set when Payload does not marshal; the real publisher
	// would have dropped the event.
	MarshalErr error
}

// Decode unmarshals the event's JSON into v, as a NATS subscriber would.
func (e Event) Decode(v any) error {
	if e.MarshalErr != nil {
		return fmt.Errorf("event %s: %w", e.Subject, e.MarshalErr)
	}
	return json.Unmarshal(e.JSON, v)
}

// Recorder is a bus.Publisher that records events in order. The zero
// value is ready; safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex // guards events and changed
	events  []Event
	changed chan struct{} // closed and replaced on each Publish
}

var _ bus.Publisher = (*Recorder)(nil)

// Publish records the event and wakes waiters. It never blocks for long.
func (r *Recorder) Publish(subject string, payload any) {
	data, err := json.Marshal(payload)
	e := Event{Subject: subject, Payload: payload, JSON: data, MarshalErr: err}
	if err != nil {
		e.JSON = nil
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
}

// Events returns a copy of everything recorded so far, oldest first.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Len is the number of events recorded so far; pass it to WaitAfter to
// look only at later events.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Reset forgets every recorded event.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// Wait blocks until some event, recorded before or during the call,
// satisfies match, and returns the first such; or returns ctx's error.
func (r *Recorder) Wait(ctx context.Context, match func(Event) bool) (Event, error) {
	e, _, err := r.WaitAfter(ctx, 0, match)
	return e, err
}

// WaitAfter is Wait looking only at events from index from on (see Len).
// It also returns the index after the matching event, to continue from.
func (r *Recorder) WaitAfter(ctx context.Context, from int, match func(Event) bool) (Event, int, error) {
	for {
		r.mu.Lock()
		for i := max(from, 0); i < len(r.events); i++ {
			if match(r.events[i]) {
				e := r.events[i]
				r.mu.Unlock()
				return e, i + 1, nil
			}
		}
		from = len(r.events)
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, from, fmt.Errorf("no matching event: %w", ctx.Err())
		}
	}
}

// Expect waits up to timeout for an event matching match and fails the
// test if none comes, listing what was recorded.
func (r *Recorder) Expect(tb testing.TB, timeout time.Duration, match func(Event) bool) Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e, err := r.Wait(ctx, match)
	if err != nil {
		var subjects []string
		for _, e := range r.Events() {
			subjects = append(subjects, e.Subject)
		}
		tb.Fatalf("bustest: %v after %s; recorded subjects: %q", err, timeout, subjects)
	}
	return e
}

// Subject matches events whose subject matches a NATS pattern ("*" one
// token, final ">" the rest).
func Subject(pattern string) func(Event) bool {
	return func(e Event) bool { return bus.MatchSubject(pattern, e.Subject) }
}
