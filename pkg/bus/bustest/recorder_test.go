package bustest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/bus/bustest"
)

func TestRecorder(t *testing.T) {
	var r bustest.Recorder
	var pub bus.Publisher = &r
	subj := bus.Subjects{}

	pub.Publish(subj.KV(), bus.KV{Kind: bus.KindKV, Key: "a", Op: bus.KVOpSet, Index: 5})
	if r.Len() != 1 {
		t.Fatalf("len %d", r.Len())
	}

	// An event published later by another goroutine wakes the waiter.
	mark := r.Len()
	go pub.Publish(subj.CatalogService("web"), map[string]any{"index": 7})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, next, err := r.WaitAfter(ctx, mark, bustest.Subject("consort.catalog.service.*"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "consort.catalog.service.web" || next != 2 {
		t.Fatalf("got %s next %d", e.Subject, next)
	}

	// Earlier events match too with Wait, and decode like a subscriber's.
	e = r.Expect(t, time.Second, bustest.Subject(subj.KV()))
	var kv bus.KV
	if err := e.Decode(&kv); err != nil || kv.Key != "a" || kv.Index != 5 {
		t.Fatalf("decode: %+v %v", kv, err)
	}

	// Nothing matching: the deadline wins.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := r.Wait(short, bustest.Subject("consort.health.>")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}

	r.Publish("consort.x", make(chan int))
	last := r.Events()[r.Len()-1]
	if last.MarshalErr == nil || last.Decode(new(any)) == nil {
		t.Fatal("unmarshalable payload not flagged")
	}

	r.Reset()
	if r.Len() != 0 {
		t.Fatal("reset kept events")
	}
}
