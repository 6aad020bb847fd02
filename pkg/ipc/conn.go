package ipc

import (
	"net"
	"sync"
	"time"
)

// Write batching on a session's connection.
const (
	// maxPending bounds the bytes accepted but not yet written; beyond it
	// Write blocks, so a peer that stops reading still stalls yamux's
	// send loop (and its ConnectionWriteTimeout still fires).
	maxPending = 1 << 20
	// keepPending is the largest batch buffer kept for reuse.
	keepPending = 256 << 10
	// closeFlushWait bounds how long Close waits for accepted bytes to
	// leave before closing the connection under them.
	closeFlushWait = time.Second
)

// batchConn is the connection under a yamux session. yamux's send loop
// writes every frame with separate Writes (the 12-byte header, then the
// body) and waits for each; on a socket each is a system call and, on TCP
// with Nagle's algorithm off (Go's default), a segment, and the reader
// often wakes once per piece. batchConn copies writes into a buffer that
// one goroutine writes out: a lone frame leaves at once (the flusher runs
// as soon as the send loop waits for its next frame), and whatever the
// send loop produces meanwhile (a stream's open and request, a response
// and its close, the frames of many concurrent calls) leaves in one
// write.
//
// Bytes are written in the order Write accepted them. After a write
// error every later Write fails with it. Close writes what was accepted
// (waiting at most closeFlushWait), then closes the connection.
type batchConn struct {
	net.Conn

	mu      sync.Mutex // guards pending, spare, err and closed
	cond    *sync.Cond // signalled when pending shrinks or err is set
	pending []byte     // accepted, not yet handed to the flusher
	spare   []byte     // the flusher's last buffer, for reuse
	err     error
	closed  bool

	kick    chan struct{} // wakes the flusher; capacity 1
	closing chan struct{} // closed by Close
	flushed chan struct{} // closed when the flusher returns
	once    sync.Once
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{
		Conn:    c,
		kick:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		flushed: make(chan struct{}),
	}
	b.cond = sync.NewCond(&b.mu)
	go b.flushLoop()
	return b
}

// Write accepts p for writing; it blocks only while maxPending bytes wait.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && !b.closed && len(b.pending) >= maxPending {
		b.cond.Wait()
	}
	switch {
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	case b.closed:
		b.mu.Unlock()
		return 0, net.ErrClosed
	}
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default: // the flusher is already due to run
	}
	return len(p), nil
}

// flushLoop writes out pending batches until Close has been called and
// nothing is left, or a write fails.
func (b *batchConn) flushLoop() {
	defer close(b.flushed)
	for {
		select {
		case <-b.kick:
		case <-b.closing:
		}
		b.mu.Lock()
		buf := b.pending
		if len(buf) == 0 {
			done := b.closed
			b.mu.Unlock()
			if done {
				return
			}
			continue
		}
		b.pending = b.spare[:0]
		b.spare = nil
		b.cond.Broadcast()
		b.mu.Unlock()

		_, err := b.Conn.Write(buf)

		b.mu.Lock()
		if cap(buf) <= keepPending {
			b.spare = buf[:0]
		}
		if err != nil && b.err == nil {
			b.err = err
			b.cond.Broadcast()
		}
		failed := b.err != nil
		b.mu.Unlock()
		if failed {
			return
		}
	}
}

// Close writes what was accepted, then closes the connection. Later
// Writes fail. Idempotent.
func (b *batchConn) Close() error {
	var err error
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.cond.Broadcast()
		b.mu.Unlock()
		close(b.closing)
		t := time.NewTimer(closeFlushWait)
		select {
		case <-b.flushed:
		case <-t.C:
		}
		t.Stop()
		err = b.Conn.Close()
		<-b.flushed // the close ended any write in progress
	})
	return err
}
