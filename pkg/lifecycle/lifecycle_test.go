package lifecycle

import (
	"context"
	"testing"
	"time"
)

func TestGuard(t *testing.T) {
	var g Guard
	ctx, finish, ok, err := g.Start(context.Background(), "d")
	if !ok || err != nil {
		t.Fatalf("first Start: ok %v err %v", ok, err)
	}
	if _, _, ok, err := g.Start(context.Background(), "d"); ok || err == nil {
		t.Fatalf("second Start: ok %v err %v, want an error", ok, err)
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		defer finish()
		<-ctx.Done() // the Run, until Close cancels it
	}()
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after Run finished")
	}
	<-returned
	g.Close() // idempotent
	if _, _, ok, err := g.Start(context.Background(), "d"); ok || err != nil {
		t.Fatalf("Start after Close: ok %v err %v, want a clean no-op", ok, err)
	}
}

func TestCloseBeforeRun(t *testing.T) {
	var g Guard
	g.Close()
	if _, _, ok, err := g.Start(context.Background(), "d"); ok || err != nil {
		t.Fatalf("Start after Close: ok %v err %v", ok, err)
	}
}
