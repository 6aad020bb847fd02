package ipc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestBatchConnOrderAndClose writes many pieces and closes at once: the
// peer reads every byte, in order, then EOF.
func TestBatchConnOrderAndClose(t *testing.T) {
	a, z := net.Pipe()
	b := newBatchConn(a)
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() { all, _ := io.ReadAll(z); got <- all }()
	for i := range 2000 {
		p := bytes.Repeat([]byte{byte(i)}, i%50+1)
		want.Write(p)
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case all := <-got:
		if !bytes.Equal(all, want.Bytes()) {
			t.Fatalf("peer read %d bytes, want %d (or different bytes)", len(all), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not reach EOF")
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestBatchConnBackpressure: with a peer that does not read, Write blocks
// once maxPending bytes wait, and Close (after its flush wait) ends it.
func TestBatchConnBackpressure(t *testing.T) {
	a, z := net.Pipe()
	defer z.Close()
	b := newBatchConn(a)
	chunk := make([]byte, 64<<10)
	blocked := make(chan error, 1)
	go func() {
		for written := 0; ; written += len(chunk) {
			if written > 4*maxPending {
				blocked <- errors.New("wrote far past maxPending to a peer that does not read")
				return
			}
			if _, err := b.Write(chunk); err != nil {
				blocked <- err
				return
			}
		}
	}()
	select {
	case err := <-blocked:
		t.Fatalf("writer did not block: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > closeFlushWait+5*time.Second {
		t.Fatalf("close took %s", d)
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("blocked write returned no error after close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked write did not return after close")
	}
}

// TestBatchConnWriteError: once the connection fails, later writes fail.
func TestBatchConnWriteError(t *testing.T) {
	a, z := net.Pipe()
	b := newBatchConn(a)
	defer b.Close()
	z.Close()
	if _, err := b.Write([]byte("ping")); err != nil {
		t.Fatalf("first write: %v (it is only accepted)", err)
	}
	select {
	case <-b.flushed: // the flusher stops at the failed write
	case <-time.After(10 * time.Second):
		t.Fatal("flusher did not stop after a failed write")
	}
	if _, err := b.Write([]byte("ping")); err == nil {
		t.Fatal("write after a failed write succeeded")
	}
}
